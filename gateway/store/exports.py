"""The moderator export's reads and the operators' counts over messaging.db.

An export reads a member's history conversation by conversation, a page at a time by
message id (the `messages_by_conversation` index), each page with a pooled connection held
only for that page. Everything is bounded by a snapshot of the newest ids taken when the
export began, so messages that keep arriving neither appear half-way nor shift the pages.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

from gateway.messaging.models import ORIGIN_TYPES, Conversation, Origin
from gateway.moderation.models import OriginFunnel
from gateway.store.rows import CONVERSATION_COLUMNS, conversation_from_row, fetch_all, fetch_one


@dataclass(frozen=True, slots=True)
class Snapshot:
    max_message_id: int
    max_conversation_id: int


@dataclass(frozen=True, slots=True)
class Window:
    """[since, until) over stored timestamps (same text format, so text order is time order)."""

    since: str | None
    until: str | None


async def snapshot(conn: aiosqlite.Connection) -> Snapshot:
    row = await fetch_one(
        conn,
        "SELECT (SELECT COALESCE(max(id), 0) FROM messages) AS m, "
        "(SELECT COALESCE(max(id), 0) FROM conversations) AS c",
        (),
    )
    assert row is not None
    return Snapshot(row["m"], row["c"])


async def member_conversations(
    conn: aiosqlite.Connection, member_id: int, snap: Snapshot, window: Window
) -> list[Conversation]:
    """The member's conversations that existed by the end of the window, oldest first."""
    rows = await fetch_all(
        conn,
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
        "WHERE (member_low = ? OR member_high = ?) AND id <= ? AND created_at < ? ORDER BY id",
        (member_id, member_id, snap.max_conversation_id, window.until or "~"),
    )
    return [conversation_from_row(row) for row in rows]


async def reported_conversation_ids(conn: aiosqlite.Connection, member_id: int) -> set[int]:
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
    conn: aiosqlite.Connection,
    conversation_id: int,
    after_id: int,
    snap: Snapshot,
    window: Window,
    limit: int,
) -> list[sqlite3.Row]:
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
            window.since or "",
            window.until or "~",
            limit,
        ),
    )


# Operators' counts


async def messages_total(conn: aiosqlite.Connection) -> int:
    """Messages stored. Counted, not read off the id sequence: an insert that stores
    nothing (a retried client_id, a blocked send) still uses up an id."""
    row = await fetch_one(conn, "SELECT count(*) FROM messages", ())
    return int(row[0]) if row else 0


async def oldest_event_after(conn: aiosqlite.Connection, event_id: int) -> str | None:
    """When the oldest event newer than `event_id` was committed, if there is one."""
    row = await fetch_one(
        conn, "SELECT created_at FROM events WHERE id > ? ORDER BY id LIMIT 1", (event_id,)
    )
    return row[0] if row else None


async def introduction_funnel(conn: aiosqlite.Connection, window: Window) -> list[OriginFunnel]:
    since, until = window.since or "", window.until or "~"
    # Distinct member/peer pairs: reopening the same compose is one introduction, not many.
    intents = {
        row[0]: row[1]
        for row in await fetch_all(
            conn,
            "SELECT origin_type, count(DISTINCT user_id || ':' || peer_id) FROM intents "
            "WHERE created_at >= ? AND created_at < ? GROUP BY origin_type",
            (since, until),
        )
    }
    started = {
        row[0]: (row[1], row[2], row[3])
        for row in await fetch_all(
            conn,
            """
            SELECT c.origin_type, count(*),
                   sum(EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)),
                   sum(EXISTS (SELECT 1 FROM messages m
                                WHERE m.conversation_id = c.id AND m.sender_id != c.created_by
                                  AND julianday(m.created_at) <= julianday(c.created_at) + 30))
              FROM conversations c
             WHERE c.created_at >= ? AND c.created_at < ?
             GROUP BY c.origin_type
            """,
            (since, until),
        )
    }
    return [
        OriginFunnel(kind, intents.get(kind, 0), *started.get(kind, (0, 0, 0)))
        for kind in sorted(set(intents) | set(started) | set(ORIGIN_TYPES))
    ]


async def seed_history(
    conn: aiosqlite.Connection,
    member_id: int,
    peer_ids: list[int],
    per_conversation: int,
    start: str,
) -> None:
    """Bulk-insert conversations and messages for benchmarks, bypassing events and checks."""
    for peer in peer_ids:
        low, high = min(member_id, peer), max(member_id, peer)
        cursor = await conn.execute(
            "INSERT INTO conversations (member_low, member_high, created_by, origin_type, "
            "origin_ref, created_at, updated_at) VALUES (?, ?, ?, ?, NULL, ?, ?)",
            (low, high, member_id, Origin("profile").type, start, start),
        )
        conversation_id = cursor.lastrowid
        await cursor.close()
        await conn.executemany(
            "INSERT INTO messages (conversation_id, sender_id, body, client_id, created_at) "
            "VALUES (?, ?, ?, NULL, ?)",
            [
                (
                    conversation_id,
                    member_id if i % 2 else peer,
                    f"message {i} between {member_id} and {peer}: " + "lorem ipsum " * (i % 20),
                    start,
                )
                for i in range(per_conversation)
            ],
        )
