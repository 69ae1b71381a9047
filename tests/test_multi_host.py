"""Several gateway hosts on one PostgreSQL: two gateway instances, each a separate Hypercorn
server with its own workers and its own folder (standing for two machines; nothing shared but
the database), behind the shipped nginx file with both as upstreams. WhiteBalloon's own
database is on the same PostgreSQL server, read through a SELECT-only role.

A member with streams on both hosts hears every message of the other's sends exactly once,
in order; and when one host is killed with kill -9 under load, its clients resume on the
other from their cursors with no gap and no repeat, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from httpx_sse import aconnect_sse

from tests.support.localserver import LocalGateway
from tests.support.members import ALICE, BOB, MEMBERS
from tests.support.nginx import Nginx, free_port
from tests.support.postgres import (
    PostgresCluster,
    WhiteBalloonDatabase,
    whiteballoon_on_postgres,
)

pytestmark = pytest.mark.e2e

SENDERS = 4


@dataclass
class Site:
    hosts: list[LocalGateway]
    proxy: Nginx
    cookies: dict[int, dict[str, str]]  # member -> headers with their wb_session_id cookie
    messaging_db: str
    app_db: WhiteBalloonDatabase

    def base(self, host: int | None) -> str:
        """A host's own address, or (None) the public one through nginx."""
        return self.proxy.url("/messages") if host is None else self.hosts[host].base_url


@contextlib.contextmanager
def two_hosts(tmp_path: Path, cluster: PostgresCluster, **settings: str) -> Iterator[Site]:
    messaging = cluster.database("messaging")
    with whiteballoon_on_postgres(cluster, MEMBERS) as app_db:
        cookies = {m: {"Cookie": f"wb_session_id={app_db.sign_in(m)}"} for m in (ALICE, BOB)}
        env = {
            "WB_MESSAGING_DB": messaging.url,
            "WB_APP_DB": app_db.reader.url,
            "WB_RATE_SENDS": "off",
            "WB_HEARTBEAT_SECONDS": "1",
            **settings,
        }
        hosts = [
            LocalGateway(tmp_path / name, workers=2, env=env, session_secret=None)
            for name in ("host-a", "host-b")
        ]
        with contextlib.ExitStack() as stack:
            for host in hosts:
                stack.enter_context(host)
            proxy = Nginx(
                tmp_path / "nginx",
                whiteballoon_port=free_port(),  # WhiteBalloon itself is not needed here
                gateway_port=[host.port for host in hosts],
            )
            stack.enter_context(proxy)
            yield Site(hosts, proxy, cookies, messaging.url, app_db)


@pytest.fixture
def site(tmp_path: Path, postgres_cluster: PostgresCluster) -> Iterator[Site]:
    with two_hosts(tmp_path, postgres_cluster) as running:
        yield running


