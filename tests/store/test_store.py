"""The storage layer: one writer, batched transactions, migrations, read-only directory."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.exceptions import InvalidBody, Unavailable
from gateway.store import Directory, MessagingStore
from gateway.store.schema import MIGRATIONS


async def open_store(path: Path) -> MessagingStore:
    return await MessagingStore.open(
        path, synchronous="FULL", read_connections=2, write_batch_size=64
    )


def insert_conversation(conn: sqlite3.Connection, low: int) -> int:
    cursor = conn.execute(
        "INSERT INTO conversations (member_low, member_high, created_by, origin_type, "
        "created_at, updated_at) VALUES (?, ?, ?, 'inbox', 'now', 'now')",
        (low, low + 1000, low),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def count_transactions(store: MessagingStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list counting the writer's transactions (it takes its lock once for each)."""
    lock = store._writer._engine._lock  # type: ignore[attr-defined]
    real_acquire = lock.acquire
    taken = [0]

    def counting() -> None:
        taken[0] += 1
        real_acquire()

    monkeypatch.setattr(lock, "acquire", counting)
    return taken


async def hold_the_writer(store: MessagingStore) -> tuple[threading.Event, asyncio.Task[None]]:
    """Occupy the writer's thread, so that writes queue up behind it and form one batch."""
    release, started = threading.Event(), threading.Event()

    def blocker(conn: sqlite3.Connection) -> None:
        started.set()
        assert release.wait(10)

    holding = asyncio.create_task(store.write(blocker))
    assert await asyncio.to_thread(started.wait, 10)
    return release, holding


