"""The storage layer: the only code that opens connections or speaks SQL.

Its whole surface, as actions and queries use it (a second implementation must offer the
same):

- `MessagingStore` owns messaging.db: `write(tx)` runs `tx(conn)`, a synchronous function
  of the writer's `sqlite3.Connection`, on the writer's thread as one write transaction
  (batched with others) and returns its result after COMMIT; `reading()` lends an
  aiosqlite read connection that never waits for writes.
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
turns writing), `schema` (migrations), `rows` (shared column lists and row mappers),
`stand_in` (writes a main-app database for the demo, tests and load tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiosqlite

from gateway.store.connections import ReadPool, Transaction, Writer
from gateway.store.directory import Directory
from gateway.store.process_lock import ProcessLock

__all__ = ["Directory", "MessagingStore", "Transaction"]

T = TypeVar("T")


class MessagingStore:
    def __init__(self, writer: Writer, reads: ReadPool) -> None:
        self._writer = writer
        self._reads = reads

    @classmethod
    async def open(
        cls, path: Path, *, synchronous: str, read_connections: int, write_batch_size: int
    ) -> MessagingStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = ProcessLock(path.with_name(path.name + ".lock"))
        writer = Writer(path, synchronous=synchronous, batch_size=write_batch_size, lock=lock)
        try:
            await writer.start()  # opens the write connection and runs migrations
        except BaseException:
            lock.close()
            raise
        reads = await ReadPool.open(path, read_connections)
        return cls(writer, reads)

    async def write(self, tx: Transaction[T]) -> T:
        """Run `tx(conn)` on the writer's thread as one write transaction; returns its result
        after it is committed. `tx` is synchronous and must not touch the event loop."""
        return await self._writer.transaction(tx)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._reads.connection() as conn:
            yield conn

    async def close(self) -> None:
        await self._writer.close()
        await self._reads.close()
