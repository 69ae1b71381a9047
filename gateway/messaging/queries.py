"""Read-side operations: what a member may see, assembled from messaging.db and the directory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.exceptions import ConversationNotFound, MemberNotFound
from gateway.limits import MEMBER_SEARCH_LIMIT
from gateway.messaging.models import Conversation, ConversationView, Member, Message
from gateway.services import Services
from gateway.store import imports as imports_store
from gateway.store import messaging as messaging_store


async def members(s: Services, me: Member, query: str) -> list[Member]:
    return await s.directory.messageable(me.user_id, query.strip(), MEMBER_SEARCH_LIMIT)


@dataclass(frozen=True, slots=True)
class Reachability:
    """Whether `me` may message a member they can see, and if not, what they can do."""

    member: Member
    can_message: bool
    reason: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "member": self.member.public(),
            "can_message": self.can_message,
            "reason": self.reason,
            "message": self.message,
        }


THEY_CANNOT_SEE_YOU = (
    "{name} can't see your profile in the WhiteBalloon directory, so you can't message each "
    "other yet. Make your profile public in WhiteBalloon (or ask {name} to invite you), "
    "then try again."
)


async def reachability(s: Services, me: Member, username: str) -> Reachability:
    """For a member `me` can see: can they message them? Anyone `me` cannot see is unknown."""
    found = await s.directory.sight(me.user_id, username.strip())
    if found is None or not found.viewer_sees or found.member.user_id == me.user_id:
        raise MemberNotFound()
    member = found.member
    if found.sees_viewer:
        return Reachability(member, True)
    return Reachability(
        member,
        False,
        "they_cannot_see_you",
        THEY_CANNOT_SEE_YOU.format(name=member.username),
    )


async def unread_total(s: Services, me: Member) -> int:
    async with s.store.reading() as conn:
        return await messaging_store.unread_total(conn, me.user_id)


async def participant_conversation(s: Services, me: Member, conversation_id: int) -> Conversation:
    """The conversation if `me` takes part in it; otherwise it does not exist for them."""
    async with s.store.reading() as conn:
        conversation = await messaging_store.get_conversation(conn, conversation_id)
    if conversation is None or not conversation.has_member(me.user_id):
        raise ConversationNotFound()
    return conversation


async def peer_in_conversation(s: Services, me: Member, conversation_id: int) -> int:
    """The other member of a conversation `me` takes part in.

    Remembered per worker: who takes part in a conversation never changes, and a send
    should not pay a database read to learn it again.
    """
    members = s.conversation_members.get(conversation_id)
    if members is None:
        members = (await participant_conversation(s, me, conversation_id)).member_ids
        s.conversation_members.remember(conversation_id, members)
    if me.user_id not in members:
        raise ConversationNotFound()
    low, high = members
    return high if me.user_id == low else low


async def inbox(s: Services, me: Member) -> list[ConversationView]:
    async with s.store.reading() as conn:
        rows = await messaging_store.inbox(conn, me.user_id)
        last_messages = await messaging_store.messages_by_id(
            conn, [last_id for *_, last_id in rows if last_id is not None]
        )
    peers = await s.directory.members_by_id(c.peer_of(me.user_id) for c, *_ in rows)
    return [
        ConversationView(
            conversation=conversation,
            peer=_peer(peers, conversation.peer_of(me.user_id)),
            last_message=last_messages.get(last_id) if last_id is not None else None,
            unread_count=unread,
            last_read_message_id=last_read,
        )
        for conversation, unread, last_read, last_id in rows
    ]


async def conversation_view(
    s: Services, me: Member, conversation: Conversation, peer: Member | None = None
) -> ConversationView:
    async with s.store.reading() as conn:
        unread, last_read, last_id = await messaging_store.conversation_state(
            conn, conversation.id, me.user_id
        )
        last_message = await messaging_store.get_message(conn, last_id) if last_id else None
    if peer is None:
        peer_id = conversation.peer_of(me.user_id)
        peer = _peer(await s.directory.members_by_id([peer_id]), peer_id)
    return ConversationView(conversation, peer, last_message, unread, last_read)


async def messages_page(
    s: Services,
    me: Member,
    conversation_id: int,
    *,
    before: int | None,
    after: int | None,
    limit: int,
) -> tuple[list[Message], bool]:
    await participant_conversation(s, me, conversation_id)
    async with s.store.reading() as conn:
        return await messaging_store.page_of_messages(
            conn, conversation_id, before=before, after=after, limit=limit
        )


async def newest_event_id(s: Services) -> int:
    async with s.store.reading() as conn:
        _, newest = await messaging_store.event_id_bounds(conn)
    return newest


async def conversation_of_upstream_thread(s: Services, upstream_thread_id: int) -> int | None:
    """The conversation an upstream WhiteBalloon thread was imported into, or None.

    Who may open it is not checked here: the page asks for the conversation itself.
    """
    async with s.store.reading() as conn:
        return await imports_store.conversation_of_upstream_thread(conn, upstream_thread_id)


def _peer(known: dict[int, Member], user_id: int) -> Member:
    return known.get(user_id) or Member.former(user_id)
