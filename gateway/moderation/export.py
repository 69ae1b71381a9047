"""A moderator's export of one member's history, limited to a scope, streamed and audited.

`begin_export` checks the role, fixes a snapshot of the history, and commits the audit entry
(and the compliance-log row) before the response starts, so no byte leaves without a record.
`Export.chunks` then pages through the database, a conversation at a time, hashing what it
sends; its memory does not depend on the history's size. When the last record is ready, the
audit entry gets the row count and the file's SHA-256; an export cut short is recorded as
`aborted` (client left) or `failed` (server error) with what was sent so far.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from gateway.exceptions import Forbidden, GatewayError, MemberNotFound
from gateway.messaging.models import Conversation, Member
from gateway.moderation.export_formats import (
    Encoder,
    ExportFormat,
    MessageRecord,
    Record,
    encoder_for,
)
from gateway.moderation.models import Role
from gateway.moderation.roles import require_moderator
from gateway.services import Services
from gateway.store import moderation as moderation_store
from gateway.store.exports import (
    Snapshot,
    has_history,
    member_conversations,
    message_page,
    reported_conversation_ids,
    snapshot,
)
from gateway.store.rows import TxConnection
from gateway.timestamps import Window, utc_now

log = logging.getLogger(__name__)

Scope = Literal["reported", "metadata", "full"]
SCOPES: tuple[Scope, ...] = ("reported", "metadata", "full")
PAGE_ROWS = 1000
FLUSH_CHARS = 1024 * 1024
_BACKGROUND: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class ExportRequest:
    member_id: int
    scope: Scope
    format: ExportFormat
    window: Window
    reason: str


@dataclass
class Export:
    s: Services
    audit_id: int
    request: ExportRequest
    manifest: Record
    conversations: list[Conversation]
    people: dict[int, Member]
    bodies_for: set[int] | None  # conversation ids whose bodies are included; None: all
    snap: Snapshot
    encoder: Encoder

    @property
    def filename(self) -> str:
        r = self.request
        return f"wb-export-{self.audit_id}-member-{r.member_id}-{r.scope}.{self.encoder.extension}"

    async def chunks(self) -> AsyncIterator[bytes]:
        digest = hashlib.sha256()
        rows = messages = 0
        parts: list[str] = [self.encoder.begin(self.manifest)]
        size = len(parts[0])
        completed = False

        def flush() -> bytes:
            nonlocal size
            data = "".join(parts).encode()
            parts.clear()
            size = 0
            digest.update(data)
            return data

        try:
            for index, conversation in enumerate(self.conversations):
                text = self.encoder.conversation(self._conversation(conversation), index == 0)
                parts.append(text)
                size += len(text)
                rows += 1
                with_bodies = self.bodies_for is None or conversation.id in self.bodies_for
                after, first = 0, True
                while True:
                    async with self.s.store.reading() as conn:
                        page = await message_page(
                            conn, conversation.id, after, self.snap, self.request.window, PAGE_ROWS
                        )
                    if page:
                        records = [_message(row, conversation, with_bodies) for row in page]
                        text = self.encoder.messages(records, first)
                        parts.append(text)
                        size += len(text)
                        first = False
                    messages += len(page)
                    rows += len(page)
                    if size >= FLUSH_CHARS:
                        yield flush()
                    if len(page) < PAGE_ROWS:
                        break
                    after = page[-1]["id"]
                parts.append(self.encoder.conversation_end())
            trailer = {
                "type": "end",
                "export_id": self.audit_id,
                "rows": rows,
                "conversations": len(self.conversations),
                "messages": messages,
            }
            parts.append(self.encoder.end(trailer))
            last = flush()
            # Recorded before the last bytes go out, so whoever holds the whole file can
            # already compare its hash with the audit entry.
            await self._complete("completed", rows, digest.hexdigest())
            completed = True
            yield last
        except Exception:
            if not completed:
                completed = True
                log.exception("export %d failed after %d rows", self.audit_id, rows)
                self._complete_later("failed", rows, digest.hexdigest())
            raise
        finally:
            if not completed:  # the client went away (cancelled or closed mid-stream)
                self._complete_later("aborted", rows, digest.hexdigest())

    def _conversation(self, c: Conversation) -> Record:
        return {
            "type": "conversation",
            "id": c.id,
            "members": [self._person(user_id) for user_id in c.member_ids],
            "created_by": c.created_by,
            "origin": c.origin.to_json(),
            "created_at": c.created_at,
            "bodies_included": self.bodies_for is None or c.id in self.bodies_for,
        }

    def _person(self, user_id: int) -> dict[str, Any]:
        member = self.people.get(user_id)
        return {"user_id": user_id, "username": member.username if member else None}

    async def _complete(self, outcome: str, rows: int, sha256: str) -> None:
        now = utc_now()

        def tx(conn: TxConnection) -> None:
            moderation_store.complete_audit(conn, self.audit_id, outcome, rows, sha256, now)

        await self.s.store.write(tx)

    def _complete_later(self, outcome: str, rows: int, sha256: str) -> None:
        # The request's task may be cancelled already; record the outcome on a task of its own.
        async def record() -> None:
            try:
                await self._complete(outcome, rows, sha256)
            except GatewayError:
                log.warning("export %d ended %s but could not be recorded", self.audit_id, outcome)

        task = asyncio.get_running_loop().create_task(record())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)


def _message(row: Any, conversation: Conversation, with_body: bool) -> MessageRecord:
    body: str = row["body"]
    sender: int = row["sender_id"]
    return MessageRecord(
        id=row["id"],
        conversation_id=conversation.id,
        sender_id=sender,
        recipient_id=conversation.peer_of(sender),
        created_at=row["created_at"],
        body_length=len(body),
        body_sha256=hashlib.sha256(body.encode()).hexdigest(),
        body=body if with_body else None,
    )


async def may_export(s: Services, me: Member, scope: Scope) -> Role:
    """The member's role, if it allows an export of this scope."""
    role = await require_moderator(s, me)
    if scope == "full" and role != "admin":
        raise Forbidden("Only admins may export full message content.")
    return role


