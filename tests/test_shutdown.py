"""SIGTERM to the whole server, as systemd sends it, or to its master alone: every committed
send is answered, open streams end with `closed: shutdown`, and the server exits within
graceful_timeout."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from gateway.shutdown import watch_for_stalls
from tests.support.localserver import PROJECT_ROOT, LocalGateway
from tests.support.members import ALICE, BOB, COOKIE, SECRET, starlette_cookie

pytestmark = pytest.mark.e2e

GRACEFUL_TIMEOUT = 5  # hypercorn.toml


async def test_sigterm_answers_every_committed_send_and_closes_streams(
    tmp_path: Path, app_db: Path
) -> None:
    alice = {"Cookie": f"{COOKIE}={starlette_cookie({'user_id': ALICE})}"}
    bob = {"Cookie": f"{COOKIE}={starlette_cookie({'user_id': BOB})}"}
    server = LocalGateway(
        tmp_path / "data",
        workers=2,
        env={"WB_APP_DB": str(app_db), "WB_SESSION_SECRET": SECRET},
    ).start()
    answered: dict[str, int] = {}
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            started = await client.post("/api/conversations", json={"peer_id": BOB}, headers=alice)
            conversation_id = started.json()["conversation"]["id"]
            stream_ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            async def listen() -> None:
                async with (
                    httpx.AsyncClient(base_url=server.base_url, timeout=30) as streaming,
                    aconnect_sse(streaming, "GET", "/api/stream", headers=bob) as source,
                ):
                    async for event in source.aiter_sse():
                        if event.event == "closed":
                            stream_ended.set_result(event.json()["reason"])
                            return

            async def sender(n: int) -> None:
                for i in range(10_000):
                    client_id = f"s{n}-{i}"
                    try:
                        response = await client.post(
                            f"/api/conversations/{conversation_id}/messages",
                            json={"body": f"message {client_id}", "client_id": client_id},
                            headers=alice,
                        )
                    except httpx.TransportError:
                        return  # refused or cut before an answer: must not have been stored
                    answered[client_id] = response.status_code
                    if response.status_code >= 500:
                        return

            listening = asyncio.create_task(listen())
            await asyncio.sleep(0.5)
            senders = [asyncio.create_task(sender(n)) for n in range(8)]
            await asyncio.sleep(1.0)
            signalled = time.monotonic()
            server.signal_all(signal.SIGTERM)
            assert await asyncio.wait_for(stream_ended, 5) == "shutdown"
            await asyncio.wait_for(asyncio.gather(*senders), GRACEFUL_TIMEOUT + 5)
            await listening
        exit_code = await asyncio.to_thread(server.wait_exited, GRACEFUL_TIMEOUT + 5)
        assert time.monotonic() - signalled < GRACEFUL_TIMEOUT + 3
        assert exit_code == 0, server.log_text()
    finally:
        server.stop()

    with sqlite3.connect(tmp_path / "data" / "messaging.db") as db:
        stored = {row[0] for row in db.execute("SELECT client_id FROM messages")}
    assert len(answered) > 20  # the test really sent under load
    unanswered = stored - {cid for cid, status in answered.items() if status == 201}
    assert not unanswered, f"committed but never acknowledged: {sorted(unanswered)[:5]}"
    assert set(answered.values()) <= {201, 429, 503}, set(answered.values())  # 429: limits


async def test_sigterm_to_the_master_alone_closes_streams_and_exits(
    tmp_path: Path, app_db: Path
) -> None:
    """`kill MASTER_PID` (or systemd with KillMode=mixed): the master stops its workers, an
    open stream ends with `closed: shutdown`, and the server exits within graceful_timeout.
    A few rounds: each worker used to pass SIGTERM back to the master, and two arriving
    together deadlocked the master inside its own handler (it never exited)."""
    bob = {"Cookie": f"{COOKIE}={starlette_cookie({'user_id': BOB})}"}
    server = LocalGateway(
        tmp_path / "data",
        workers=2,
        env={"WB_APP_DB": str(app_db), "WB_SESSION_SECRET": SECRET},
    )
    for _ in range(3):
        server.start()
        try:
            async with (
                httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
                aconnect_sse(client, "GET", "/api/stream", headers=bob) as source,
            ):
                events = source.aiter_sse()
                assert (await asyncio.wait_for(anext(events), 5)).event == "hello"
                signalled = time.monotonic()
                server.signal_master(signal.SIGTERM)
                closed = await asyncio.wait_for(anext(events), GRACEFUL_TIMEOUT)
                assert (closed.event, closed.json()) == ("closed", {"reason": "shutdown"})
            exit_code = await asyncio.to_thread(server.wait_exited, GRACEFUL_TIMEOUT + 5)
            assert time.monotonic() - signalled < GRACEFUL_TIMEOUT + 1, server.log_text()
            assert exit_code == 0, server.log_text()
        finally:
            server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()


_WORKER = """
import asyncio
from gateway.shutdown import handle_termination

async def main():
    ended = asyncio.Event()
    handle_termination(ended.set)
    print("ready", flush=True)
    await asyncio.wait_for(ended.wait(), 10)

asyncio.run(main())
"""

_MASTER = """
import os, signal, subprocess, sys, time
received = []
signal.signal(signal.SIGTERM, lambda *_: received.append(signal.SIGTERM))
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE)
assert worker.stdout is not None and worker.stdout.readline() == b"ready\\n"
worker.send_signal(signal.SIGTERM)
print(worker.wait(10), len(received))
"""


def test_a_worker_does_not_pass_sigterm_back_to_its_master() -> None:
    """The master has always been told already (it signals its workers itself, or systemd
    signals everyone), and Hypercorn's master deadlocks on a second SIGTERM arriving inside
    its handler: so a worker's SIGTERM ends its streams and stops there."""
    done = subprocess.run(
        [sys.executable, "-c", _MASTER, _WORKER],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert done.returncode == 0, done.stderr
    exit_code, signals_to_master = map(int, done.stdout.split())
    assert exit_code == 0, done.stderr
    assert signals_to_master == 0


async def test_a_stuck_event_loop_is_noticed() -> None:
    """A worker whose loop is blocked (a sibling killed while holding Hypercorn's shutdown
    lock) gives up instead of looking alive while serving nothing."""
    stalled = threading.Event()
    stop = watch_for_stalls(asyncio.get_running_loop(), 0.3, stalled.set)
    try:
        await asyncio.sleep(0.8)  # a loop that turns is never taken for stuck
        assert not stalled.is_set()
        time.sleep(0.8)  # noqa: ASYNC251 - blocking the loop on purpose, as that lock does
        assert stalled.wait(1)
    finally:
        stop()
