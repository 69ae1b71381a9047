"""SQLite connections: one writer task that owns the only write connection, and read pools.

The writer runs whole transactions handed to it as async callables. Transactions that arrive
while another batch is committing are run together in one transaction and committed with one
fsync: under load, many sends cost one disk flush. If one of them raises, the batch is rolled
back and each is run again alone, so a refusal never undoes a batch-mate's write. A
callable's result is returned only after its COMMIT succeeded, so callers can publish what
they wrote. Reads use their own connections (WAL), so they never wait behind a write.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.exceptions import Unavailable
from gateway.store.process_lock import ProcessLock

T = TypeVar("T")
Transaction = Callable[[aiosqlite.Connection], Awaitable[T]]

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


class Writer:
    """The single owner of a database's write connection."""

    def __init__(self, conn: aiosqlite.Connection, batch_size: int, lock: ProcessLock) -> None:
        self._conn = conn
        self._batch_size = batch_size
        self._lock = lock
        self._jobs: asyncio.Queue[tuple[Transaction[Any], asyncio.Future[Any]] | None] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlite-writer")

    async def transaction(self, tx: Transaction[T]) -> T:
        """Run `tx` in a write transaction; returns once it is committed."""
        if self._closing or self._task is None:
            raise Unavailable()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((tx, future))
        return await future

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._jobs.put_nowait(None)
            await self._task
        await self._conn.close()
        self._lock.close()

    async def _run(self) -> None:
        while True:
            job = await self._jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self._batch_size and not self._jobs.empty():
                next_job = self._jobs.get_nowait()
                if next_job is None:
                    self._jobs.put_nowait(None)  # finish this batch, then stop
                    break
                batch.append(next_job)
            try:
                await self._commit(batch)
            except Exception:
                # The writer must outlive any one batch, or every later write would hang.
                log.exception("write batch of %d jobs failed", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(Unavailable())

    async def _commit(self, batch: list[tuple[Transaction[Any], asyncio.Future[Any]]]) -> None:
        # A caller that gave up before its turn (client went away) gets nothing written.
        batch = [(tx, future) for tx, future in batch if not future.done()]
        if not batch:
            return
        try:
            outcomes = await self._together([tx for tx, _ in batch])
        except _JobFailed:
            # Rare: one transaction refused (e.g. a block). Its batch-mates were rolled back
            # with it, so each runs again on its own and only the refused one fails.
            outcomes = [await self._alone(tx) for tx, _ in batch]
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _together(self, jobs: list[Transaction[Any]]) -> list[tuple[bool, Any]]:
        """Every job in one transaction and one fsync; no savepoints, as failures are rare."""
        await self._lock.acquire()
        try:
            return await self._in_transaction(jobs)
        finally:
            self._lock.release()

    async def _in_transaction(self, jobs: list[Transaction[Any]]) -> list[tuple[bool, Any]]:
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            log.exception("could not start a write transaction")
            return [(False, Unavailable())] * len(jobs)
        results = []
        for tx in jobs:
            try:
                results.append((True, await tx(self._conn)))
            except Exception as error:
                await self._rollback()
                if len(jobs) == 1:
                    return [(False, error)]
                raise _JobFailed from error
        return await self._finish(results)

    async def _alone(self, tx: Transaction[Any]) -> tuple[bool, Any]:
        return (await self._together([tx]))[0]

    async def _finish(self, results: list[tuple[bool, Any]]) -> list[tuple[bool, Any]]:
        try:
            await self._conn.execute("COMMIT")
        except sqlite3.Error:
            # Disk full, I/O error: nothing of this batch is durable, so nobody hears success.
            log.exception("write transaction of %d jobs failed to commit", len(results))
            await self._rollback()
            return [(False, Unavailable())] * len(results)
        return results

    async def _rollback(self) -> None:
        if self._conn.in_transaction:
            await self._conn.execute("ROLLBACK")


class _JobFailed(Exception):
    """A job of a shared transaction raised; the batch is rolled back and retried one by one."""


class ReadPool:
    """A fixed set of read-only connections handed out one request at a time."""

    def __init__(self, conns: list[aiosqlite.Connection]) -> None:
        self._conns = conns
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for conn in conns:
            self._idle.put_nowait(conn)

    @classmethod
    async def open(cls, path: Path | str, size: int, *, uri: bool = False) -> ReadPool:
        return cls([await connect(path, read_only=True, uri=uri) for _ in range(size)])

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._conns:
            await conn.close()
