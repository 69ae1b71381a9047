"""Connections: one writer thread that owns the only write connection, and read pools.

The writer is a thread of its own holding a plain `sqlite3.Connection`, and runs whole
transactions handed to it as synchronous functions of that connection. Transactions that
arrive while another batch is committing are run together in one transaction and committed
with one fsync: under load, many sends cost one disk flush. A batch is one hand-over to the
thread (lock, BEGIN, every function, COMMIT, unlock) and one back to the event loop, however
many statements it runs. If one of them raises, the batch is rolled back and each is run
again alone, so a refusal never undoes a batch-mate's write. A function's result is returned
only after its COMMIT succeeded, so callers can publish what they wrote. Reads use their own
aiosqlite connections (WAL), so they never wait behind a write.

The writer is the same for both engines; what differs (how to open, begin, commit, and take
turns with the other processes writing the same database) is a `WriteEngine`:
`SqliteEngine` here, `postgres.PostgresEngine` for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import aiosqlite

from gateway.exceptions import Unavailable
from gateway.store.process_lock import ProcessLock
from gateway.store.rows import TxConnection
from gateway.store.schema import migrate

T = TypeVar("T")
C = TypeVar("C")
# A write transaction: runs on the writer's thread, so it must not touch the event loop.
Transaction = Callable[[TxConnection], T]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


async def connect(
    path: Path | str, *, read_only: bool = False, uri: bool = False
) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(str(path), isolation_level=None, uri=uri)
    conn.row_factory = sqlite3.Row
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if read_only:
        await conn.execute("PRAGMA query_only = ON")
    return conn


def connect_writer(path: Path, synchronous: str, lock: ProcessLock) -> sqlite3.Connection:
    """The write connection, migrated; to be created (and used) on the writer's thread.

    Under the workers' write lock: workers starting together on a new database would
    otherwise race to switch it to WAL, which SQLite refuses at once ("database is locked",
    no busy wait) while another connection is migrating it, and that worker fails to start.
    """
    with lock:
        return _connect_writer(path, synchronous)


def _connect_writer(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class WriteEngine(Protocol):
    """What the writer needs of a database engine; every method runs on the writer's thread."""

    errors: tuple[type[Exception], ...]  # what a failed BEGIN or COMMIT raises

    def connect(self) -> Any:
        """The write connection, its schema migrated."""

    def turn(self) -> AbstractContextManager[object]:
        """Held around each write transaction: this process's turn among the writers."""

    def begin(self, conn: Any) -> None: ...

    def commit(self, conn: Any) -> None: ...

    def rollback(self, conn: Any) -> None:
        """Roll back the open transaction, if any."""

    def usable(self, conn: Any) -> bool:
        """False once the connection is lost for good (a server restart): reconnect."""

    def close(self) -> None: ...


class SqliteEngine:
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, synchronous: str, lock: ProcessLock) -> None:
        self._path = path
        self._synchronous = synchronous
        self._lock = lock

    def connect(self) -> sqlite3.Connection:
        return connect_writer(self._path, self._synchronous, self._lock)

    def turn(self) -> ProcessLock:
        return self._lock

    def begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    def rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def usable(self, conn: sqlite3.Connection) -> bool:
        return True

    def close(self) -> None:
        self._lock.close()


_Job = tuple[Transaction[Any], "asyncio.Future[Any]"]
_Outcome = tuple[bool, Any]


