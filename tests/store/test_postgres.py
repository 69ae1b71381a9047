"""The store on PostgreSQL, where several hosts share one database: what only sharing can
break. Each `MessagingStore` opened here stands for one gateway host (its own writer thread,
read pool and notification listener), all on one throwaway cluster."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from itertools import permutations
from pathlib import Path

import psycopg
import pytest

from gateway.config import PostgresUrl
from gateway.exceptions import Unavailable
from gateway.live.events import PendingEvent
from gateway.messaging.models import Origin
from gateway.store import Directory, MessagingStore, messaging
from gateway.store.postgres import Listener
from gateway.store.schema import POSTGRES_BASE_VERSION, POSTGRES_MIGRATIONS
from tests.support.members import MEMBERS
from tests.support.postgres import PostgresCluster, whiteballoon_on_postgres

NOW = "2026-12-01T00:00:00.000Z"


async def open_host(url: PostgresUrl) -> MessagingStore:
    return await MessagingStore.open(
        url, synchronous="FULL", read_connections=2, write_batch_size=64
    )


@pytest.fixture
async def hosts(postgres_db: PostgresUrl) -> AsyncIterator[tuple[MessagingStore, MessagingStore]]:
    first, second = await asyncio.gather(open_host(postgres_db), open_host(postgres_db))
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def event_for(user_id: int) -> list[PendingEvent]:
    return [PendingEvent(user_id, "read", {"conversation_id": 1, "message_id": user_id})]


async def test_hosts_starting_together_migrate_once(postgres_db: PostgresUrl) -> None:
    stores = await asyncio.gather(*(open_host(postgres_db) for _ in range(4)))
    for store in stores:
        await store.close()
    with psycopg.connect(postgres_db.url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    assert versions == [POSTGRES_BASE_VERSION - 1 + len(POSTGRES_MIGRATIONS)]


async def test_a_tail_by_id_never_skips_an_event_committed_late(
    hosts: tuple[MessagingStore, MessagingStore],
) -> None:
    """Host A draws an event id, then takes its time committing; host B writes meanwhile.
    Were B's higher id visible before A's lower one, a reader at B's id would never see A's
    event. Writers take turns, so B's write waits for A's commit, and ids appear in order."""
    slow, fast = hosts
    drawn, release = threading.Event(), threading.Event()

    def slow_write(conn: object) -> list[int]:
        ids = [e.id for e in messaging.insert_events(conn, event_for(1), NOW)]  # type: ignore[arg-type]
        drawn.set()
        assert release.wait(10)
        return ids

    slow_task = asyncio.create_task(slow.write(slow_write))
    assert await asyncio.to_thread(drawn.wait, 10)
    fast_task = asyncio.create_task(
        fast.write(lambda conn: [e.id for e in messaging.insert_events(conn, event_for(2), NOW)])
    )
    seen: list[int] = []
    cursor = 0
    for _ in range(20):  # a reader tails the log while the two commit
        async with fast.reading() as conn:
            for event in await messaging.events_of_everyone(conn, cursor, 100):
                seen.append(event.id)
                cursor = event.id
        await asyncio.sleep(0.01)
    release.set()
    slow_ids, fast_ids = await slow_task, await fast_task
    async with fast.reading() as conn:
        seen += [e.id for e in await messaging.events_of_everyone(conn, cursor, 100)]
    assert slow_ids[0] < fast_ids[0]
    assert seen == slow_ids + fast_ids  # each once, in order, none stepped over


async def test_one_conversation_per_pair_when_two_hosts_start_it_at_once(
    hosts: tuple[MessagingStore, MessagingStore],
) -> None:
    results = await asyncio.gather(
        *(
            host.write(
                lambda conn, a=a, b=b: messaging.insert_conversation(
                    conn, a, b, Origin("inbox"), NOW
                )
            )
            for host, (a, b) in zip(hosts * 5, [(1, 2), (2, 1)] * 5, strict=True)
        )
    )
    assert len({conversation.id for conversation, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1


async def test_a_client_id_stores_one_message_across_hosts(
    hosts: tuple[MessagingStore, MessagingStore],
) -> None:
    first, second = hosts
    conversation, _ = await first.write(
        lambda conn: messaging.insert_conversation(conn, 1, 2, Origin("inbox"), NOW)
    )

    def send(conn: object) -> object:
        return messaging.insert_message(conn, conversation.id, 1, 2, "hi", "client-1", NOW)  # type: ignore[arg-type]

    stored = await asyncio.gather(first.write(send), second.write(send))
    assert sorted(message is None for message in stored) == [False, True]
    async with second.reading() as conn:
        stored_once = await messaging.message_by_client_id(conn, 1, "client-1")
    assert stored_once is not None
    assert stored_once.body == "hi"


async def test_every_host_hears_a_commit_and_a_lost_listener_reconnects(
    hosts: tuple[MessagingStore, MessagingStore], postgres_db: PostgresUrl
) -> None:
    first, _ = hosts
    heard = asyncio.Event()
    listener = Listener(postgres_db, on_notify=heard.set)
    await listener.start()
    try:
        await first.write(lambda conn: messaging.insert_events(conn, event_for(1), NOW))
        await asyncio.wait_for(heard.wait(), 5)
        heard.clear()
        with psycopg.connect(postgres_db.url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND pid != pg_backend_pid()"
            )
        # Reconnected, it says so (whatever was committed meanwhile is in the log) ...
        await asyncio.wait_for(heard.wait(), 10)
        heard.clear()
        # ... and hears the next commit.
        await first.write(lambda conn: messaging.insert_events(conn, event_for(1), NOW))
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        await listener.close()


def terminate_backends(url: PostgresUrl) -> None:
    """What a server restart does to every connection: end them."""
    with psycopg.connect(url.url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid != pg_backend_pid() AND backend_type = 'client backend'"
        )


async def test_reads_carry_on_after_the_server_drops_every_connection(
    hosts: tuple[MessagingStore, MessagingStore], postgres_db: PostgresUrl
) -> None:
    first, _ = hosts
    await first.write(lambda conn: messaging.insert_events(conn, event_for(1), NOW))
    terminate_backends(postgres_db)
    for _ in range(4):  # every connection of the pool, each replaced at its next use
        async with first.reading() as conn:
            assert (await messaging.event_id_bounds(conn))[1] == 1


async def test_the_writer_reconnects_after_losing_its_connection(
    hosts: tuple[MessagingStore, MessagingStore], postgres_db: PostgresUrl
) -> None:
    first, _ = hosts
    await first.write(lambda conn: messaging.insert_events(conn, event_for(1), NOW))
    terminate_backends(postgres_db)
    outcomes = []
    for _ in range(2):  # the first write may find the connection dead; the next is served
        try:
            outcomes.append(
                await asyncio.wait_for(
                    first.write(lambda conn: messaging.insert_events(conn, event_for(1), NOW)), 10
                )
            )
        except Exception as error:
            outcomes.append(error)
    assert isinstance(outcomes[-1], list)


@pytest.fixture
def app_db_on_postgres(postgres_cluster: PostgresCluster) -> Iterator[PostgresUrl]:
    with whiteballoon_on_postgres(postgres_cluster, MEMBERS) as app_db:
        app_db.sign_in(1, "live")
        app_db.sign_in(2, "pending", approved=False)
        yield app_db.reader


async def test_the_directory_on_postgres_answers_as_on_sqlite(
    app_db: Path, app_db_on_postgres: PostgresUrl
) -> None:
    on_sqlite = await Directory.open(app_db, 1)
    on_postgres = await Directory.open(app_db_on_postgres, 1)
    try:
        ids = [m.user_id for m in MEMBERS]
        for viewer, member in permutations(ids, 2):
            assert await on_postgres.sight(viewer, member) == await on_sqlite.sight(viewer, member)
        for viewer in ids:
            for query in ("", "a", "Mod"):
                assert await on_postgres.messageable(viewer, query, 50) == (
                    await on_sqlite.messageable(viewer, query, 50)
                )
        assert await on_postgres.has_moderator_attribute(12)
        assert not await on_postgres.has_moderator_attribute(11)
        sessions = await on_postgres.app_sessions(["live", "pending", "gone"])
        assert set(sessions) == {"live", "pending"}
        assert sessions["live"].fully_authenticated
        assert not sessions["pending"].fully_authenticated
        assert sessions["live"].expires_at is not None
        assert sessions["live"].expires_at > datetime.now(UTC).replace(tzinfo=None)
    finally:
        await on_sqlite.close()
        await on_postgres.close()


async def test_the_directory_never_writes_the_main_apps_database(
    app_db_on_postgres: PostgresUrl,
) -> None:
    directory = await Directory.open(app_db_on_postgres, 1)
    try:
        async with directory._pool.connection() as conn:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await conn.execute_fetchall("UPDATE users SET username = 'x'")
    finally:
        await directory.close()


async def test_a_batch_whose_statement_failed_is_never_reported_committed(
    hosts: tuple[MessagingStore, MessagingStore],
) -> None:
    """On PostgreSQL a failed statement aborts the transaction, and COMMIT then quietly rolls
    back: a write that swallowed the error must still not be told it was committed."""
    first, _ = hosts

    def swallows_an_error(conn: object) -> str:
        messaging.insert_events(conn, event_for(1), NOW)  # type: ignore[arg-type]
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT 1 / 0")  # type: ignore[attr-defined]
        return "written?"

    with pytest.raises(Unavailable):
        await first.write(swallows_an_error)
    async with first.reading() as conn:
        assert await messaging.events_of_everyone(conn, 0, 10) == []
    # The writer carries on.
    assert await first.write(lambda conn: messaging.insert_events(conn, event_for(1), NOW))
