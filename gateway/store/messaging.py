"""Every SQL statement on messaging.db's conversations, messages, read pointers and events.

Functions take a connection: reads are async functions of an aiosqlite connection from the
read pool; writes are synchronous functions of the writer's `TxConnection`, run
inside a transaction on the writer's thread (see `connections.Writer`), so an action can
compose several of them into one atomic change. A read a write transaction also needs has
a synchronous twin, `*_tx`, with the same SQL text and row mapper.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from gateway.live.events import Event, EventType, PendingEvent
from gateway.messaging.models import Conversation, Message, Origin
from gateway.store.rows import (
    BLOCK_BETWEEN,
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    ReadConnection,
    Row,
    TxConnection,
    change_tx,
    conversation_from_row,
    fetch_all,
    fetch_all_tx,
    fetch_one,
    fetch_one_tx,
    insert_many_tx,
    insert_tx,
    is_postgres,
    message_from_row,
)


def _event(row: Row) -> Event:
    return Event(row["id"], row["user_id"], cast(EventType, row["type"]), row["data"])


# Conversations


_GET_CONVERSATION = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?"
_CONVERSATION_BETWEEN = (
    f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE member_low = ? AND member_high = ?"
)


def _pair(a: int, b: int) -> tuple[int, int]:
    return min(a, b), max(a, b)


def _conversation_or_none(row: Row | None) -> Conversation | None:
    return conversation_from_row(row) if row else None


async def get_conversation(conn: ReadConnection, conversation_id: int) -> Conversation | None:
    return _conversation_or_none(await fetch_one(conn, _GET_CONVERSATION, (conversation_id,)))


def get_conversation_tx(conn: TxConnection, conversation_id: int) -> Conversation | None:
    return _conversation_or_none(fetch_one_tx(conn, _GET_CONVERSATION, (conversation_id,)))


async def conversation_between(conn: ReadConnection, a: int, b: int) -> Conversation | None:
    return _conversation_or_none(await fetch_one(conn, _CONVERSATION_BETWEEN, _pair(a, b)))


def conversation_between_tx(conn: TxConnection, a: int, b: int) -> Conversation | None:
    return _conversation_or_none(fetch_one_tx(conn, _CONVERSATION_BETWEEN, _pair(a, b)))


def insert_conversation(
    conn: TxConnection, creator: int, peer: int, origin: Origin, now: str
) -> tuple[Conversation, bool]:
    """The pair's conversation and whether this call created it (one row per pair)."""
    changed = change_tx(
        conn,
        "INSERT INTO conversations (member_low, member_high, created_by, origin_type, "
        "origin_ref, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (member_low, member_high) DO NOTHING",
        (min(creator, peer), max(creator, peer), creator, origin.type, origin.ref, now, now),
    )
    created = changed == 1
    conversation = conversation_between_tx(conn, creator, peer)
    assert conversation is not None
    return conversation, created


async def inbox(
    conn: ReadConnection, user_id: int
) -> list[tuple[Conversation, int, int, int | None]]:
    """(conversation, unread count, read pointer, last message id) for each of the member's
    conversations, most recently active first."""
    rows = await fetch_all(
        conn,
        f"""
        SELECT {", ".join("c." + c.strip() for c in CONVERSATION_COLUMNS.split(","))},
               COALESCE(rp.message_id, 0) AS last_read,
               (SELECT count(*) FROM messages m
                 WHERE m.conversation_id = c.id AND m.id > COALESCE(rp.message_id, 0)
                   AND m.sender_id != :me) AS unread,
               (SELECT max(m.id) FROM messages m WHERE m.conversation_id = c.id) AS last_id
          FROM conversations c
          LEFT JOIN read_pointers rp ON rp.conversation_id = c.id AND rp.user_id = :me
         WHERE c.member_low = :me OR c.member_high = :me
         ORDER BY c.updated_at DESC, c.id DESC
        """,
        {"me": user_id},
    )
    return [(conversation_from_row(r), r["unread"], r["last_read"], r["last_id"]) for r in rows]


_CONVERSATION_STATE = """
    SELECT COALESCE(rp.message_id, 0) AS last_read,
           (SELECT count(*) FROM messages m
             WHERE m.conversation_id = :c AND m.id > COALESCE(rp.message_id, 0)
               AND m.sender_id != :me) AS unread,
           (SELECT max(m.id) FROM messages m WHERE m.conversation_id = :c) AS last_id
      FROM (SELECT 1) AS one LEFT JOIN read_pointers rp
        ON rp.conversation_id = :c AND rp.user_id = :me
"""


