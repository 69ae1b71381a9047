"""The storage layer: the only code that opens connections or speaks SQL.

Its whole surface, as actions and queries use it (a second implementation must offer the
same):

- `MessagingStore` owns messaging.db: `write(tx)` runs `tx(conn)` as one write transaction
  and returns after COMMIT; `reading()` lends a read connection that never waits for writes.
- The statement modules, functions of a connection: `messaging` (conversations, messages,
  read pointers, events), `moderation` (reports, blocks, intents, compliance and audit logs),
  `exports` (a moderator export's snapshot and pages), `metrics` (counts).
- `Directory` reads the main app's database (members, visibility, sessions), read-only.

Internals: `connections` (the writer task and read pools), `process_lock` (workers take
turns writing), `schema` (migrations), `rows` (shared column lists and row mappers),
`stand_in` (writes a main-app database for the demo, tests and load tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiosqlite

from gateway.store.connections import ReadPool, Transaction, Writer, connect
from gateway.store.directory import Directory
from gateway.store.process_lock import ProcessLock
from gateway.store.schema import migrate

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
        conn = await connect(path)
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA synchronous = {synchronous}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await migrate(conn)
        writer = Writer(conn, write_batch_size, ProcessLock(path.with_name(path.name + ".lock")))
        writer.start()
        reads = await ReadPool.open(path, read_connections)
        return cls(writer, reads)

    async def write(self, tx: Transaction[T]) -> T:
        """Run `tx` as one write transaction; returns after it is committed."""
        return await self._writer.transaction(tx)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._reads.connection() as conn:
            yield conn

    async def close(self) -> None:
        await self._writer.close()
        await self._reads.close()
