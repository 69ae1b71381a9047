"""kill -9 of a worker under load, a few times over: nothing acknowledged is lost, nothing is
stored twice, and a stream resuming from the start sees every message exactly once, in order.
(`python -m loadtests.run kill9` has the long version, 25 kills with resuming streams; this
is the standing check CI runs.)"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.support.localserver import LocalGateway
from tests.support.members import ALICE, BOB, COOKIE, SECRET, starlette_cookie

pytestmark = pytest.mark.e2e

ROUNDS = 3
SENDERS = 6

ALICE_HEADERS = {"Cookie": f"{COOKIE}={starlette_cookie({'user_id': ALICE})}"}
BOB_HEADERS = {"Cookie": f"{COOKIE}={starlette_cookie({'user_id': BOB})}"}


def start(data_dir: Path, app_db: Path) -> LocalGateway:
    env = {"WB_APP_DB": str(app_db), "WB_SESSION_SECRET": SECRET, "WB_RATE_SENDS": "off"}
    return LocalGateway(data_dir, workers=2, env=env).start()


async def send(client: httpx.AsyncClient, conversation_id: int, client_id: str) -> int | None:
    try:
        response = await client.post(
            f"/api/conversations/{conversation_id}/messages",
            json={"body": f"body of {client_id}", "client_id": client_id},
            headers=ALICE_HEADERS,
        )
    except httpx.TransportError:
        return None
    return response.status_code


async def test_kill_9_of_a_worker_under_load_loses_and_repeats_nothing(
    tmp_path: Path, app_db: Path
) -> None:
    data_dir = tmp_path / "data"
    acknowledged: set[str] = set()
    attempted: list[str] = []
    conversation_id = 0
    for round_ in range(ROUNDS):
        server = start(data_dir, app_db)
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
                if not conversation_id:
                    started = await client.post(
                        "/api/conversations", json={"peer_id": BOB}, headers=ALICE_HEADERS
                    )
                    conversation_id = started.json()["conversation"]["id"]

                async def sender(
                    n: int, round_: int = round_, conversation_id: int = conversation_id
                ) -> None:
                    for i in range(100_000):
                        client_id = f"r{round_}-s{n}-{i}"
                        attempted.append(client_id)
                        status = await send(client, conversation_id, client_id)
                        if status is None:
                            return  # the server is gone
                        assert status == 201, status
                        acknowledged.add(client_id)

                senders = [asyncio.create_task(sender(n)) for n in range(SENDERS)]
                await asyncio.sleep(0.8)
                workers = server.worker_pids()
                assert workers, f"no worker to kill:\n{server.log_text()}"
                os.kill(workers[0], signal.SIGKILL)
                await asyncio.wait_for(asyncio.gather(*senders), 20)
            # Hypercorn's master stops the other worker too: systemd would restart it all.
            await asyncio.to_thread(server.wait_exited, 30)
        finally:
            server.stop()

    server = start(data_dir, app_db)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            # Clients retry what got no answer, with the same client_id: stored once either way.
            for client_id in attempted:
                if client_id not in acknowledged:
                    assert await send(client, conversation_id, client_id) in (200, 201)
            events = (await client.get("/api/events?after=0", headers=BOB_HEADERS)).json()
            bodies: list[str] = []
            cursor = "0"
            while True:
                page = (await client.get(f"/api/events?after={cursor}", headers=BOB_HEADERS)).json()
                if not page["events"]:
                    break
                bodies += [e["data"]["body"] for e in page["events"] if e["type"] == "message"]
                cursor = page["cursor"]
            assert events["events"]  # the replay really started from the beginning
    finally:
        server.stop()

    with sqlite3.connect(data_dir / "messaging.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = [row[0] for row in db.execute("SELECT client_id FROM messages ORDER BY id")]
    assert len(acknowledged) > 50  # it really ran under load
    assert acknowledged <= set(stored), "an acknowledged message was lost"
    assert len(stored) == len(set(stored)) == len(set(attempted)), "lost or stored twice"
    assert bodies == [f"body of {client_id}" for client_id in stored], "gap or repeat"
