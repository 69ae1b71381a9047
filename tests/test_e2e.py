"""End to end against a real Hypercorn server (the shipped hypercorn.toml) on an ephemeral
port, with a real SSE client."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from gateway.store.stand_in import sqlalchemy_time
from tests.support.localserver import LocalGateway
from tests.support.members import ALICE, BOB, COOKIE, SECRET, starlette_cookie

pytestmark = pytest.mark.e2e


def gateway(tmp_path: Path, app_db: Path, workers: int = 1, **env: str) -> LocalGateway:
    return LocalGateway(
        tmp_path / "gateway",
        workers=workers,
        env={"WB_APP_DB": str(app_db), "WB_SESSION_SECRET": SECRET, **env},
    )


@pytest.fixture
def server(tmp_path: Path, app_db: Path) -> Iterator[LocalGateway]:
    with gateway(tmp_path, app_db, WB_STREAM_MAX_SECONDS="1") as running:
        yield running


def member_client(server: LocalGateway, cookie: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url, cookies={COOKIE: cookie}, timeout=httpx.Timeout(10.0)
    )


async def conversation(server: LocalGateway, cookies: dict[int, str], a: int, b: int) -> int:
    async with member_client(server, cookies[a]) as client:
        response = await client.post("/api/conversations", json={"peer_id": b})
        return int(response.json()["conversation"]["id"])


async def send_all(
    server: LocalGateway, cookie: str, conversation_id: int, bodies: list[str], pause: float
) -> None:
    async with member_client(server, cookie) as client:
        for body in bodies:
            response = await client.post(
                f"/api/conversations/{conversation_id}/messages", json={"body": body}
            )
            assert response.status_code == 201
            await asyncio.sleep(pause)


async def cursor_now(server: LocalGateway, cookie: str) -> str:
    async with member_client(server, cookie) as client:
        return str((await client.get("/api/events")).json()["cursor"])


async def follow_stream(
    server: LocalGateway, cookie: str, since: str, expected: int, *, reconnect: bool = True
) -> AsyncIterator[dict[str, Any]]:
    """Message payloads after cursor `since`, resuming with Last-Event-ID whenever the stream
    ends. Starting from a cursor taken before sending makes the test independent of when the
    first connection happens to be accepted."""
    last_event_id = since
    seen = 0
    async with member_client(server, cookie) as client:
        while seen < expected:
            headers = {"Last-Event-ID": last_event_id}
            async with aconnect_sse(client, "GET", "/api/stream", headers=headers) as source:
                async for sse in source.aiter_sse():
                    last_event_id = sse.id or last_event_id
                    if sse.event == "message":
                        seen += 1
                        yield sse.json()
                        if seen == expected:
                            return
            if not reconnect:
                return


async def collect(stream: AsyncIterator[dict[str, Any]]) -> list[str]:
    return [payload["body"] async for payload in stream]


async def test_two_members_exchange_messages_live(
    server: LocalGateway, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation(server, cookies, ALICE, BOB)
    bob_since = await cursor_now(server, cookies[BOB])
    alice_since = await cursor_now(server, cookies[ALICE])
    bob_inbox = asyncio.create_task(collect(follow_stream(server, cookies[BOB], bob_since, 2)))
    alice_inbox = asyncio.create_task(
        collect(follow_stream(server, cookies[ALICE], alice_since, 2))
    )
    await send_all(server, cookies[ALICE], conversation_id, ["hi bob"], 0)
    await send_all(server, cookies[BOB], conversation_id, ["hi alice"], 0)
    # Each member's own message reaches their stream too (multi-device).
    assert await asyncio.wait_for(bob_inbox, 10) == ["hi bob", "hi alice"]
    assert await asyncio.wait_for(alice_inbox, 10) == ["hi bob", "hi alice"]


async def test_streams_cut_by_the_server_resume_without_gap_or_repeat(
    server: LocalGateway, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation(server, cookies, ALICE, BOB)
    bodies = [f"message {n}" for n in range(40)]
    since = await cursor_now(server, cookies[BOB])
    receiving = asyncio.create_task(
        collect(follow_stream(server, cookies[BOB], since, len(bodies)))
    )
    # Sending spans about three server-side cuts (WB_STREAM_MAX_SECONDS=1).
    await send_all(server, cookies[ALICE], conversation_id, bodies, 0.075)
    assert await asyncio.wait_for(receiving, 15) == bodies


async def test_polling_delivers_the_same_conversation_without_gap_or_repeat(
    server: LocalGateway, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation(server, cookies, ALICE, BOB)
    bodies = [f"polled {n}" for n in range(30)]

    async def poll_until_all() -> list[str]:
        received: list[str] = []
        async with member_client(server, cookies[BOB]) as client:
            cursor = (await client.get("/api/events")).json()["cursor"]
            while len(received) < len(bodies):
                page = (await client.get(f"/api/events?after={cursor}&wait=5")).json()
                received += [e["data"]["body"] for e in page["events"] if e["type"] == "message"]
                cursor = page["cursor"]
        return received

    receiving = asyncio.create_task(poll_until_all())
    await asyncio.sleep(0.2)
    await send_all(server, cookies[ALICE], conversation_id, bodies, 0.02)
    assert await asyncio.wait_for(receiving, 15) == bodies


async def subscriptions_by_worker(server: LocalGateway, probes: int = 30) -> dict[int, int]:
    seen: dict[int, int] = {}
    for _ in range(probes):
        async with httpx.AsyncClient(base_url=server.base_url) as fresh:  # a new connection
            metrics = (await fresh.get("/metrics")).text
        found = re.search(r'^wb_open_streams\{worker="(\d+)"\} (\d+)$', metrics, re.MULTILINE)
        assert found is not None, metrics
        seen[int(found.group(1))] = int(found.group(2))
    return seen


async def test_two_workers_deliver_to_each_others_streams(
    tmp_path: Path, app_db: Path, cookies: dict[int, str]
) -> None:
    bodies = [f"across {n}" for n in range(10)]
    # One member holds all the streams here, more than the per-member cap allows by default.
    with gateway(
        tmp_path, app_db, workers=2, WB_HEARTBEAT_SECONDS="1", WB_STREAMS_PER_MEMBER="200"
    ) as server:
        conversation_id = await conversation(server, cookies, ALICE, BOB)
        streams: list[asyncio.Task[list[str]]] = []
        since = await cursor_now(server, cookies[BOB])
        # The kernel decides which worker accepts a connection: open streams until both
        # workers hold some, so delivery has to cross from one process to the other. (On a
        # busy machine the second worker may still be starting: keep probing a while.)
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            if len(streams) < 120:
                streams.append(
                    asyncio.create_task(
                        collect(
                            follow_stream(server, cookies[BOB], since, len(bodies), reconnect=False)
                        )
                    )
                )
            await asyncio.sleep(0.05)
            held = await subscriptions_by_worker(server, probes=10)
            if len(held) == 2 and all(held.values()):
                break
        try:
            assert len(held) == 2, held
            assert all(held.values()), held
            for body in bodies:  # each send on a fresh connection, landing on either worker
                await send_all(server, cookies[ALICE], conversation_id, [body], 0)
            results = await asyncio.wait_for(asyncio.gather(*streams), 15)
        finally:
            for stream in streams:
                stream.cancel()
    assert results == [bodies] * len(streams)


async def test_separate_server_processes_on_one_database_deliver_to_each_other(
    tmp_path: Path, app_db: Path, cookies: dict[int, str]
) -> None:
    # The same mechanism as workers, made deterministic: stream from one, send through the
    # other. The event log is polled only every minute, so prompt delivery is the doorbell's.
    env = {"WB_APP_DB": str(app_db), "WB_SESSION_SECRET": SECRET, "WB_RELAY_POLL_SECONDS": "60"}
    first = LocalGateway(tmp_path / "gateway", workers=1, env=env)
    second = LocalGateway(tmp_path / "gateway", workers=1, env=env)
    second.log_path = tmp_path / "second.log"
    with first, second:
        conversation_id = await conversation(second, cookies, ALICE, BOB)
        since = await cursor_now(first, cookies[BOB])
        receiving = asyncio.create_task(collect(follow_stream(first, cookies[BOB], since, 3)))
        await asyncio.sleep(0.3)  # the stream is open and live before the sends
        await send_all(second, cookies[ALICE], conversation_id, ["a", "b", "c"], 0)
        assert await asyncio.wait_for(receiving, 5) == ["a", "b", "c"]


async def test_concurrent_starts_on_two_workers_make_one_conversation(
    tmp_path: Path, app_db: Path, cookies: dict[int, str]
) -> None:
    with gateway(tmp_path, app_db, workers=2) as server:

        async def start(me: int, peer: int) -> tuple[int, int]:
            async with member_client(server, cookies[me]) as client:
                response = await client.post("/api/conversations", json={"peer_id": peer})
                return response.status_code, response.json()["conversation"]["id"]

        results = await asyncio.gather(
            *(start(ALICE, BOB) for _ in range(10)), *(start(BOB, ALICE) for _ in range(10))
        )
    assert sorted(status for status, _ in results) == [200] * 19 + [201]
    assert len({conversation_id for _, conversation_id in results}) == 1


async def test_a_revoked_main_app_session_is_refused(tmp_path: Path, app_db: Path) -> None:
    expires = sqlalchemy_time(datetime.utcnow() + timedelta(days=1))
    with sqlite3.connect(app_db) as db:
        db.execute(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, is_fully_authenticated) "
            "VALUES ('sess-1', ?, datetime('now'), ?, 1)",
            (ALICE, expires),
        )
    cookie = starlette_cookie({"user_id": ALICE, "session_id": "sess-1"})
    with gateway(tmp_path, app_db, WB_AUTH_CACHE_SECONDS="0") as server:
        async with member_client(server, cookie) as client:
            assert (await client.get("/api/me")).status_code == 200
            with sqlite3.connect(app_db) as db:  # the member logs out of WhiteBalloon
                db.execute("DELETE FROM sessions WHERE id = 'sess-1'")
            refused = await client.get("/api/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"


def test_a_bad_setting_stops_the_server_with_a_clear_message(tmp_path: Path, app_db: Path) -> None:
    server = gateway(tmp_path, app_db, WB_SESSION_MAX_AGE="a fortnight")
    server.start_timeout = 15
    with pytest.raises(RuntimeError) as failure:
        server.start()
    assert "WB_SESSION_MAX_AGE='a fortnight' is invalid" in str(failure.value)


async def test_responses_do_not_name_the_server(tmp_path: Path, app_db: Path) -> None:
    with gateway(tmp_path, app_db, workers=1) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            response = await client.get("/healthz")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert "date" in response.headers


async def read_response(reader: asyncio.StreamReader, *, head: bool) -> tuple[int, bytes]:
    """One HTTP/1.1 response off a raw socket: its status and body (none for a HEAD)."""
    header = await reader.readuntil(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    fields: dict[bytes, bytes] = {}
    for line in header.split(b"\r\n")[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            fields[name.strip().lower()] = value.strip()
    if head:
        return status, b""
    if b"content-length" in fields:
        return status, await reader.readexactly(int(fields[b"content-length"]))
    assert fields.get(b"transfer-encoding") == b"chunked", header
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        body += (await reader.readexactly(size + 2))[:-2]
    await reader.readuntil(b"\r\n")
    return status, body


async def open_streams(server: LocalGateway) -> int:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as fresh:
        metrics = (await fresh.get("/metrics")).text
    found = re.search(r'^wb_open_streams\{worker="\d+"\} (\d+)$', metrics, re.MULTILINE)
    assert found is not None, metrics
    return int(found.group(1))


async def test_head_of_the_stream_with_a_request_pipelined_behind_it(
    tmp_path: Path, app_db: Path, cookies: dict[int, str]
) -> None:
    """The issue's defect over a real socket: HEAD /api/stream never completed, so the request
    behind it was never answered, and its subscription outlived the connection (for up to
    WB_STREAM_MAX_SECONDS, an hour by default, as here)."""
    with gateway(tmp_path, app_db, workers=1) as server:
        host = f"127.0.0.1:{server.port}"
        cookie = f"{COOKIE}={cookies[ALICE]}"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(
                f"HEAD /api/stream HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n"
                f"GET /api/me HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n".encode()
            )
            await writer.drain()
            head_status, _ = await asyncio.wait_for(read_response(reader, head=True), 5)
            me_status, me = await asyncio.wait_for(read_response(reader, head=False), 5)
            assert (head_status, me_status) == (200, 200)
            assert json.loads(me)["user_id"] == ALICE
            assert await open_streams(server) == 0  # HEAD subscribes nothing, even while open
        finally:
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.2)
        assert await open_streams(server) == 0
