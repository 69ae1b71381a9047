"""Versioned schema of messaging.db.

Each migration runs once, in order, inside the write transaction that bumps
`PRAGMA user_version`, so several workers starting together apply it exactly once.
Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import aiosqlite

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations, messages, read pointers and the per-member event log.
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        member_low INTEGER NOT NULL,
        member_high INTEGER NOT NULL,
        created_by INTEGER NOT NULL,
        origin_type TEXT NOT NULL,
        origin_ref TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        CHECK (member_low < member_high),
        UNIQUE (member_low, member_high)
    );
    CREATE INDEX conversations_by_high ON conversations (member_high);

    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        sender_id INTEGER NOT NULL,
        body TEXT NOT NULL,
        client_id TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
    CREATE UNIQUE INDEX messages_by_client_id ON messages (sender_id, client_id)
        WHERE client_id IS NOT NULL;

    CREATE TABLE read_pointers (
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        user_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, user_id)
    ) WITHOUT ROWID;

    -- AUTOINCREMENT: ids are never reused, so a cursor can never point at a different event.
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX events_by_user ON events (user_id, id);
    """,
)


async def migrate(conn: aiosqlite.Connection) -> int:
    """Bring the schema up to date; returns the resulting version."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in _statements(script):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {number}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    # executescript() would commit the surrounding transaction; run statement by statement.
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
