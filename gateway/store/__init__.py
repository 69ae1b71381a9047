"""The storage layer: the only code that opens connections or speaks SQL.

`MessagingStore` owns messaging.db (one writer, a read pool); `Directory` reads the main
app's database. The SQL itself lives in `messaging` and `directory`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiosqlite

from gateway.store.connections import ReadPool, Transaction, Writer, connect
from gateway.store.directory import DEMO_MEMBERS, Directory, DirectoryEntry, create_directory
from gateway.store.process_lock import ProcessLock
from gateway.store.schema import migrate

__all__ = ["DEMO_MEMBERS", "Directory", "DirectoryEntry", "MessagingStore", "create_directory"]

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
