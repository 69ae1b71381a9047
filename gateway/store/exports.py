"""The moderator export's reads over messaging.db.

An export reads a member's history conversation by conversation, a page at a time by
message id (the `messages_by_conversation` index), each page with a pooled connection held
only for that page. Everything is bounded by a snapshot of the newest ids taken when the
export began, so messages that keep arriving neither appear half-way nor shift the pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.messaging.models import Conversation
from gateway.store.rows import (
    CONVERSATION_COLUMNS,
    ReadConnection,
    Row,
    conversation_from_row,
    fetch_all,
    fetch_one,
)
from gateway.timestamps import Window


@dataclass(frozen=True, slots=True)
class Snapshot:
    max_message_id: int
    max_conversation_id: int


async def snapshot(conn: ReadConnection) -> Snapshot:
    row = await fetch_one(
        conn,
        "SELECT (SELECT COALESCE(max(id), 0) FROM messages) AS m, "
        "(SELECT COALESCE(max(id), 0) FROM conversations) AS c",
        (),
    )
    assert row is not None
    return Snapshot(row["m"], row["c"])


async def member_conversations(
    conn: ReadConnection, member_id: int, snap: Snapshot, window: Window
) -> list[Conversation]:
    """The member's conversations that existed by the end of the window, oldest first."""
    rows = await fetch_all(
        conn,
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
        "WHERE (member_low = ? OR member_high = ?) AND id <= ? AND created_at < ? ORDER BY id",
        (member_id, member_id, snap.max_conversation_id, window.upper),
    )
    return [conversation_from_row(row) for row in rows]


async def has_history(conn: ReadConnection, member_id: int) -> bool:
    """Whether the member ever took part in a conversation (departed members included)."""
    row = await fetch_one(
        conn,
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE member_low = ? OR member_high = ?)",
        (member_id, member_id),
    )
    return bool(row and row[0])


async def reported_conversation_ids(conn: ReadConnection, member_id: int) -> set[int]:
    """Conversations of the member in which a report was filed (by or about them)."""
    rows = await fetch_all(
        conn,
        "SELECT DISTINCT r.conversation_id FROM reports r "
        "JOIN conversations c ON c.id = r.conversation_id "
        "WHERE c.member_low = ? OR c.member_high = ?",
        (member_id, member_id),
    )
    return {row[0] for row in rows}


async def message_page(
    conn: ReadConnection,
    conversation_id: int,
    after_id: int,
    snap: Snapshot,
    window: Window,
    limit: int,
) -> list[Row]:
    """Rows (id, sender_id, created_at, body) after `after_id`, ascending."""
    return await fetch_all(
        conn,
        "SELECT id, sender_id, created_at, body FROM messages "
        "WHERE conversation_id = ? AND id > ? AND id <= ? AND created_at >= ? AND created_at < ? "
        "ORDER BY id LIMIT ?",
        (
            conversation_id,
            after_id,
            snap.max_message_id,
            window.lower,
            window.upper,
            limit,
        ),
    )
