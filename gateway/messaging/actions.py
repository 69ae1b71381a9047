"""Domain actions on conversations and messages, the only code that publishes events.

Each action checks what the member may do, writes one transaction through the store's
writer (a synchronous function, run on the writer's thread), and publishes the events that
transaction wrote only after it committed. The other writers of messaging.db are the
moderation actions (`safety`, `review`, `export`), which publish nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.exceptions import (
    Blocked,
    CannotMessageSelf,
    ClientIdConflict,
    InvalidBody,
    MemberNotFound,
    MessageNotFound,
    NotVisible,
)
from gateway.limits import MAX_BODY_CHARS
from gateway.live.events import Event, PendingEvent
from gateway.messaging import queries
from gateway.messaging.models import Conversation, ConversationView, Member, Message, Origin
from gateway.rate_limits import Decision
from gateway.services import Services
from gateway.store import messaging as messaging_store
from gateway.store import moderation as moderation_store
from gateway.store import rate_limits as buckets
from gateway.store.rows import TxConnection
from gateway.timestamps import utc_now


@dataclass(frozen=True, slots=True)
class ReadState:
    conversation_id: int
    message_id: int
    unread_count: int

    def to_json(self) -> dict[str, int]:
        return {
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "unread_count": self.unread_count,
        }


def clean_body(body: str) -> str:
    cleaned = body.strip()
    if not 1 <= len(cleaned) <= MAX_BODY_CHARS:
        raise InvalidBody()
    return cleaned


async def _require_messageable(
    s: Services, me: Member, peer_id: int, *, known: bool = False
) -> Member:
    """The peer, if the two may message. `known`: they already share a conversation, so
    saying the peer exists reveals nothing."""
    if peer_id == me.user_id:
        raise CannotMessageSelf()
    found = await s.directory.sight(me.user_id, peer_id)
    if found is None and not known:
        raise MemberNotFound()
    if found is None or (not found.viewer_sees and known):
        raise NotVisible()
    if not found.viewer_sees:
        # Someone you cannot see is as unknown as someone who does not exist.
        raise MemberNotFound()
    if not found.sees_viewer:
        raise NotVisible()
    return found.member


def _refuse_if_blocked(conn: TxConnection, a: int, b: int) -> None:
    # Checked inside the write transaction, so a block committed a moment earlier holds.
    # Visibility is checked first, so a member who cannot see the other learns nothing.
    if moderation_store.blocked_between(conn, a, b):
        raise Blocked()


async def start_conversation(
    s: Services, me: Member, peer_id: int, origin: Origin
) -> tuple[ConversationView, bool]:
    """The pair's one conversation, and whether this call created it."""
    peer = await _require_messageable(s, me, peer_id)
    now = utc_now()
    limit, clock = s.rate_limiter.limit("conversations"), time.time()

    def tx(conn: TxConnection) -> tuple[Conversation, list[Event]] | Decision:
        _refuse_if_blocked(conn, me.user_id, peer_id)
        # Only a first contact is counted: opening the pair's conversation again is free.
        decision = buckets.decide(conn, limit, me.user_id, "conversations", clock)
        if decision is not None and not decision.allowed:
            existing = messaging_store.conversation_between_tx(conn, me.user_id, peer_id)
            return decision if existing is None else (existing, [])
        conversation, created = messaging_store.insert_conversation(
            conn, me.user_id, peer_id, origin, now
        )
        if not created:
            return conversation, []
        buckets.charge(conn, me.user_id, "conversations", decision)
        moderation_store.append_compliance(
            conn,
            "conversation_created",
            now,
            actor_id=me.user_id,
            subject_id=peer_id,
            conversation_id=conversation.id,
            details={"origin": origin.to_json()},
        )
        pending = [
            PendingEvent(viewer.user_id, "conversation", view.to_json())
            for viewer, view in (
                (me, ConversationView(conversation, peer, None, 0, 0)),
                (peer, ConversationView(conversation, me, None, 0, 0)),
            )
        ]
        return conversation, messaging_store.insert_events(conn, pending, now)

    result = await s.store.write(tx)
    if isinstance(result, Decision):
        raise s.rate_limiter.refusal(me.user_id, "conversations", result.retry_after)
    conversation, events = result
    s.broadcaster.publish(events)
    if events:
        return ConversationView(conversation, peer, None, 0, 0), True
    return await queries.conversation_view(s, me, conversation, peer), False