@dataclass
class Reader:
    """One browser tab of a member: a stream that resumes from its cursor when cut, first on
    the host it was given, then wherever nginx sends it."""

    site: Site
    member: int
    first_host: int | None
    received: list[tuple[int, str]] = field(default_factory=list)  # (event id, body)
    reconnects: int = 0
    cursor: str | None = None

    async def run(self, client: httpx.AsyncClient) -> None:
        host = self.first_host
        while True:
            headers = dict(self.site.cookies[self.member])
            if self.cursor is not None:
                headers["Last-Event-ID"] = self.cursor
            try:
                url = self.site.base(host) + "/api/stream"
                async with aconnect_sse(client, "GET", url, headers=headers) as source:
                    async for event in source.aiter_sse():
                        if event.id:
                            self.cursor = event.id
                        if event.event == "message":
                            self.received.append((int(event.id), event.json()["body"]))
                        assert event.event != "reset", "a resumed stream lost its place"
            except (httpx.TransportError, httpx.HTTPStatusError):
                pass
            self.reconnects += 1
            host = None  # resume through the proxy
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def reading(client: httpx.AsyncClient, readers: list[Reader]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(reader.run(client)) for reader in readers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def start_conversation(site: Site, client: httpx.AsyncClient) -> int:
    response = await client.post(
        site.base(None) + "/api/conversations",
        json={"peer_id": ALICE},
        headers={**site.cookies[BOB], "Origin": site.proxy.origin},
    )
    assert response.status_code in (200, 201), response.text
    return int(response.json()["conversation"]["id"])


async def send(
    site: Site, client: httpx.AsyncClient, host: int | None, conversation: int, client_id: str
) -> int | None:
    """Bob sends; the status, or None when the host could not answer."""
    try:
        response = await client.post(
            site.base(host) + f"/api/conversations/{conversation}/messages",
            json={"body": client_id, "client_id": client_id},
            headers={**site.cookies[BOB], "Origin": site.base(host).rsplit("/messages", 1)[0]},
        )
    except httpx.TransportError:
        return None
    return response.status_code if response.status_code < 500 else None


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (what it waits for is spread over tasks)
            await asyncio.sleep(0.05)


def stored_bodies(site: Site) -> list[str]:
    with psycopg.connect(site.messaging_db) as conn:
        return [row[0] for row in conn.execute("SELECT body FROM messages ORDER BY id")]


async def test_a_member_on_both_hosts_hears_every_send_exactly_once(site: Site) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        conversation = await start_conversation(site, client)
        tabs = [Reader(site, ALICE, 0), Reader(site, ALICE, 1)]
        async with reading(client, tabs):
            await wait_until(lambda: all(tab.cursor is not None for tab in tabs), 10)
            sent = []
            for n in range(30):  # through host A, host B and nginx in turn
                client_id = f"m{n}"
                assert await send(site, client, [0, 1, None][n % 3], conversation, client_id) == 201
                sent.append(client_id)
            await wait_until(lambda: all(len(tab.received) >= len(sent) for tab in tabs), 15)
            await asyncio.sleep(0.5)  # anything repeated would arrive meanwhile
    for tab in tabs:
        ids = [event_id for event_id, _ in tab.received]
        assert ids == sorted(set(ids)), "repeated or out of order"
        assert [body for _, body in tab.received] == sent
        assert tab.reconnects == 0
    assert tabs[0].received == tabs[1].received


async def test_kill_9_of_a_host_under_load_its_clients_resume_on_the_other(site: Site) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        conversation = await start_conversation(site, client)
        # Alice's tab starts on host A (the one to be killed); another on B stays up.
        on_a, on_b = Reader(site, ALICE, 0), Reader(site, ALICE, 1)
        acknowledged: set[str] = set()
        attempted: list[str] = []
        stop = asyncio.Event()

        async def sender(n: int) -> None:
            i = 0
            while not stop.is_set():
                client_id = f"s{n}-{i}"
                attempted.append(client_id)
                # Senders start on host A, then go through nginx, as a retrying client does.
                host: int | None = 0 if n % 2 == 0 else None
                for _ in range(50):
                    status = await send(site, client, host, conversation, client_id)
                    if status is not None:
                        assert status in (200, 201), status
                        acknowledged.add(client_id)
                        break
                    host = None
                    await asyncio.sleep(0.1)
                i += 1

        async with reading(client, [on_a, on_b]):
            await wait_until(lambda: on_a.cursor is not None and on_b.cursor is not None, 10)
            senders = [asyncio.create_task(sender(n)) for n in range(SENDERS)]
            await asyncio.sleep(1.5)
            site.hosts[0].signal_all(signal.SIGKILL)  # the whole host: master and workers
            await asyncio.sleep(3)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*senders), 60)
            stored = stored_bodies(site)
            await wait_until(lambda: len(on_a.received) >= len(stored), 20)
            await wait_until(lambda: len(on_b.received) >= len(stored), 20)
            await asyncio.sleep(0.5)

    assert len(acknowledged) > 30, "it really ran under load"
    assert acknowledged <= set(stored), "an acknowledged message was lost"
    assert len(stored) == len(set(stored)), "a message was stored twice"
    assert on_a.reconnects >= 1, "host A's stream should have been cut"
    for tab in (on_a, on_b):
        assert [body for _, body in tab.received] == stored, "gap or repeat"


async def test_rate_limits_and_sign_outs_hold_across_hosts(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    settings = {"WB_RATE_SENDS": "6/1h", "WB_SESSION_CHECK_SECONDS": "1"}
    with two_hosts(tmp_path, postgres_cluster, **settings) as running:
        async with httpx.AsyncClient(timeout=10) as client:
            conversation = await start_conversation(running, client)
            statuses = [
                await send(running, client, n % 2, conversation, f"r{n}") for n in range(10)
            ]
            # One bucket for the member, whichever host serves each send.
            assert statuses == [201] * 6 + [429] * 4

            tabs = [Reader(running, ALICE, 0), Reader(running, ALICE, 1)]
            async with reading(client, tabs):
                await wait_until(lambda: all(tab.cursor is not None for tab in tabs), 10)
                with psycopg.connect(running.app_db.owner.url, autocommit=True) as conn:
                    conn.execute("DELETE FROM sessions WHERE user_id = %s", (ALICE,))  # logout
                # Both hosts end alice's streams; her tabs' reconnects are refused.
                await wait_until(lambda: all(tab.reconnects >= 2 for tab in tabs), 10)
            me = await client.get(running.base(1) + "/api/me", headers=running.cookies[ALICE])
            assert me.status_code == 401
