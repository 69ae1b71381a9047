"""`python -m gateway.import_upstream`: WhiteBalloon's own messages.db into messaging.db,
checked through the gateway's API while the gateway runs."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient

from gateway.config import Database, Settings
from gateway.import_upstream import Refused, UnusableUpstream, import_upstream
from gateway.store.copy import TABLES
from tests.support.members import ALICE, BOB, CAROL, DAVE, HANK, as_member
from tests.support.stores import direct, store_kind

__all__ = ["store_kind"]  # these tests run on SQLite and on PostgreSQL alike

# WhiteBalloon's messaging tables exactly as its `init_messaging_db()` creates them
# (sqlmodel 0.0.16 / SQLAlchemy 2.0 `create_all` on SQLite; see notes/upstream.md).
UPSTREAM_SCHEMA = (
    """CREATE TABLE message_threads (
    id INTEGER NOT NULL,
    created_by_user_id INTEGER NOT NULL,
    direct_key VARCHAR(64),
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    latest_message_at DATETIME NOT NULL,
    PRIMARY KEY (id)
)""",
    "CREATE INDEX ix_message_threads_created_by_user_id ON message_threads (created_by_user_id)",
    "CREATE UNIQUE INDEX ix_message_threads_direct_key ON message_threads (direct_key)",
    "CREATE INDEX ix_message_threads_latest_message_at ON message_threads (latest_message_at)",
    """CREATE TABLE message_participants (
    id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    joined_at DATETIME NOT NULL,
    last_read_at DATETIME,
    unread_count INTEGER NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_message_participants_thread_user UNIQUE (thread_id, user_id),
    FOREIGN KEY(thread_id) REFERENCES message_threads (id)
)""",
    "CREATE INDEX ix_message_participants_thread_id ON message_participants (thread_id)",
    "CREATE INDEX ix_message_participants_user_id ON message_participants (user_id)",
    """CREATE TABLE messages (
    id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    sender_user_id INTEGER NOT NULL,
    body VARCHAR NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(thread_id) REFERENCES message_threads (id)
)""",
    "CREATE INDEX ix_messages_thread_id ON messages (thread_id)",
    "CREATE INDEX ix_messages_sender_user_id ON messages (sender_user_id)",
    "CREATE INDEX ix_messages_created_at ON messages (created_at)",
)

DAY = "2026-01-05 "


@dataclass
class Upstream:
    """A WhiteBalloon messages.db written the way its messaging service writes one."""

    path: Path

    def create(self) -> Upstream:
        with sqlite3.connect(self.path) as conn:
            for statement in UPSTREAM_SCHEMA:
                conn.execute(statement)
        return self

    def thread(self, thread_id: int, creator: int, peer: int, at: str) -> None:
        low, high = sorted((creator, peer))
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "INSERT INTO message_threads (id, created_by_user_id, direct_key, created_at, "
                "updated_at, latest_message_at) VALUES (?, ?, ?, ?, ?, ?)",
                (thread_id, creator, f"{low}:{high}", DAY + at, DAY + at, DAY + at),
            )
            for user in (creator, peer):
                conn.execute(
                    "INSERT INTO message_participants (thread_id, user_id, joined_at, "
                    "last_read_at, unread_count) VALUES (?, ?, ?, ?, 0)",
                    (thread_id, user, DAY + at, DAY + at if user == creator else None),
                )

    def message(self, message_id: int, thread_id: int, sender: int, body: str, at: str) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "INSERT INTO messages (id, thread_id, sender_user_id, body, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (message_id, thread_id, sender, body, at if " " in at else DAY + at),
            )

    def read(self, thread_id: int, user: int, at: str | None) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "UPDATE message_participants SET last_read_at = ? "
                "WHERE thread_id = ? AND user_id = ?",
                (None if at is None else DAY + at, thread_id, user),
            )


def sample(path: Path) -> Upstream:
    """Three threads; the first one's upstream ids are out of time order."""
    up = Upstream(path).create()
    up.thread(1, BOB, ALICE, "09:59:00.000000")
    # Time order is one .. five: ids 5, 3, 7, 4, 1. "two" and "three" share a time (ties go
    # by upstream id); "four" is in the same millisecond as bob's last_read_at, but after it.
    up.message(5, 1, ALICE, "one", "10:00:00.100000")
    up.message(3, 1, BOB, "two", "10:05:00.000000")
    up.message(7, 1, BOB, "three", "10:05:00.000000")
    up.message(4, 1, BOB, "four", "10:05:00.000900")
    up.message(1, 1, ALICE, "five", "11:00:00.000000")
    up.read(1, ALICE, "11:00:00.000000")
    up.read(1, BOB, "10:05:00.000400")
    up.thread(2, ALICE, DAVE, "08:00:00.000000")
    up.message(2, 2, ALICE, "hi dave", "09:00:00.000000")
    up.message(6, 2, DAVE, "hi alice", "09:30:00.000000")
    up.read(2, ALICE, None)  # never opened it
    up.read(2, DAVE, "09:00:00.500000")
    up.thread(3, HANK, CAROL, "12:00:00.000000")  # opened, never written in
    return up


