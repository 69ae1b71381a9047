"""Moving an instance from SQLite to PostgreSQL with `python -m gateway.copy_store`: members
find everything where it was, their open tabs resume from their cursors, and a copy that
cannot be made or proven leaves the target as it was."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import psycopg
import pytest

from gateway.config import PostgresUrl, Settings
from gateway.copy_store import main
from gateway.store import copy
from tests.support.api import new_conversation, send
from tests.support.members import ALICE, BOB, CAROL, as_member
from tests.support.moderation import harness
from tests.support.postgres import PostgresCluster
from tests.support.sse import open_stream


async def history(settings: Settings, cookies: dict[int, str]) -> dict[str, object]:
    """What members and moderators see, through the API."""
    async with harness(settings) as h:
        client = h.client
        inbox = await (
            await client.get("/api/conversations", headers=as_member(cookies[ALICE]))
        ).get_json()
        threads = {}
        for item in inbox["conversations"]:
            cid = item["conversation"]["id"] if "conversation" in item else item["id"]
            page = await client.get(
                f"/api/conversations/{cid}/messages", headers=as_member(cookies[ALICE])
            )
            threads[cid] = (await page.get_json())["messages"]
        log = await h.get("/api/moderation/log", 8)
        return {"inbox": inbox, "threads": threads, "log": await log.get_json()}


@pytest.fixture
async def used_sqlite(settings: Settings, cookies: dict[int, str]) -> tuple[Settings, str]:
    """An instance on SQLite with some of everything, and the last event id alice's tab saw."""
    async with harness(settings) as h:
        client = h.client
        with_bob = await new_conversation(client, cookies[ALICE], BOB)
        with_carol = await new_conversation(client, cookies[ALICE], CAROL)
        for n in range(5):
            await send(client, cookies[ALICE], with_bob, f"hello bob {n}", client_id=f"c{n}")
            await send(client, cookies[BOB], with_bob, f"hi alice {n}")
        await send(client, cookies[CAROL], with_carol, "hey")
        await h.report(with_bob, BOB, None)
        await h.post("/api/blocks", CAROL, {"member_id": ALICE})
        async with open_stream(client, cookies[ALICE]) as stream:
            cursor = (await stream.next_event()).id  # hello: where alice's tab is
    assert isinstance(settings.messaging_db, Path)
    return settings, str(cursor)


async def test_a_copied_instance_serves_the_same_history_and_resumes_cursors(
    used_sqlite: tuple[Settings, str],
    postgres_db: PostgresUrl,
    cookies: dict[int, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    on_sqlite, cursor = used_sqlite
    assert isinstance(on_sqlite.messaging_db, Path)
    assert main([str(on_sqlite.messaging_db), postgres_db.url]) == 0
    printed = capsys.readouterr().out
    assert "messages" in printed
    assert "verified" in printed

    on_postgres = dataclasses.replace(on_sqlite, messaging_db=postgres_db)
    assert await history(on_postgres, cookies) == await history(on_sqlite, cookies)

    async with harness(on_postgres) as h:
        client = h.client
        # Alice's tab reconnects with its cursor: no reset, and the next message arrives.
        async with open_stream(client, cookies[ALICE], last_event_id=cursor) as stream:
            assert (await stream.next_event()).event == "hello"
            conversation = await new_conversation(client, cookies[BOB], ALICE)
            sent = await (await send(client, cookies[BOB], conversation, "on postgres")).get_json()
            event = await stream.next_event()
            while event.event != "message":
                assert event.event != "reset"
                event = await stream.next_event()
            assert event.data["body"] == "on postgres"
            assert int(event.id) > int(cursor)
        # Ids continue after the source's: nothing is numbered twice.
        with sqlite3.connect(on_sqlite.messaging_db) as source:
            newest = source.execute("SELECT max(id) FROM messages").fetchone()[0]
        assert sent["message"]["id"] == newest + 1
        # A client_id used on SQLite is still known: a retried send is not stored twice.
        again = await send(client, cookies[ALICE], conversation, "hello bob 0", client_id="c0")
        assert again.status_code == 200  # the one stored on SQLite, not a new one
        assert (await again.get_json())["message"]["body"] == "hello bob 0"


async def test_a_target_that_is_not_empty_is_refused(
    used_sqlite: tuple[Settings, str], postgres_db: PostgresUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    on_sqlite, _ = used_sqlite
    with psycopg.connect(postgres_db.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int)")
    assert main([str(on_sqlite.messaging_db), postgres_db.url]) == 2
    assert "not empty" in capsys.readouterr().err
    with psycopg.connect(postgres_db.url) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert tables == [("notes",)]


async def test_a_copy_that_does_not_read_back_the_same_leaves_nothing(
    used_sqlite: tuple[Settings, str],
    postgres_db: PostgresUrl,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    on_sqlite, _ = used_sqlite
    real_copy_table = copy._copy_table

    def drop_a_row(
        src: sqlite3.Connection, dst: psycopg.Connection[object], table: str, key: str
    ) -> None:
        real_copy_table(src, dst, table, key)
        if table == "messages":  # as a faulty copy would
            dst.execute("DELETE FROM messages WHERE id = (SELECT max(id) FROM messages)")

    monkeypatch.setattr(copy, "_copy_table", drop_a_row)
    assert main([str(on_sqlite.messaging_db), postgres_db.url]) == 2
    assert "messages: 11 rows" in capsys.readouterr().err
    with psycopg.connect(postgres_db.url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone() == (0,)


def test_arguments_are_checked_before_anything_is_opened(
    tmp_path: Path, postgres_cluster: PostgresCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path / "m.db"), str(tmp_path / "other.db")])
    assert "not a postgresql:// URL" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.db"), postgres_cluster.url("any").url]) == 2
    assert "is not a file" in capsys.readouterr().err