async def test_concurrent_transactions_commit_together_but_fail_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(tmp_path / "m.db")
    try:

        def tx(n: int):  # type: ignore[no-untyped-def]
            def run(conn: sqlite3.Connection) -> int:
                row_id = insert_conversation(conn, n)
                if n % 5 == 0:
                    raise InvalidBody()  # rolled back alone, the rest of the batch stays
                return row_id

            return run

        release, holding = await hold_the_writer(store)
        transactions = count_transactions(store, monkeypatch)
        writes = [asyncio.create_task(store.write(tx(n))) for n in range(1, 21)]
        await asyncio.sleep(0.05)  # every write is queued behind the held writer
        release.set()
        await holding
        results = await asyncio.gather(*writes, return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(failures) == 4
        assert all(isinstance(f, InvalidBody) for f in failures)
        # The twenty ran as one batch, which a refusal rolled back; then each ran alone.
        assert transactions == [1 + 20]
        async with (
            store.reading() as conn,
            conn.execute("SELECT member_low FROM conversations ORDER BY member_low") as cursor,
        ):
            stored = [row[0] for row in await cursor.fetchall()]
        assert stored == [n for n in range(1, 21) if n % 5]
    finally:
        await store.close()


async def test_transactions_that_arrive_together_share_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(tmp_path / "m.db")
    try:
        release, holding = await hold_the_writer(store)
        transactions = count_transactions(store, monkeypatch)
        writes = [
            asyncio.create_task(store.write(lambda conn, n=n: insert_conversation(conn, n)))
            for n in range(1, 21)
        ]
        await asyncio.sleep(0.05)
        release.set()
        await holding
        assert len(set(await asyncio.gather(*writes))) == 20
        assert transactions == [1]
    finally:
        await store.close()


async def test_a_failed_commit_fails_the_whole_batch_and_the_writer_carries_on(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "m.db")
    try:

        def breaks_the_commit(conn: sqlite3.Connection) -> None:
            # A deferred foreign-key violation is only noticed by COMMIT.
            conn.execute("PRAGMA defer_foreign_keys = ON")
            conn.execute(
                "INSERT INTO messages (conversation_id, sender_id, body, created_at) "
                "VALUES (999, 1, 'orphan', 'now')"
            )

        release, holding = await hold_the_writer(store)
        batch = [
            asyncio.create_task(store.write(lambda conn: insert_conversation(conn, 1))),
            asyncio.create_task(store.write(breaks_the_commit)),
        ]
        await asyncio.sleep(0.05)
        release.set()
        await holding
        results = await asyncio.gather(*batch, return_exceptions=True)
        # Nothing of the batch is durable, so nobody hears success.
        assert all(isinstance(r, Unavailable) for r in results)
        assert await asyncio.wait_for(store.write(lambda conn: insert_conversation(conn, 2)), 5)
        async with (
            store.reading() as conn,
            conn.execute("SELECT member_low FROM conversations") as cursor,
        ):
            assert [row[0] for row in await cursor.fetchall()] == [2]
    finally:
        await store.close()


async def test_a_result_is_returned_only_once_it_is_durable(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "m.db")
    try:
        row_id = await store.write(lambda conn: insert_conversation(conn, 1))
        # Another connection (another process, even) sees it as soon as write() returns.
        with sqlite3.connect(tmp_path / "m.db") as other:
            assert other.execute("SELECT id FROM conversations").fetchall() == [(row_id,)]
    finally:
        await store.close()
    with pytest.raises(Unavailable):
        await store.write(lambda conn: insert_conversation(conn, 2))


async def test_reads_do_not_wait_behind_a_long_write(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "m.db")
    release = threading.Event()
    try:

        def slow_write(conn: sqlite3.Connection) -> None:
            # Holds the writer's thread (and the write transaction) until released.
            insert_conversation(conn, 1)
            assert release.wait(10)

        writing = asyncio.create_task(store.write(slow_write))
        await asyncio.sleep(0.05)
        async with store.reading() as conn, conn.execute("SELECT count(*) FROM conversations") as c:
            assert (await c.fetchone())[0] == 0  # type: ignore[index]
        release.set()
        await writing
    finally:
        await store.close()


async def test_migrations_run_once_and_record_the_version(tmp_path: Path) -> None:
    await (await open_store(tmp_path / "m.db")).close()
    await (await open_store(tmp_path / "m.db")).close()
    with sqlite3.connect(tmp_path / "m.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_the_directory_is_opened_read_only(app_db: Path) -> None:
    directory = await Directory.open(app_db, 1)
    try:
        async with directory._pool.connection() as conn:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await conn.execute("UPDATE users SET username = 'x'")
    finally:
        await directory.close()


async def test_the_writer_survives_a_batch_that_fails_outside_any_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(tmp_path / "m.db")
    try:
        lock = store._writer._engine._lock  # type: ignore[attr-defined]
        real_acquire = lock.acquire

        def broken_once() -> None:
            monkeypatch.setattr(lock, "acquire", real_acquire)
            raise OSError("lock file vanished")

        monkeypatch.setattr(lock, "acquire", broken_once)
        with pytest.raises(Unavailable):
            await asyncio.wait_for(store.write(lambda conn: insert_conversation(conn, 1)), 5)
        # The next write is served as usual, not left waiting forever.
        assert await asyncio.wait_for(store.write(lambda conn: insert_conversation(conn, 2)), 5)
    finally:
        await store.close()


def _open_writer_when_told(path: str, go: Any, results: Any) -> None:
    from gateway.store.connections import connect_writer
    from gateway.store.process_lock import ProcessLock

    lock = ProcessLock(Path(path + ".lock"))
    go.wait()
    try:
        connect_writer(Path(path), "FULL", lock).close()
        results.put("ok")
    except Exception as error:  # the refusal the test looks for
        results.put(repr(error))
    finally:
        lock.close()


def test_workers_starting_together_on_a_new_database_all_start(tmp_path: Path) -> None:
    """Without the lock around opening, one in four such starts failed: a worker switching
    the database to WAL while another migrated it got "database is locked" and died."""
    context = multiprocessing.get_context("spawn")
    for round_ in range(5):
        path = str(tmp_path / f"round{round_}" / "messaging.db")
        Path(path).parent.mkdir()
        go, results = context.Event(), context.Queue()
        workers = [
            context.Process(target=_open_writer_when_told, args=(path, go, results))
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        time.sleep(1.0)  # every process imported and waiting
        go.set()
        outcomes = [results.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        assert outcomes == ["ok"] * 4, (round_, outcomes)
