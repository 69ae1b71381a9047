"""PostgreSQL connections: the same store on a server that several gateway hosts share.

The statement modules speak the SQL both engines share, with SQLite's `?` and `:name`
placeholders; the connections here translate them (`translate`) and hand back rows that are
read by name or position like `sqlite3.Row` (`PgRow`).

Writers take turns. Every write transaction starts by taking one transaction-scoped advisory
lock (`WRITE_LOCK`), held until it commits or rolls back: what the kernel file lock is to
the workers of one SQLite host, this is to every worker of every host. It is also why the
event log can be tailed by id. A sequence hands out ids when rows are inserted, not when
they commit, so two overlapping transactions could commit ids 8 then 7, and a reader that
saw 8 before 7 was visible would step over 7 for good. With one writer at a time, the next
transaction draws its ids only after the previous one is committed and visible (PostgreSQL
makes a commit visible before it releases the transaction's locks), so ids become visible
in increasing order and `id > cursor` never skips or repeats an event. The price is that
writes do not run in parallel; the writer batches the sends that arrive together into one
transaction, so the lock is taken once per batch, not per message. (The alternative,
tailing behind the oldest transaction still in flight, lets writes overlap but needs a
cursor made of transaction ids, not the event ids clients already hold.)

After a commit, every host hears of it: a transaction that wrote something ends with
`NOTIFY`, which PostgreSQL delivers only once it has committed, to every `Listener`; a
listener wakes its worker's relay, which reads the log. A notification says "read the log"
and nothing else, so one that is lost costs latency (the relay also polls), never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.rows import RowMaker

from gateway.config import PostgresUrl
from gateway.exceptions import Unavailable

log = logging.getLogger(__name__)

# The notification channel a committed write announces itself on.
CHANNEL = "wb_messaging_events"
# The advisory lock every write transaction holds: one writer at a time, on every host.
# (A constant of the gateway's own, unlikely to meet another application's key.)
WRITE_LOCK = 0x77626D7367_01  # "wbmsg", 1
CONNECT_TIMEOUT_SECONDS = 10


class PgRow:
    """One result row, by column name or position, like `sqlite3.Row`."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _rows(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> RowMaker[PgRow]:
    names = [column.name for column in cursor.description or ()]
    index = {name: n for n, name in enumerate(names)}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(values, index)

    return make


_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\?|%|(?<![:\w]):([A-Za-z_]\w*)""")


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """A statement with SQLite's placeholders (`?`, `:name`) in psycopg's (`%s`,
    `%(name)s`); quoted text is left alone, and a literal `%` is doubled."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if match.group(1) is not None:
            return f"%({match.group(1)})s"
        return token  # a quoted string or identifier

    return _TOKENS.sub(replace, sql)


class PgTxConnection:
    """The writer's connection, used by a write transaction like a `sqlite3.Connection`."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[PgRow]) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[PgRow]:
        return self.raw.execute(translate(sql), parameters or None)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


class PgReadConnection:
    """A read pool's connection (autocommit: each statement sees what is committed).

    A connection the server dropped (a restart, a failover) is replaced at its next use, and
    a read it broke is tried once more on the new one: reads change nothing. While the
    server cannot be reached, a read raises `Unavailable` (503), not an internal error.
    """

    dialect = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection[PgRow], url: PostgresUrl) -> None:
        self.raw = conn
        self._url = url

    async def execute_fetchall(self, sql: str, parameters: Any = (), /) -> list[PgRow]:
        query = translate(sql)
        for attempt in range(2):
            try:
                if self.raw.closed or self.raw.broken:
                    self.raw = await _connect_async(self._url)
                cursor = await self.raw.execute(query, parameters or None)
                return await cursor.fetchall()
            except psycopg.OperationalError as error:
                if not (self.raw.closed or self.raw.broken):
                    raise  # the statement's own fault, not the connection's
                if attempt == 1:
                    raise Unavailable() from error
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.raw.close()


def connect_tx(url: PostgresUrl) -> PgTxConnection:
    conn = psycopg.connect(
        url.url, autocommit=True, row_factory=_rows, connect_timeout=CONNECT_TIMEOUT_SECONDS
    )
    return PgTxConnection(conn)


async def connect_read(url: PostgresUrl) -> PgReadConnection:
    return PgReadConnection(await _connect_async(url), url)


async def _connect_async(url: PostgresUrl) -> psycopg.AsyncConnection[PgRow]:
    conn = await psycopg.AsyncConnection.connect(
        url.url, autocommit=True, row_factory=_rows, connect_timeout=CONNECT_TIMEOUT_SECONDS
    )
    # Like SQLite's query_only: a read connection can never write, even by mistake.
    await conn.execute("SET default_transaction_read_only = on")
    return conn


class PostgresEngine:
    """How the writer (`connections.Writer`) opens, begins and commits on PostgreSQL."""

    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, url: PostgresUrl, migrate: Callable[[PgTxConnection], int]) -> None:
        self._url = url
        self._migrate = migrate

    def connect(self) -> PgTxConnection:
        conn = connect_tx(self._url)
        try:
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def turn(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()  # the turn is the advisory lock `begin` takes

    def begin(self, conn: PgTxConnection) -> None:
        # One round trip; no parameters, so psycopg sends it as one simple query.
        conn.raw.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})", prepare=False)

    def commit(self, conn: PgTxConnection) -> None:
        # PostgreSQL answers COMMIT of a transaction that a failed statement aborted with a
        # silent ROLLBACK. The NOTIFY before it fails instead ("current transaction is
        # aborted"), so a batch whose failure was swallowed is never reported committed.
        conn.raw.execute(f"NOTIFY {CHANNEL}; COMMIT", prepare=False)

    def rollback(self, conn: PgTxConnection) -> None:
        if conn.in_transaction:
            conn.raw.execute("ROLLBACK", prepare=False)

    def usable(self, conn: PgTxConnection) -> bool:
        return not conn.raw.closed and not conn.raw.broken

    def close(self) -> None:
        pass


class Listener:
    """Wakes this worker's relay whenever any host commits a write (`NOTIFY`)."""

    def __init__(self, url: PostgresUrl, on_notify: Callable[[], None]) -> None:
        self._url = url
        self._on_notify = on_notify
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        conn = await self._connect()  # fail start-up, rather than run deaf, if it can't
        self._task = asyncio.create_task(self._run(conn), name="postgres-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self._url.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
        await conn.execute(f"LISTEN {CHANNEL}")
        return conn

    async def _run(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            try:
                async with conn:
                    async for _ in conn.notifies():
                        self._on_notify()
            except psycopg.Error:
                log.warning("lost the PostgreSQL notification connection; reconnecting")
            # Whatever was committed meanwhile is in the log: read it once reconnected.
            conn = await self._reconnect()
            self._on_notify()

    async def _reconnect(self) -> psycopg.AsyncConnection[Any]:
        while True:
            try:
                return await self._connect()
            except psycopg.Error:
                await asyncio.sleep(1)
