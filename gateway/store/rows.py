"""What every SQL module of the store shares: the connections it is given, running one
statement, and turning rows into the models that several tables' queries return.

Two runners of each kind: `fetch_all` and `fetch_one` are async, for reads on a connection of
a read pool (`ReadConnection`); `fetch_all_tx`, `fetch_one_tx` and `change_tx` are their
synchronous twins, for a write transaction on the writer's own connection (`TxConnection`,
see `connections.Writer`). A query needed by both keeps one SQL text and one row mapper.

Statements are written once, in the SQL that SQLite and PostgreSQL share, with `?` (or
`:name`) placeholders; the PostgreSQL connections (`postgres.py`) translate them. Where the
two engines truly differ, the statement module keeps both texts side by side and picks one
with `is_postgres(conn)`. Inserted ids are read with `RETURNING id`, never `lastrowid`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

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


class Row(Protocol):
    """A result row, by column name or position (`sqlite3.Row`, `postgres.PgRow`)."""

    def __getitem__(self, key: int | str, /) -> Any: ...


class TxCursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class TxConnection(Protocol):
    """The writer's connection inside `write(tx)`: `sqlite3.Connection` or
    `postgres.PgTxConnection`."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class ReadConnection(Protocol):
    """A read pool's connection: `aiosqlite.Connection` or `postgres.PgReadConnection`."""

    async def execute_fetchall(self, sql: str, parameters: Any = ..., /) -> Iterable[Any]: ...


def is_postgres(conn: TxConnection | ReadConnection) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgresql"


# Each aiosqlite call is a round trip to the connection's thread: one per statement, not
# three (execute, fetch, close).
async def fetch_all(
    conn: ReadConnection, sql: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[Row]:
    return list(await conn.execute_fetchall(sql, params))


async def fetch_one(conn: ReadConnection, sql: str, params: Sequence[Any] = ()) -> Row | None:
    rows = await fetch_all(conn, sql, params)
    return rows[0] if rows else None


def fetch_all_tx(conn: TxConnection, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    rows: list[Row] = conn.execute(sql, params).fetchall()
    return rows


def fetch_one_tx(conn: TxConnection, sql: str, params: Sequence[Any] = ()) -> Row | None:
    row: Row | None = conn.execute(sql, params).fetchone()
    return row


def change_tx(conn: TxConnection, sql: str, params: Sequence[Any]) -> int:
    """How many rows one statement changed."""
    cursor: TxCursor = conn.execute(sql, params)
    return cursor.rowcount


def insert_tx(conn: TxConnection, sql: str, params: Sequence[Any]) -> int | None:
    """The id of the row an `INSERT ... RETURNING id` wrote; None when it wrote none."""
    rows = fetch_all_tx(conn, sql, params)
    return int(rows[0][0]) if rows else None


def insert_many_tx(conn: TxConnection, sql: str, params: Sequence[Any]) -> list[int]:
    """The ids of the rows one multi-row `INSERT ... RETURNING id` wrote, in the order of its
    VALUES: ids are drawn in that order, and writers take turns (`connections.Writer`), so
    they ascend with it."""
    return sorted(int(row[0]) for row in fetch_all_tx(conn, sql, params))


def conversation_from_row(row: Row) -> Conversation:
    return Conversation(
        id=row["id"],
        member_ids=(row["member_low"], row["member_high"]),
        created_by=row["created_by"],
        origin=Origin(cast(OriginType, row["origin_type"]), row["origin_ref"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def message_from_row(row: Row) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        sender_id=row["sender_id"],
        body=row["body"],
        created_at=row["created_at"],
        client_id=row["client_id"],
    )


def parse_sqlalchemy_time(value: Any) -> datetime | None:
    """A time as WhiteBalloon's SQLAlchemy models store it, as naive UTC; None if unreadable.

    SQLite holds it as text ("2024-05-01 12:00:00.000000"), PostgreSQL as a timestamp. The
    main app writes naive UTC; an offset, if any, is honoured rather than dropped.
    """
    if isinstance(value, datetime):  # PostgreSQL's timestamp columns
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
