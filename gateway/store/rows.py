"""What every SQL module of the store shares: running one statement, and turning rows into
the models that several tables' queries return.

Two runners of each kind: `fetch_all`, `fetch_one` and `change` are async, for reads on an
aiosqlite connection of a read pool; `fetch_all_tx`, `fetch_one_tx` and `change_tx` are
their synchronous twins, for a write transaction on the writer's own `sqlite3.Connection`
(see `connections.Writer`). A query needed by both keeps one SQL text and one row mapper.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import aiosqlite

from gateway.messaging.models import Conversation, Message, Origin, OriginType

CONVERSATION_COLUMNS = (
    "id, member_low, member_high, created_by, origin_type, origin_ref, created_at, updated_at"
)
MESSAGE_COLUMNS = "id, conversation_id, sender_id, body, client_id, created_at"
# Whether either of two members blocked the other; parameters (a, b, b, a). One definition
# for the refusal of a start and the one folded into a send's INSERT.
BLOCK_BETWEEN = (
    "EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = ? AND blocked_id = ?) "
    "OR (blocker_id = ? AND blocked_id = ?))"
)


# Each aiosqlite call is a round trip to the connection's thread: one per statement, not
# three (execute, fetch, close).
async def fetch_all(
    conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
) -> list[sqlite3.Row]:
    return cast(list[sqlite3.Row], await conn.execute_fetchall(sql, params))


async def fetch_one(
    conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
) -> sqlite3.Row | None:
    rows = await fetch_all(conn, sql, params)
    return rows[0] if rows else None


async def change(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> tuple[int, int]:
    """(rows changed, last inserted rowid) of one statement."""
    cursor = await conn.execute(sql, params)
    # Not closed: closing is another round trip, and a finished statement holds nothing.
    return cursor.rowcount, cursor.lastrowid or 0


def fetch_all_tx(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()
) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def fetch_one_tx(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()
) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
    return row


def change_tx(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> tuple[int, int]:
    """(rows changed, last inserted rowid) of one statement."""
    cursor = conn.execute(sql, params)
    return cursor.rowcount, cursor.lastrowid or 0


def conversation_from_row(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        member_ids=(row["member_low"], row["member_high"]),
        created_by=row["created_by"],
        origin=Origin(cast(OriginType, row["origin_type"]), row["origin_ref"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def message_from_row(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        sender_id=row["sender_id"],
        body=row["body"],
        created_at=row["created_at"],
        client_id=row["client_id"],
    )