class Writer:
    """The single owner of a database's write connection, on a thread of its own."""

    def __init__(self, engine: WriteEngine, *, batch_size: int) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._conn: Any = None  # the engine's connection, opened on the writer's thread
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    async def start(self) -> None:
        """Open (and migrate) the write connection on the writer's thread."""
        self._loop = asyncio.get_running_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="store-writer", daemon=True
        )
        self._thread.start()
        try:
            await asyncio.wrap_future(ready)
        except BaseException:
            self._thread = None
            raise

    async def transaction(self, tx: Transaction[T]) -> T:
        """Run `tx` in a write transaction; returns once it is committed."""
        if self._closing or self._thread is None or self._loop is None:
            raise Unavailable()
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((tx, future))
        return await future

    async def close(self) -> None:
        self._closing = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)  # after every job already queued
            await asyncio.to_thread(thread.join)
        self._engine.close()

    # On the writer's thread.

    def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            self._conn = self._engine.connect()
        except BaseException as error:
            ready.set_exception(error)
            return
        ready.set_result(None)
        try:
            while (batch := self._next_batch()) is not None:
                self._run(batch)
        finally:
            self._conn.close()

    def _next_batch(self) -> list[_Job] | None:
        job = self._jobs.get()
        if job is None:
            return None
        batch = [job]
        while len(batch) < self._batch_size:
            try:
                next_job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if next_job is None:
                self._jobs.put(None)  # finish this batch, then stop
                break
            batch.append(next_job)
        return batch

    def _run(self, batch: list[_Job]) -> None:
        # A caller that gave up before its turn (client went away) gets nothing written.
        batch = [(tx, future) for tx, future in batch if not future.done()]
        if not batch:
            return
        try:
            outcomes = self._commit([tx for tx, _ in batch])
        except Exception:
            # The writer must outlive any one batch, or every later write would hang.
            log.exception("write batch of %d jobs failed", len(batch))
            outcomes = [(False, Unavailable())] * len(batch)
        assert self._loop is not None
        try:
            # One wake-up of the event loop for the whole batch.
            self._loop.call_soon_threadsafe(_settle, [f for _, f in batch], outcomes)
        except RuntimeError:  # the event loop is gone: nobody is waiting any more
            log.warning("write batch of %d jobs finished after its event loop", len(batch))

    def _commit(self, jobs: list[Transaction[Any]]) -> list[_Outcome]:
        try:
            return self._together(jobs)
        except _JobFailed:
            # Rare: one transaction refused (e.g. a block). Its batch-mates were rolled back
            # with it, so each runs again on its own and only the refused one fails.
            return [self._together([tx])[0] for tx in jobs]

    def _together(self, jobs: list[Transaction[Any]]) -> list[_Outcome]:
        """Every job in one transaction and one fsync; no savepoints, as failures are rare."""
        with self._engine.turn():  # blocking is fine: this thread does nothing else meanwhile
            return self._in_transaction(jobs)

    def _in_transaction(self, jobs: list[Transaction[Any]]) -> list[_Outcome]:
        engine = self._engine
        if not self._begin():
            return [(False, Unavailable())] * len(jobs)
        conn = self._conn
        results: list[_Outcome] = []
        for tx in jobs:
            try:
                results.append((True, tx(conn)))
            except Exception as error:
                self._rollback()
                if len(jobs) == 1:
                    return [(False, error)]
                raise _JobFailed from error
        try:
            engine.commit(conn)
        except engine.errors:
            # Disk full, I/O error: nothing of this batch is durable, so nobody hears success.
            log.exception("write transaction of %d jobs failed to commit", len(results))
            self._rollback()
            return [(False, Unavailable())] * len(results)
        return results

    def _begin(self) -> bool:
        engine = self._engine
        try:
            if not engine.usable(self._conn):
                # The server went away and came back (or not): one new connection per try.
                self._conn.close()
                self._conn = engine.connect()
            engine.begin(self._conn)
        except engine.errors:
            log.exception("could not start a write transaction")
            return False
        return True

    def _rollback(self) -> None:
        try:
            self._engine.rollback(self._conn)
        except self._engine.errors:
            log.exception("could not roll back; the connection is replaced at the next write")


def _settle(futures: list[asyncio.Future[Any]], outcomes: list[_Outcome]) -> None:
    for future, (ok, value) in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _JobFailed(Exception):
    """A job of a shared transaction raised; the batch is rolled back and retried one by one."""


class _Closeable(Protocol):
    async def close(self) -> None: ...


R = TypeVar("R", bound=_Closeable)


class ReadPool(Generic[R]):
    """A fixed set of read-only connections handed out one request at a time."""

    def __init__(self, conns: list[R]) -> None:
        self._conns = conns
        self._idle: asyncio.Queue[R] = asyncio.Queue()
        for conn in conns:
            self._idle.put_nowait(conn)

    @classmethod
    async def open(
        cls, path: Path | str, size: int, *, uri: bool = False
    ) -> ReadPool[aiosqlite.Connection]:
        return ReadPool([await connect(path, read_only=True, uri=uri) for _ in range(size)])

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[R]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._conns:
            await conn.close()
