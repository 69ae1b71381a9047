"""Every SQL statement of the WhiteBalloon importer (gateway/import_upstream.py).

Two databases: WhiteBalloon's own `messages.db` ("upstream"), only ever opened read-only
(`mode=ro`), and messaging.db, where the `imported_threads` and `imported_messages` tables
(migration 5) remember what was brought in so that a re-run brings nothing in twice.
Functions on messaging.db that the import makes are synchronous functions of the store
writer's `TxConnection`, run inside its one transaction; reads of the upstream file
(and of what was imported, for old links) are async, on aiosqlite connections.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiosqlite

from gateway.store.connections import connect
from gateway.store.rows import (
    ReadConnection,
    TxConnection,
    change_tx,
    fetch_all,
    fetch_all_tx,
    fetch_one,
    fetch_one_tx,
    insert_many_tx,
)

# The upstream tables and the columns the importer reads from each (app/modules/messaging).
UPSTREAM_COLUMNS: dict[str, tuple[str, ...]] = {
    "message_threads": ("id", "created_by_user_id", "direct_key", "created_at"),
    "message_participants": ("thread_id", "user_id", "last_read_at"),
    "messages": ("id", "thread_id", "sender_user_id", "body", "created_at"),
}

# Rows per multi-row INSERT: 4 parameters each, well under SQLite's parameter limit.
_CHUNK = 500


# WhiteBalloon's messages.db, read-only. Values are returned as stored; the importer
# checks and converts them.


@dataclass(frozen=True, slots=True)
class UpstreamThread:
    id: int
    created_by: object
    direct_key: object
    created_at: object


@dataclass(frozen=True, slots=True)
class UpstreamParticipant:
    thread_id: object
    user_id: object
    last_read_at: object


@dataclass(frozen=True, slots=True)
class UpstreamMessage:
    id: int
    thread_id: object
    sender_id: object
    body: object
    created_at: object


@dataclass(frozen=True, slots=True)
class Upstream:
    threads: list[UpstreamThread]
    participants: list[UpstreamParticipant]
    messages: list[UpstreamMessage]


def _read_only_uri(path: Path) -> str:
    return f"file:{quote(os.path.abspath(path))}?mode=ro"


async def open_upstream(path: Path) -> aiosqlite.Connection:
    """A read-only connection: the importer can never write WhiteBalloon's database."""
    return await connect(_read_only_uri(path), read_only=True, uri=True)


async def missing_upstream_columns(conn: aiosqlite.Connection) -> dict[str, list[str]]:
    """Per table the importer needs, the columns it lacks (all of them: no such table).

    Raises sqlite3.DatabaseError when the file is not an SQLite database at all.
    """
    missing: dict[str, list[str]] = {}
    for table, columns in UPSTREAM_COLUMNS.items():
        rows = await fetch_all(conn, "SELECT name FROM pragma_table_info(?)", (table,))
        present = {row["name"] for row in rows}
        lacking = [column for column in columns if column not in present]
        if lacking:
            missing[table] = lacking
    return missing


async def read_upstream(conn: aiosqlite.Connection) -> Upstream:
    """Every thread, participant and message, from one consistent snapshot."""
    await conn.execute("BEGIN")
    try:
        threads = await fetch_all(
            conn,
            "SELECT id, created_by_user_id, direct_key, created_at FROM message_threads "
            "ORDER BY id",
        )
        participants = await fetch_all(
            conn,
            "SELECT thread_id, user_id, last_read_at FROM message_participants "
            "ORDER BY thread_id, user_id",
        )
        messages = await fetch_all(
            conn,
            "SELECT id, thread_id, sender_user_id, body, created_at FROM messages ORDER BY id",
        )
    finally:
        await conn.execute("COMMIT")
    return Upstream(
        threads=[UpstreamThread(r[0], r[1], r[2], r[3]) for r in threads],
        participants=[UpstreamParticipant(r[0], r[1], r[2]) for r in participants],
        messages=[UpstreamMessage(r[0], r[1], r[2], r[3], r[4]) for r in messages],
    )


# messaging.db: what was imported before.


def imported_threads(conn: TxConnection) -> dict[int, int]:
    """Upstream thread id -> the conversation it was imported into."""
    rows = fetch_all_tx(conn, "SELECT upstream_thread_id, conversation_id FROM imported_threads")
    return {row[0]: row[1] for row in rows}


def imported_messages(conn: TxConnection) -> dict[int, int]:
    """Upstream message id -> the gateway message it became."""
    rows = fetch_all_tx(conn, "SELECT upstream_message_id, message_id FROM imported_messages")
    return {row[0]: row[1] for row in rows}


async def conversation_of_upstream_thread(
    conn: ReadConnection, upstream_thread_id: int
) -> int | None:
    """The conversation an upstream thread was imported into (WhiteBalloon's old
    `/messages/<thread id>` links), or None if it was not."""
    row = await fetch_one(
        conn,
        "SELECT conversation_id FROM imported_threads WHERE upstream_thread_id = ?",
        (upstream_thread_id,),
    )
    return int(row[0]) if row else None


@dataclass(frozen=True, slots=True)
class History:
    """What a conversation already holds, as far as an import into it is concerned."""

    messages: int
    written_here: int  # messages written through the gateway, not imported
    newest_at: str | None


def conversation_history(conn: TxConnection, conversation_id: int) -> History:
    row = fetch_one_tx(
        conn,
        """
        SELECT count(*),
               count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM imported_messages i
                                                   WHERE i.message_id = m.id)),
               max(m.created_at)
          FROM messages m
         WHERE m.conversation_id = ?
        """,
        (conversation_id,),
    )
    assert row is not None
    return History(messages=row[0], written_here=row[1], newest_at=row[2])


# messaging.db: recording an import.


def record_imported_thread(
    conn: TxConnection, upstream_thread_id: int, conversation_id: int, now: str
) -> None:
    change_tx(
        conn,
        "INSERT INTO imported_threads (upstream_thread_id, conversation_id, imported_at) "
        "VALUES (?, ?, ?)",
        (upstream_thread_id, conversation_id, now),
    )


@dataclass(frozen=True, slots=True)
class ImportedMessage:
    upstream_id: int
    sender_id: int
    body: str
    created_at: str  # in the gateway's format (gateway/timestamps.py)


def insert_imported_messages(
    conn: TxConnection,
    conversation_id: int,
    upstream_thread_id: int,
    messages: Sequence[ImportedMessage],
    now: str,
) -> list[int]:
    """Store `messages` in the given order and remember where each came from; returns the
    new message ids, in the same order.

    No block check, unlike a send: this is history that was already delivered. The
    `messages_touch_conversation` trigger moves the conversation's `updated_at` along.
    """
    ids: list[int] = []
    for start in range(0, len(messages), _CHUNK):
        chunk = messages[start : start + _CHUNK]
        chunk_ids = insert_many_tx(
            conn,
            "INSERT INTO messages (conversation_id, sender_id, body, client_id, created_at) "
            "VALUES " + ", ".join(["(?, ?, ?, NULL, ?)"] * len(chunk)) + " RETURNING id",
            [v for m in chunk for v in (conversation_id, m.sender_id, m.body, m.created_at)],
        )
        change_tx(
            conn,
            "INSERT INTO imported_messages (upstream_message_id, message_id, "
            "upstream_thread_id, imported_at) VALUES " + ", ".join(["(?, ?, ?, ?)"] * len(chunk)),
            [
                v
                for m, message_id in zip(chunk, chunk_ids, strict=True)
                for v in (m.upstream_id, message_id, upstream_thread_id, now)
            ],
        )
        ids.extend(chunk_ids)
    return ids