def _state(row: Row | None) -> tuple[int, int, int | None]:
    assert row is not None
    return row["unread"], row["last_read"], row["last_id"]


async def conversation_state(
    conn: ReadConnection, conversation_id: int, user_id: int
) -> tuple[int, int, int | None]:
    """(unread count, read pointer, last message id) of one conversation for one member."""
    params = {"c": conversation_id, "me": user_id}
    return _state(await fetch_one(conn, _CONVERSATION_STATE, params))  # type: ignore[arg-type]


def conversation_state_tx(
    conn: TxConnection, conversation_id: int, user_id: int
) -> tuple[int, int, int | None]:
    params = {"c": conversation_id, "me": user_id}
    return _state(fetch_one_tx(conn, _CONVERSATION_STATE, params))  # type: ignore[arg-type]


async def unread_total(conn: ReadConnection, user_id: int) -> int:
    """Messages from others after the member's read pointer, over all their conversations."""
    row = await fetch_one(
        conn,
        """
        SELECT count(*) FROM conversations c
          JOIN messages m ON m.conversation_id = c.id AND m.sender_id != :me
          LEFT JOIN read_pointers rp ON rp.conversation_id = c.id AND rp.user_id = :me
         WHERE (c.member_low = :me OR c.member_high = :me) AND m.id > COALESCE(rp.message_id, 0)
        """,
        {"me": user_id},  # type: ignore[arg-type]
    )
    return int(row[0]) if row else 0


# Messages


def _messages_by_id_sql(count: int) -> str:
    return f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({','.join('?' * count)})"


def _by_id(rows: list[Row]) -> dict[int, Message]:
    return {row["id"]: message_from_row(row) for row in rows}


async def messages_by_id(conn: ReadConnection, ids: Iterable[int]) -> dict[int, Message]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return _by_id(await fetch_all(conn, _messages_by_id_sql(len(wanted)), wanted))


def messages_by_id_tx(conn: TxConnection, ids: Iterable[int]) -> dict[int, Message]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return _by_id(fetch_all_tx(conn, _messages_by_id_sql(len(wanted)), wanted))


async def get_message(conn: ReadConnection, message_id: int) -> Message | None:
    return (await messages_by_id(conn, [message_id])).get(message_id)


def get_message_tx(conn: TxConnection, message_id: int) -> Message | None:
    return messages_by_id_tx(conn, [message_id]).get(message_id)


async def page_of_messages(
    conn: ReadConnection,
    conversation_id: int,
    *,
    before: int | None,
    after: int | None,
    limit: int,
) -> tuple[list[Message], bool]:
    """Up to `limit` messages in ascending id order, and whether more exist in that direction.

    With `after`, the page starts right after it (catching up); otherwise it ends right
    before `before` or at the newest message (scrolling back through history).
    """
    conditions = ["conversation_id = ?"]
    params: list[Any] = [conversation_id]
    if before is not None:
        conditions.append("id < ?")
        params.append(before)
    if after is not None:
        conditions.append("id > ?")
        params.append(after)
    order = "ASC" if after is not None else "DESC"
    rows = await fetch_all(
        conn,
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(conditions)} "
        f"ORDER BY id {order} LIMIT ?",
        [*params, limit + 1],
    )
    has_more = len(rows) > limit
    messages = [message_from_row(row) for row in rows[:limit]]
    if order == "DESC":
        messages.reverse()
    return messages, has_more


_MESSAGE_BY_CLIENT_ID = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id = ? AND client_id = ?"
)


async def message_by_client_id(
    conn: ReadConnection, sender_id: int, client_id: str
) -> Message | None:
    row = await fetch_one(conn, _MESSAGE_BY_CLIENT_ID, (sender_id, client_id))
    return message_from_row(row) if row else None


def message_by_client_id_tx(conn: TxConnection, sender_id: int, client_id: str) -> Message | None:
    row = fetch_one_tx(conn, _MESSAGE_BY_CLIENT_ID, (sender_id, client_id))
    return message_from_row(row) if row else None


