"""The storage layer: the only code that opens connections or speaks SQL.

Its whole surface, as actions and queries use it (a second implementation must offer the
same):

- `MessagingStore` owns the gateway's database, SQLite (messaging.db) or PostgreSQL:
  `write(tx)` runs `tx(conn)`, a synchronous function of the writer's connection, on the
  writer's thread as one write transaction (batched with others) and returns its result
  after COMMIT; `reading()` lends a read connection that never waits for writes.
- The statement modules, functions of a connection: `messaging` (conversations, messages,
  read pointers, events), `moderation` (reports, blocks, intents, compliance and audit logs),
  `rate_limits` (token buckets), `imports` (the WhiteBalloon importer), `exports` (a
  moderator export's snapshot and pages), `metrics` (counts). Reads are async functions of
  an `aiosqlite.Connection`; writes, and the reads a write transaction makes, are
  synchronous functions of a `sqlite3.Connection`, for use inside `write(tx)` only. A query
  both need has one SQL text and one row mapper, and its synchronous twin is named `*_tx`
  (`messaging.conversation_between` / `messaging.conversation_between_tx`).
- `Directory` reads the main app's database (members, visibility, sessions), read-only.

Internals: `connections` (the writer thread and read pools), `process_lock` (workers take
turns writing), `postgres` (PostgreSQL connections, turns and notifications), `schema`
(migrations), `rows` (the connection protocols, runners and row mappers), `stand_in`
(writes a main-app database for the demo, tests and load tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from gateway.config import Database, PostgresUrl
from gateway.store.connections import ReadPool, SqliteEngine, Transaction, WriteEngine, Writer
from gateway.store.directory import Directory
from gateway.store.process_lock import ProcessLock
from gateway.store.rows import ReadConnection

__all__ = ["Directory", "MessagingStore", "Transaction"]

T = TypeVar("T")


class MessagingStore:
    def __init__(self, writer: Writer, reads: ReadPool[Any], location: Database) -> None:
        self._writer = writer
        self._reads = reads
        self.location = location

    @property
    def shared(self) -> bool:
        """Whether other hosts may write this database too (PostgreSQL)."""
        return isinstance(self.location, PostgresUrl)

    @classmethod
    async def open(
        cls, location: Database, *, synchronous: str, read_connections: int, write_batch_size: int
    ) -> MessagingStore:
        engine: WriteEngine
        if isinstance(location, PostgresUrl):
            from gateway.store import postgres
            from gateway.store.schema import migrate_postgres

            engine = postgres.PostgresEngine(location, migrate_postgres)
        else:
            location.parent.mkdir(parents=True, exist_ok=True)
            lock = ProcessLock(location.with_name(location.name + ".lock"))
            engine = SqliteEngine(location, synchronous, lock)
        writer = Writer(engine, batch_size=write_batch_size)
        try:
            await writer.start()  # opens the write connection and runs migrations
        except BaseException:
            engine.close()
            raise
        try:
            reads = await _read_pool(location, read_connections)
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reads, location)

    async def write(self, tx: Transaction[T]) -> T:
        """Run `tx(conn)` on the writer's thread as one write transaction; returns its result
        after it is committed. `tx` is synchronous and must not touch the event loop."""
        return await self._writer.transaction(tx)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[ReadConnection]:
        async with self._reads.connection() as conn:
            yield conn

    async def close(self) -> None:
        await self._writer.close()
        await self._reads.close()


async def _read_pool(location: Database, size: int) -> ReadPool[Any]:
    if isinstance(location, PostgresUrl):
        from gateway.store import postgres

        return ReadPool([await postgres.connect_read(location) for _ in range(size)])
    return await ReadPool.open(location, size)