def dump(db: Database) -> list[str]:
    """Everything in a database, to compare before and after a refused import."""
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            return list(conn.iterdump())
    with direct(db) as (conn, _):
        return [
            f"{table}: {row}"
            for table, key in TABLES
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {key}")
        ]


async def inbox(client: QuartClient, cookie: str) -> list[dict[str, Any]]:
    response = await client.get("/api/conversations", headers=as_member(cookie))
    assert response.status_code == 200
    return list((await response.get_json())["conversations"])


async def messages(client: QuartClient, cookie: str, conversation_id: int) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/conversations/{conversation_id}/messages?limit=100", headers=as_member(cookie)
    )
    assert response.status_code == 200
    return list((await response.get_json())["messages"])


async def send(client: QuartClient, cookie: str, peer: int, body: str) -> int:
    started = await client.post(
        "/api/conversations",
        json={"peer_id": peer, "origin": {"type": "inbox", "ref": None}},
        headers=as_member(cookie),
    )
    conversation_id = int((await started.get_json())["conversation"]["id"])
    sent = await client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"body": body},
        headers=as_member(cookie),
    )
    assert sent.status_code == 201
    return conversation_id


async def test_import_maps_threads_messages_and_read_positions(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    summary = await import_upstream(settings, up.path)
    assert (summary.threads_imported, summary.messages_imported, summary.read_positions) == (
        3,
        7,
        3,
    )

    alice = await inbox(client, cookies[ALICE])
    # Most recently active first: the thread with bob ended at 11:00, dave's at 09:30.
    assert [c["peer"]["username"] for c in alice] == ["bob", "dave"]
    with_bob, with_dave = alice
    assert with_bob["origin"] == {"type": "imported", "ref": "thread:1"}
    assert with_bob["created_by"] == BOB
    assert with_bob["created_at"] == "2026-01-05T09:59:00.000Z"
    assert with_bob["updated_at"] == "2026-01-05T11:00:00.000Z"

    history = await messages(client, cookies[ALICE], with_bob["id"])
    assert [m["body"] for m in history] == ["one", "two", "three", "four", "five"]
    ids = [m["id"] for m in history]
    assert ids == sorted(ids)
    assert [m["sender_id"] for m in history] == [ALICE, BOB, BOB, BOB, ALICE]
    assert [m["created_at"] for m in history] == [
        "2026-01-05T10:00:00.100Z",
        "2026-01-05T10:05:00.000Z",
        "2026-01-05T10:05:00.000Z",
        "2026-01-05T10:05:00.000Z",
        "2026-01-05T11:00:00.000Z",
    ]
    by_body = {m["body"]: m["id"] for m in history}

    # alice read everything; bob read up to "three" ("four" came 0.5 ms after his read).
    assert with_bob["last_read_message_id"] == by_body["five"]
    assert with_bob["unread_count"] == 0
    assert with_bob["last_message"]["body"] == "five"
    bob = await inbox(client, cookies[BOB])
    assert bob[0]["last_read_message_id"] == by_body["three"]
    assert bob[0]["unread_count"] == 1  # "five", from alice

    # alice never opened dave's thread: no pointer, dave's message unread.
    assert (with_dave["last_read_message_id"], with_dave["unread_count"]) == (0, 1)
    assert with_dave["origin"] == {"type": "imported", "ref": "thread:2"}
    dave = await inbox(client, cookies[DAVE])
    hi_dave = (await messages(client, cookies[DAVE], dave[0]["id"]))[0]
    assert hi_dave["body"] == "hi dave"
    assert (dave[0]["last_read_message_id"], dave[0]["unread_count"]) == (hi_dave["id"], 0)

    # A thread nobody wrote in is an empty conversation.
    (with_carol,) = await inbox(client, cookies[HANK])
    assert with_carol["peer"]["username"] == "carol"
    assert with_carol["last_message"] is None
    assert with_carol["created_by"] == HANK
    assert (await inbox(client, cookies[CAROL]))[0]["id"] == with_carol["id"]

    # Imported history is not an introduction: the funnel keeps to what clients can send.
    response = await client.get("/api/metrics/introductions", headers=as_member(cookies[HANK]))
    rows = {row["origin_type"]: row for row in (await response.get_json())["origins"]}
    assert set(rows) == {"request", "profile", "suggestion", "inbox"}
    assert all(row["conversations_started"] == 0 for row in rows.values())

    # A client still cannot claim the "imported" origin.
    refused = await client.post(
        "/api/conversations",
        json={"peer_id": CAROL, "origin": {"type": "imported", "ref": "thread:9"}},
        headers=as_member(cookies[ALICE]),
    )
    assert refused.status_code == 400


async def test_running_again_imports_nothing_twice(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    await import_upstream(settings, up.path)
    before = {user: await inbox(client, cookies[user]) for user in (ALICE, BOB, DAVE, HANK)}

    again = await import_upstream(settings, up.path)
    assert (again.threads_imported, again.threads_appended, again.threads_already) == (0, 0, 3)
    assert (again.messages_imported, again.messages_already, again.read_positions) == (0, 7, 0)
    after = {user: await inbox(client, cookies[user]) for user in (ALICE, BOB, DAVE, HANK)}
    assert after == before


async def test_newer_upstream_messages_are_appended_on_a_later_run(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    await import_upstream(settings, up.path)
    (with_alice, *_) = await inbox(client, cookies[BOB])
    cursor = (await (await client.get("/api/events", headers=as_member(cookies[BOB]))).get_json())[
        "cursor"
    ]

    # Written in WhiteBalloon after the first run, with an id below the imported ones; bob
    # has read it there.
    up.message(0, 1, ALICE, "six", "12:00:00.000000")
    up.read(1, BOB, "12:00:00.000000")
    summary = await import_upstream(settings, up.path)
    assert (summary.threads_appended, summary.messages_imported, summary.read_positions) == (
        1,
        1,
        1,
    )
    history = await messages(client, cookies[BOB], with_alice["id"])
    assert [m["body"] for m in history][-2:] == ["five", "six"]
    (now_with_alice, *_) = await inbox(client, cookies[BOB])
    assert (now_with_alice["last_read_message_id"], now_with_alice["unread_count"]) == (
        history[-1]["id"],
        0,
    )

    # Bob's open clients hear of it like a send, and of his read pointer moving.
    response = await client.get(f"/api/events?after={cursor}", headers=as_member(cookies[BOB]))
    events = (await response.get_json())["events"]
    assert [e["type"] for e in events] == ["message", "read"]
    assert events[0]["data"]["body"] == "six"
    assert events[1]["data"] == {
        "conversation_id": with_alice["id"],
        "message_id": history[-1]["id"],
        "unread_count": 0,
    }


async def test_open_clients_hear_of_imported_conversations(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    first = await client.get("/api/events", headers=as_member(cookies[ALICE]))
    cursor = (await first.get_json())["cursor"]
    # A poll already waiting when the import commits wakes up with it.
    waiting = asyncio.create_task(
        client.get(f"/api/events?after={cursor}&wait=5", headers=as_member(cookies[ALICE]))
    )
    await asyncio.sleep(0.1)
    await import_upstream(settings, up.path)
    response = await asyncio.wait_for(waiting, 5)
    events = (await response.get_json())["events"]
    assert {e["type"] for e in events} == {"conversation"}
    peers = sorted(e["data"]["peer"]["username"] for e in events)
    assert peers == ["bob", "dave"]
    assert {e["data"]["id"] for e in events} == {
        c["id"] for c in await inbox(client, cookies[ALICE])
    }


async def test_a_pair_that_wrote_through_the_gateway_refuses_the_whole_run(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    await send(client, cookies[ALICE], BOB, "hello from the gateway")
    before = dump(settings.messaging_db)

    with pytest.raises(Refused) as refused:
        await import_upstream(settings, up.path)
    (problem,) = refused.value.problems
    assert "thread 1 between alice and bob" in problem
    assert "--skip-thread 1" in problem
    assert dump(settings.messaging_db) == before  # not even dave's thread

    # Leaving that thread out imports the rest.
    summary = await import_upstream(settings, up.path, skip=frozenset({1}))
    assert (summary.threads_imported, summary.messages_imported, summary.left_out) == (2, 2, [1])
    with_bob = (await inbox(client, cookies[BOB]))[0]
    assert with_bob["origin"] == {"type": "inbox", "ref": None}
    assert [m["body"] for m in await messages(client, cookies[BOB], with_bob["id"])] == [
        "hello from the gateway"
    ]


async def test_an_empty_gateway_conversation_takes_the_history(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    started = await client.post(
        "/api/conversations",
        json={"peer_id": BOB, "origin": {"type": "profile", "ref": None}},
        headers=as_member(cookies[ALICE]),
    )
    conversation_id = (await started.get_json())["conversation"]["id"]
    await import_upstream(settings, up.path)
    history = await messages(client, cookies[ALICE], conversation_id)
    assert [m["body"] for m in history] == ["one", "two", "three", "four", "five"]
    with_bob = next(c for c in await inbox(client, cookies[ALICE]) if c["id"] == conversation_id)
    assert with_bob["origin"] == {"type": "profile", "ref": None}
    # A later run still knows the thread went there.
    assert (await import_upstream(settings, up.path)).threads_already == 3


async def test_upstream_messages_older_than_the_gateway_conversation_are_refused(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    await import_upstream(settings, up.path)
    await send(client, cookies[ALICE], BOB, "now on the gateway")
    up.message(8, 1, BOB, "still in WhiteBalloon", "2026-01-06 10:00:00.000000")
    before = dump(settings.messaging_db)
    with pytest.raises(Refused) as refused:
        await import_upstream(settings, up.path)
    (problem,) = refused.value.problems
    assert "thread 1 between alice and bob" in problem
    assert "can't be appended in order" in problem
    assert dump(settings.messaging_db) == before


def garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a database, just some text " * 100)
    return path


def only_threads(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(UPSTREAM_SCHEMA[0])
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (garbage, "is not an SQLite database"),
        (only_threads, "lacks table message_participants; table messages"),
        (lambda path: path, "no such file"),
        (lambda path: path.parent, "is not a file"),
    ],
)
async def test_a_file_that_is_not_whiteballoons_messages_db_changes_nothing(
    app: Quart,
    client: QuartClient,
    cookies: dict[int, str],
    settings: Settings,
    tmp_path: Path,
    make: Any,
    says: str,
) -> None:
    await send(client, cookies[ALICE], BOB, "hello")
    before = dump(settings.messaging_db)
    with pytest.raises(UnusableUpstream, match=says):
        await import_upstream(settings, make(tmp_path / "messages.db"))
    assert dump(settings.messaging_db) == before


# The command itself, in its own process, beside the running gateway.


async def run(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.import_upstream",
        *args,
        env={**environ, **env},
        cwd=Path(__file__).parent.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_command_prints_a_summary_and_exits_zero(tmp_path: Path) -> None:
    up = sample(tmp_path / "messages.db")
    target = tmp_path / "fresh" / "messaging.db"
    code, out, err = await run(tmp_path, str(up.path), WB_MESSAGING_DB=str(target))
    assert (code, err) == (0, "")
    assert "threads:        3 imported, 0 with new messages, 0 already imported" in out
    assert "messages:       7 imported, 0 already imported" in out
    assert "read positions: 3 set or moved forward" in out
    code, out, _ = await run(tmp_path, str(up.path), WB_MESSAGING_DB=str(target))
    assert code == 0
    assert "0 imported, 0 with new messages, 3 already imported (skipped)" in out


async def test_command_refuses_beside_the_running_gateway(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    await send(client, cookies[DAVE], ALICE, "hi from the gateway")
    before = dump(settings.messaging_db)
    env = {"WB_MESSAGING_DB": str(settings.messaging_db)}
    code, out, err = await run(tmp_path, str(up.path), **env)
    assert code == 1
    assert out == ""
    assert "Nothing was imported: 1 thread(s)" in err
    assert "thread 2 between members #1 and #4" in err  # no WB_APP_DB: ids
    assert dump(settings.messaging_db) == before

    code, out, err = await run(tmp_path, str(garbage(tmp_path / "junk.db")), **env)
    assert code == 2
    assert "is not an SQLite database" in err
    assert dump(settings.messaging_db) == before


async def test_command_takes_whiteballoons_database_url(tmp_path: Path) -> None:
    """MESSAGING_DATABASE_URL as WhiteBalloon's .env has it, relative to where it is run."""
    up = sample(tmp_path / "messages.db")
    target = tmp_path / "fresh" / "messaging.db"
    code, out, err = await run(tmp_path, f"sqlite:///{up.path}", WB_MESSAGING_DB=str(target))
    assert (code, err) == (0, "")
    assert "messages:       7 imported" in out
    code, out, err = await run(tmp_path, "postgresql://wb@db/messages", WB_MESSAGING_DB=str(target))
    assert code == 2
    assert "names a PostgreSQL database; this must be a SQLite file" in err


async def test_command_on_a_bad_file_creates_no_messaging_db(tmp_path: Path) -> None:
    target = tmp_path / "messaging.db"
    code, _, err = await run(
        tmp_path, str(only_threads(tmp_path / "messages.db")), WB_MESSAGING_DB=str(target)
    )
    assert code == 2
    assert "is not WhiteBalloon's messages.db" in err
    assert not target.exists()


async def test_rows_the_gateway_cannot_represent_change_nothing(
    app: Quart, settings: Settings, tmp_path: Path
) -> None:
    up = sample(tmp_path / "messages.db")
    up.message(9, 1, CAROL, "a third voice", "13:00:00.000000")  # not one of alice and bob
    before = dump(settings.messaging_db)
    with pytest.raises(UnusableUpstream, match="message 9 of thread 1 was sent by member 3"):
        await import_upstream(settings, up.path)
    assert dump(settings.messaging_db) == before


async def test_an_imported_threads_old_link_opens_its_conversation(
    app: Quart, client: QuartClient, cookies: dict[int, str], settings: Settings, tmp_path: Path
) -> None:
    """WhiteBalloon's `/messages/<thread id>` links, in old notifications and bookmarks."""
    await import_upstream(settings, sample(tmp_path / "messages.db").path)
    with_bob = (await inbox(client, cookies[ALICE]))[0]
    assert with_bob["origin"] == {"type": "imported", "ref": "thread:1"}
    response = await client.get("/1", headers=as_member(cookies[ALICE]))
    assert response.status_code == 303
    assert response.headers["Location"] == f"./#/c/{with_bob['id']}"
    never_imported = await client.get("/999", headers=as_member(cookies[ALICE]))
    assert never_imported.headers["Location"] == "./"