async def begin_export(s: Services, me: Member, request: ExportRequest) -> Export:
    role = await may_export(s, me, request.scope)
    member_id = request.member_id
    async with s.store.reading() as conn:
        snap = await snapshot(conn)
        conversations = await member_conversations(conn, member_id, snap, request.window)
        reported = await reported_conversation_ids(conn, member_id)
    bodies_for: set[int] | None = None
    if request.scope == "metadata":
        bodies_for = set()
    elif request.scope == "reported":
        bodies_for = {c.id for c in conversations if c.id in reported}
    people = await s.directory.members_by_id(
        [me.user_id, member_id, *(u for c in conversations for u in c.member_ids)]
    )
    if member_id not in people:
        async with s.store.reading() as conn:
            if not await has_history(conn, member_id):
                # Neither a member nor anyone's correspondent: a typo, not an empty history.
                raise MemberNotFound("No member has that id, now or in any conversation.")
    now = utc_now()
    facts = {
        "scope": request.scope,
        "format": request.format,
        "window": {"since": request.window.since, "until": request.window.until},
        "reason": request.reason,
        "snapshot": {
            "max_message_id": snap.max_message_id,
            "max_conversation_id": snap.max_conversation_id,
        },
    }

    def tx(conn: TxConnection) -> int:
        entry = moderation_store.append_audit(conn, me.user_id, "export", member_id, facts, now)
        moderation_store.append_compliance(
            conn,
            "export",
            now,
            actor_id=me.user_id,
            subject_id=member_id,
            details={"audit_id": entry.id, **facts},
        )
        return entry.id

    audit_id = await s.store.write(tx)
    member = people.get(member_id)
    manifest: Record = {
        "type": "manifest",
        "export_id": audit_id,
        "generated_at": now,
        "generated_by": {"user_id": me.user_id, "username": me.username, "role": role},
        "member": {"user_id": member_id, "username": member.username if member else None},
        **facts,
        "bodies_included_for": "all" if bodies_for is None else sorted(bodies_for),
        "conversation_count": len(conversations),
        "notes": (
            "Records: this manifest, then each conversation followed by its messages in id "
            "order, then an `end` record with the counts; a file without it is incomplete. "
            "Messages: those sent within the window in the member's conversations, up to the "
            "snapshot ids. body_length counts characters; body_sha256 is the SHA-256 of "
            "the UTF-8 body, given even when the scope withholds the body (body null or empty). "
            "The SHA-256 of this whole file is recorded in the audit entry `export_id`."
        ),
    }
    return Export(
        s,
        audit_id,
        request,
        manifest,
        conversations,
        people,
        bodies_for,
        snap,
        encoder_for(request.format),
    )