def insert_message(
    conn: TxConnection,
    conversation_id: int,
    sender_id: int,
    recipient_id: int,
    body: str,
    client_id: str | None,
    now: str,
) -> Message | None:
    """Store a message; None when either member blocked the other or `client_id` was used.

    One statement, the block check folded in. A trigger (migration 3) moves the
    conversation's `updated_at` along with it.
    """
    message_id = insert_tx(
        conn,
        "INSERT INTO messages (conversation_id, sender_id, body, client_id, created_at) "
        f"SELECT ?, ?, ?, ?, ? WHERE NOT {BLOCK_BETWEEN} ON CONFLICT DO NOTHING RETURNING id",
        (
            *(conversation_id, sender_id, body, client_id, now),
            *(sender_id, recipient_id, recipient_id, sender_id),
        ),
    )
    if message_id is None:
        return None
    return Message(message_id, conversation_id, sender_id, body, now, client_id)


# Read pointers


def advance_read_pointer(
    conn: TxConnection, conversation_id: int, user_id: int, message_id: int
) -> bool:
    """Move the pointer forward only; returns whether it moved."""
    changed = change_tx(
        conn,
        "INSERT INTO read_pointers (conversation_id, user_id, message_id) VALUES (?, ?, ?) "
        "ON CONFLICT (conversation_id, user_id) DO UPDATE SET message_id = excluded.message_id "
        "WHERE excluded.message_id > read_pointers.message_id",
        (conversation_id, user_id, message_id),
    )
    return changed == 1


# Events


def insert_events(conn: TxConnection, pending: Sequence[PendingEvent], now: str) -> list[Event]:
    if not pending:
        return []
    encoded = [json.dumps(item.data, separators=(",", ":"), ensure_ascii=False) for item in pending]
    ids = insert_many_tx(
        conn,
        "INSERT INTO events (user_id, type, data, created_at) VALUES "
        + ", ".join(["(?, ?, ?, ?)"] * len(pending))
        + " RETURNING id",
        [
            v
            for item, data in zip(pending, encoded, strict=True)
            for v in (item.user_id, item.type, data, now)
        ],
    )
    return [
        Event(event_id, item.user_id, item.type, data)
        for event_id, item, data in zip(ids, pending, encoded, strict=True)
    ]


async def events_of_member(
    conn: ReadConnection, user_id: int, after: int, limit: int
) -> list[Event]:
    rows = await fetch_all(
        conn,
        "SELECT id, user_id, type, data FROM events WHERE user_id = ? AND id > ? "
        "ORDER BY id LIMIT ?",
        (user_id, after, limit),
    )
    return [_event(row) for row in rows]


async def events_of_everyone(conn: ReadConnection, after: int, limit: int) -> list[Event]:
    rows = await fetch_all(
        conn,
        "SELECT id, user_id, type, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
        (after, limit),
    )
    return [_event(row) for row in rows]


def prune_events(conn: TxConnection, older_than: str, batch: int) -> int:
    """Delete up to `batch` of the oldest events created before `older_than`."""
    # Ids grow with time, so walking from the oldest id finds old events without an index.
    # The newest event is kept, however old: on PostgreSQL it is where `event_id_bounds`
    # learns the newest id.
    deleted = change_tx(
        conn,
        "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?) "
        "AND created_at < ? AND id < (SELECT max(id) FROM events)",
        (batch, older_than),
    )
    return deleted


async def event_id_bounds(conn: ReadConnection) -> tuple[int, int]:
    """(oldest kept event id, newest event id ever committed).

    With every event pruned (or none yet), the oldest kept id is the next one to come.
    """
    if is_postgres(conn):
        # A sequence's value counts ids handed to transactions still in flight, whose events
        # are not visible yet: starting a relay there would skip them. The newest committed
        # id is the largest row, and retention always keeps that row (`prune_events`).
        sql = "SELECT min(id) AS oldest, COALESCE(max(id), 0) AS newest FROM events"
    else:
        # sqlite_sequence still knows the newest id when the newest rows were pruned.
        sql = (
            "SELECT (SELECT min(id) FROM events) AS oldest, "
            "(SELECT COALESCE(max(seq), 0) FROM sqlite_sequence WHERE name = 'events') AS newest"
        )
    row = await fetch_one(conn, sql, ())
    assert row is not None
    newest: int = row["newest"]
    return (row["oldest"] or newest + 1), newest
