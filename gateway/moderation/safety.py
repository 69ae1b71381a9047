"""Members' safety actions (report, block, unblock) and introduction intents.

Each action writes its change and its compliance-log row in one transaction, so the log can
never miss something that happened nor record something that did not.
"""

from __future__ import annotations

import time

from gateway.exceptions import (
    CannotMessageSelf,
    InvalidRequest,
    MemberNotFound,
    MessageNotFound,
)
from gateway.limits import MAX_NOTE_CHARS
from gateway.messaging import queries
from gateway.messaging.models import Member, Origin
from gateway.moderation.models import Block, Report, ReportCategory
from gateway.rate_limits import Decision
from gateway.services import Services
from gateway.store import messaging as messaging_store
from gateway.store import moderation as moderation_store
from gateway.store import rate_limits as buckets
from gateway.store.rows import TxConnection
from gateway.timestamps import utc_now


async def file_report(
    s: Services,
    me: Member,
    conversation_id: int,
    message_id: int | None,
    category: ReportCategory,
    note: str,
) -> tuple[Report, bool]:
    """The report and whether this call filed it (False: the same open report exists)."""
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidRequest(f"`note` must be at most {MAX_NOTE_CHARS} characters.")
    conversation = await queries.participant_conversation(s, me, conversation_id)
    if message_id is not None:
        async with s.store.reading() as conn:
            message = await messaging_store.get_message(conn, message_id)
        if message is None or message.conversation_id != conversation_id:
            raise MessageNotFound()
        if message.sender_id == me.user_id:
            raise InvalidRequest("You cannot report your own message.")
    reported_id = conversation.peer_of(me.user_id)
    now = utc_now()
    limit, clock = s.rate_limiter.limit("reports"), time.time()

    def tx(conn: TxConnection) -> tuple[Report, bool] | Decision:
        # A double click or a retry must not put the same complaint in the queue twice.
        earlier = moderation_store.open_report_like(conn, me.user_id, conversation_id, message_id)
        if earlier is not None:
            return earlier, False  # not counted: nothing new reaches the queue
        decision = buckets.decide(conn, limit, me.user_id, "reports", clock)
        if decision is not None and not decision.allowed:
            return decision
        buckets.charge(conn, me.user_id, "reports", decision)
        report = moderation_store.insert_report(
            conn,
            conversation_id=conversation_id,
            message_id=message_id,
            reporter_id=me.user_id,
            reported_id=reported_id,
            category=category,
            note=note,
            now=now,
        )
        moderation_store.append_compliance(
            conn,
            "report_filed",
            now,
            actor_id=me.user_id,
            subject_id=reported_id,
            conversation_id=conversation_id,
            report_id=report.id,
            details={"category": category, "message_id": message_id},
        )
        return report, True

    result = await s.store.write(tx)
    if isinstance(result, Decision):
        raise s.rate_limiter.refusal(me.user_id, "reports", result.retry_after)
    return result


async def _known_to(s: Services, me: Member, member_id: int) -> Member:
    """The member, if `me` may name them: mutually visible, or already in a conversation.

    Anyone else answers exactly like a member who does not exist, so these routes cannot
    be used to walk the directory by id.
    """
    found = await s.directory.sight(me.user_id, member_id)
    if found is not None:
        member = found.member
        if found.mutual:
            return member
        async with s.store.reading() as conn:
            if await messaging_store.conversation_between(conn, me.user_id, member_id) is not None:
                return member
    raise MemberNotFound()


async def block(s: Services, me: Member, member_id: int) -> tuple[Block, Member, bool]:
    """The block, the blocked member, and whether this call created the block."""
    if member_id == me.user_id:
        raise CannotMessageSelf("You cannot block yourself.")
    blocked = await _known_to(s, me, member_id)
    now = utc_now()
    limit, clock = s.rate_limiter.limit("blocks"), time.time()

    def tx(conn: TxConnection) -> bool | Decision:
        decision = buckets.decide(conn, limit, me.user_id, "blocks", clock)
        if decision is not None and not decision.allowed:
            # A repeat (the block exists) changes nothing, so it is answered, not refused.
            return False if _has_blocked(conn, me, member_id) else decision
        created = moderation_store.insert_block(conn, me.user_id, member_id, now)
        if created:
            buckets.charge(conn, me.user_id, "blocks", decision)
            moderation_store.append_compliance(
                conn, "block", now, actor_id=me.user_id, subject_id=member_id
            )
        return created

    created = await s.store.write(tx)
    if isinstance(created, Decision):
        raise s.rate_limiter.refusal(me.user_id, "blocks", created.retry_after)
    async with s.store.reading() as conn:
        mine = {b.blocked_id: b for b in await moderation_store.blocks_by(conn, me.user_id)}
    return mine.get(member_id, Block(me.user_id, member_id, now)), blocked, created


async def unblock(s: Services, me: Member, member_id: int) -> bool:
    """Whether a block was lifted (unblocking someone not blocked changes nothing)."""
    now = utc_now()
    limit, clock = s.rate_limiter.limit("blocks"), time.time()

    def tx(conn: TxConnection) -> bool | Decision:
        decision = buckets.decide(conn, limit, me.user_id, "blocks", clock)
        if decision is not None and not decision.allowed:
            # Lifting a block that is not there changes nothing: answered, not refused.
            return decision if _has_blocked(conn, me, member_id) else False
        removed = moderation_store.delete_block(conn, me.user_id, member_id)
        if removed:
            buckets.charge(conn, me.user_id, "blocks", decision)
            moderation_store.append_compliance(
                conn, "unblock", now, actor_id=me.user_id, subject_id=member_id
            )
        return removed

    removed = await s.store.write(tx)
    if isinstance(removed, Decision):
        raise s.rate_limiter.refusal(me.user_id, "blocks", removed.retry_after)
    return removed


def _has_blocked(conn: TxConnection, me: Member, member_id: int) -> bool:
    return any(b.blocked_id == member_id for b in moderation_store.blocks_by_tx(conn, me.user_id))


async def blocks(s: Services, me: Member) -> list[tuple[Block, Member]]:
    """Whom the member blocked; never who blocked them."""
    async with s.store.reading() as conn:
        mine = await moderation_store.blocks_by(conn, me.user_id)
    known = await s.directory.members_by_id(b.blocked_id for b in mine)
    return [(b, known.get(b.blocked_id) or Member.former(b.blocked_id)) for b in mine]


async def record_intent(s: Services, me: Member, peer_id: int, origin: Origin) -> int:
    """A member opened a compose towards `peer_id` from a request, profile or suggestion."""
    if peer_id == me.user_id:
        raise CannotMessageSelf()
    await _known_to(s, me, peer_id)
    now = utc_now()
    limit, clock = s.rate_limiter.limit("intents"), time.time()

    def tx(conn: TxConnection) -> int | Decision:
        decision = buckets.decide(conn, limit, me.user_id, "intents", clock)
        if decision is not None and not decision.allowed:
            return decision
        buckets.charge(conn, me.user_id, "intents", decision)
        return moderation_store.insert_intent(
            conn, me.user_id, peer_id, origin.type, origin.ref, now
        )

    result = await s.store.write(tx)
    if isinstance(result, Decision):
        raise s.rate_limiter.refusal(me.user_id, "intents", result.retry_after)
    return result