async def send_message(
    s: Services, me: Member, conversation_id: int, body: str, client_id: str | None
) -> tuple[Message, bool]:
    """The stored message, and whether this call stored it (False: a retry of `client_id`)."""
    body = clean_body(body)
    peer_id = await queries.peer_in_conversation(s, me, conversation_id)
    try:
        await _require_messageable(s, me, peer_id, known=True)
    except (MemberNotFound, NotVisible):
        # A retry of a message that was stored is answered even if sending is no longer allowed.
        earlier = await _stored_earlier(s, me, client_id)
        if earlier is None:
            raise
        return _same_conversation(earlier, conversation_id), False
    now = utc_now()
    limit, clock = s.rate_limiter.limit("sends"), time.time()

    def tx(conn: TxConnection) -> tuple[Message, list[Event]] | Decision:
        decision = buckets.decide(conn, limit, me.user_id, "sends", clock)
        if decision is not None and not decision.allowed:
            # Refused, so nothing is written; but a retry of a stored message is answered as
            # always, neither counted nor refused, so retrying stays safe.
            stored = client_id and messaging_store.message_by_client_id_tx(
                conn, me.user_id, client_id
            )
            return (stored, []) if stored else decision
        message = messaging_store.insert_message(
            conn, conversation_id, me.user_id, peer_id, body, client_id, now
        )
        if message is None:  # a retry, or a block
            earlier = client_id and messaging_store.message_by_client_id_tx(
                conn, me.user_id, client_id
            )
            if not earlier:
                raise Blocked()
            return earlier, []
        buckets.charge(conn, me.user_id, "sends", decision)
        data = message.to_json()
        pending = [PendingEvent(user, "message", data) for user in (me.user_id, peer_id)]
        return message, messaging_store.insert_events(conn, pending, now)

    result = await s.store.write(tx)
    if isinstance(result, Decision):
        raise s.rate_limiter.refusal(me.user_id, "sends", result.retry_after)
    message, events = result
    s.broadcaster.publish(events)
    if not events:
        return _same_conversation(message, conversation_id), False
    s.counters.messages_stored += 1
    return message, True


async def _stored_earlier(s: Services, me: Member, client_id: str | None) -> Message | None:
    if client_id is None:
        return None
    async with s.store.reading() as conn:
        return await messaging_store.message_by_client_id(conn, me.user_id, client_id)


def _same_conversation(message: Message, conversation_id: int) -> Message:
    if message.conversation_id != conversation_id:
        raise ClientIdConflict()
    return message


async def mark_read(s: Services, me: Member, conversation_id: int, message_id: int) -> ReadState:
    """Move the member's read pointer forward to `message_id`; never backwards."""
    await queries.participant_conversation(s, me, conversation_id)
    async with s.store.reading() as conn:
        message = await messaging_store.get_message(conn, message_id)
    if message is None or message.conversation_id != conversation_id:
        raise MessageNotFound()
    now = utc_now()

    def tx(conn: TxConnection) -> tuple[ReadState, list[Event]]:
        moved = messaging_store.advance_read_pointer(conn, conversation_id, me.user_id, message_id)
        unread, last_read, _ = messaging_store.conversation_state_tx(
            conn, conversation_id, me.user_id
        )
        state = ReadState(conversation_id, last_read, unread)
        if not moved:
            return state, []
        # Only the reader's own devices hear of it; read receipts are not shared with the peer.
        pending = [PendingEvent(me.user_id, "read", state.to_json())]
        return state, messaging_store.insert_events(conn, pending, now)

    state, events = await s.store.write(tx)
    s.broadcaster.publish(events)
    return state
