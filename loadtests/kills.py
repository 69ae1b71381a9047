"""kill -9 of a worker, over and over, under sender load: exact accounting of what survived.

    python -m loadtests.run kill9                      # 25 kills, 8 senders at 150 msg/s
    python -m loadtests.run kill9 --kills 5 --rate 250

The long version of tests/test_faults.py. One server (the shipped hypercorn.toml, 2 workers
unless --workers) on a fixed port; `senders` clients post into one conversation at `rate`
messages per second in total, each with its own `client_id` and, like the browser's outbox,
retrying a send that got no answer (or a 5xx) with the same `client_id` until it is
answered. Streams (the receiver's and the sender's other devices) follow along and resume
with `Last-Event-ID` whenever their connection breaks. Every `interval` seconds one worker
gets SIGKILL; Hypercorn's master then stops the server, and it is started again on the same
port after `restart_delay` seconds, as systemd's `Restart=always` / `RestartSec=1` does.

At the end every pending send is retried until answered, the streams catch up, and the
database is read directly:

- acknowledged: client_ids answered 201 or 200 (a retry of one already stored);
- lost: acknowledged but not stored; duplicated: stored more than once; unacknowledged:
  sent but never answered (none once the retries are done);
- gaps / repeats / out of order: stored messages a resuming stream never received, received
  twice, or received out of order;
- `PRAGMA integrity_check`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from gateway.store.stand_in import create_directory
from tests.support.localserver import LocalGateway
from tests.support.members import ALICE, BOB, COOKIE, MEMBERS, SECRET, starlette_cookie

DESCRIPTION = (
    "kill -9 of a worker N times under sender load (restarted like systemd): acknowledged, "
    "lost, duplicated, and resumed streams' gaps."
)
RATE_LIMITS_OFF = {
    name: "off"
    for name in (
        "WB_RATE_SENDS",
        "WB_RATE_CONVERSATIONS",
        "WB_RATE_INTENTS",
        "WB_RATE_REPORTS",
        "WB_RATE_BLOCKS",
    )
}
RETRY_SECONDS = 0.2
CATCH_UP_SECONDS = 60.0


@dataclass(frozen=True)
class KillRun:
    kills: int = 25
    interval: float = 4.0  # seconds of load before each kill
    senders: int = 8
    rate: float = 150.0  # messages per second over all senders
    streams: int = 2  # resuming streams: alternately the receiver's and the sender's
    workers: int | None = None  # None: as hypercorn.toml says
    restart_delay: float = 1.0  # systemd's RestartSec=1


@dataclass
class Summary:
    run: KillRun
    seconds: float = 0.0
    kills_done: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    attempted: int = 0
    acknowledged: int = 0
    acknowledged_by_retry: int = 0  # answered 200: already stored by an unanswered try
    sends_without_answer: int = 0  # tries cut off by a kill (then retried)
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    unacknowledged: int = 0
    stored_unacknowledged: int = 0
    wrong_message_id: int = 0
    integrity: str = ""
    stream_events: int = 0
    stream_resumes: int = 0
    stream_resets: int = 0
    gaps: int = 0
    repeats: int = 0
    out_of_order: int = 0

    @property
    def clean(self) -> bool:
        faults = (
            self.lost,
            self.duplicated,
            self.unacknowledged,
            self.stored_unacknowledged,
            self.wrong_message_id,
            self.gaps,
            self.repeats,
            self.out_of_order,
            self.stream_resets,
        )
        return self.integrity == "ok" and not any(faults) and self.kills_done == self.run.kills

    def text(self) -> str:
        restarts = sorted(self.restart_seconds) or [0.0]
        rate = self.acknowledged / self.seconds if self.seconds else 0.0
        return "\n".join(
            [
                f"kill9        {self.kills_done} of {self.run.kills} kills in {self.seconds:.0f} s"
                f" ({self.run.senders} senders at {self.run.rate:g} msg/s,"
                f" a kill every {self.run.interval:g} s)",
                f"sends        {self.acknowledged} acknowledged ({rate:.0f}/s overall),"
                f" {self.acknowledged_by_retry} of them by a retry that found it stored;"
                f" {self.sends_without_answer} tries cut off by a kill",
                f"store        {self.stored} stored, {self.lost} lost,"
                f" {self.duplicated} duplicated,"
                f" {self.unacknowledged} never answered, {self.stored_unacknowledged} stored"
                f" but never answered, {self.wrong_message_id} answered with another id;"
                f" integrity_check {self.integrity}",
                f"streams      {self.run.streams} streams, {self.stream_events} message events,"
                f" {self.stream_resumes} resumes: {self.gaps} gaps, {self.repeats} repeats,"
                f" {self.out_of_order} out of order, {self.stream_resets} resets",
                f"restart      kill to healthy: median {restarts[len(restarts) // 2]:.1f} s,"
                f" max {restarts[-1]:.1f} s",
                f"verdict      {'CLEAN' if self.clean else 'FAULTS FOUND'}",
            ]
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


class Load:
    """The senders and streams, across restarts of the server behind `base_url`."""

    def __init__(self, base_url: str, run: KillRun, conversation_id: int) -> None:
        self.run = run
        self.conversation_id = conversation_id
        self.client = httpx.AsyncClient(
            base_url=base_url,
            cookies={COOKIE: starlette_cookie({"user_id": ALICE})},
            timeout=httpx.Timeout(10.0),
            limits=httpx.Limits(max_connections=run.senders + 4),
        )
        self.base_url = base_url
        self.sending = True
        self.attempted: list[str] = []
        self.acknowledged: dict[str, int] = {}  # client_id -> message id answered
        self.by_retry = 0
        self.without_answer = 0
        self.delivered: list[list[int]] = [[] for _ in range(run.streams)]
        self.resumes = 0
        self.resets = 0

    async def send_until_answered(self, client_id: str) -> None:
        while True:
            try:
                response = await self.client.post(
                    f"/api/conversations/{self.conversation_id}/messages",
                    json={"body": f"body of {client_id}", "client_id": client_id},
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code in (200, 201):
                self.acknowledged[client_id] = response.json()["message"]["id"]
                self.by_retry += response.status_code == 200
                return
            if response is not None and response.status_code < 500:
                raise RuntimeError(f"{client_id}: {response.status_code} {response.text}")
            self.without_answer += 1
            await asyncio.sleep(RETRY_SECONDS)

    async def sender(self, n: int) -> None:
        interval = self.run.senders / self.run.rate
        started = time.monotonic() + random.random() * interval
        i = 0
        while self.sending:
            await asyncio.sleep(max(0.0, started + i * interval - time.monotonic()))
            client_id = f"s{n}-{i}"
            self.attempted.append(client_id)
            await self.send_until_answered(client_id)
            i += 1

    async def stream(self, n: int) -> None:
        member = BOB if n % 2 == 0 else ALICE
        cookies = {COOKIE: starlette_cookie({"user_id": member})}
        delivered = self.delivered[n]
        last_event_id = "0"
        opened = False
        async with httpx.AsyncClient(
            base_url=self.base_url, cookies=cookies, timeout=httpx.Timeout(10.0, read=30.0)
        ) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    headers = {"Last-Event-ID": last_event_id}
                    async with aconnect_sse(client, "GET", "/api/stream", headers=headers) as es:
                        es.response.raise_for_status()  # a 503 while starting: try again
                        self.resumes += opened  # opened again, from where it broke off
                        opened = True
                        async for event in es.aiter_sse():
                            if event.event == "message":
                                delivered.append(event.json()["id"])
                            elif event.event == "reset":
                                self.resets += 1
                            if event.id:
                                last_event_id = event.id
                await asyncio.sleep(RETRY_SECONDS)

    async def catch_up(self) -> None:
        """Wait (a while) until every stream has received the newest acknowledged message."""
        newest = max(self.acknowledged.values(), default=0)
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while time.monotonic() < deadline:
            if all(newest in delivered for delivered in self.delivered):
                return
            await asyncio.sleep(0.2)


async def _conversation(base_url: str) -> int:
    cookies = {COOKIE: starlette_cookie({"user_id": ALICE})}
    async with httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=10) as client:
        response = await client.post("/api/conversations", json={"peer_id": BOB})
        response.raise_for_status()
        return int(response.json()["conversation"]["id"])


async def _kill_and_restart(server: LocalGateway, summary: Summary) -> None:
    workers = server.worker_pids()
    if not workers:
        raise RuntimeError(f"no worker to kill:\n{server.log_text()[-3000:]}")
    killed = time.monotonic()
    os.kill(random.choice(workers), signal.SIGKILL)
    # Still up after 30 s: stopped below all the same; the restart time shows it.
    with contextlib.suppress(RuntimeError):
        await asyncio.to_thread(server.wait_exited, 30)
    server.stop()
    await asyncio.sleep(summary.run.restart_delay)
    await asyncio.to_thread(server.start, server.port)
    summary.restart_seconds.append(time.monotonic() - killed)
    summary.kills_done += 1


def run_kills(run: KillRun, results_dir: Path) -> Summary:
    """The whole run; its summary (also as text and JSON) and the gateway's log are left in
    `results_dir`."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wb-loadtest-kill9-") as tmp:
        app_db, data_dir = Path(tmp) / "app.db", Path(tmp) / "data"
        env = {"WB_APP_DB": str(app_db), "WB_SESSION_SECRET": SECRET, **RATE_LIMITS_OFF}
        server = LocalGateway(data_dir, workers=run.workers, env=env, start_timeout=60)
        try:
            summary, load = asyncio.run(_load_and_kill(run, server, app_db))
        finally:
            server.stop()
            if server.log_path.exists():
                (results_dir / "kill9.gateway.log").write_text(server.log_text())
        _account(summary, load, data_dir / "messaging.db")
    (results_dir / "kill9_summary.json").write_text(json.dumps(summary.to_json(), indent=2))
    (results_dir / "kill9_summary.txt").write_text(summary.text() + "\n")
    return summary


async def _load_and_kill(run: KillRun, server: LocalGateway, app_db: Path) -> tuple[Summary, Load]:
    summary = Summary(run)
    await create_directory(app_db, MEMBERS)
    await asyncio.to_thread(server.start)
    started = time.monotonic()
    load = Load(server.base_url, run, await _conversation(server.base_url))
    tasks = [asyncio.create_task(load.stream(n)) for n in range(run.streams)]
    tasks += [asyncio.create_task(load.sender(n)) for n in range(run.senders)]
    try:
        for _ in range(run.kills):
            await asyncio.sleep(run.interval)
            await _kill_and_restart(server, summary)
        await asyncio.sleep(run.interval)  # load on the last restart too
        load.sending = False  # each sender stops once its current send is answered
        await asyncio.gather(*tasks[run.streams :])
        await load.catch_up()
        summary.seconds = time.monotonic() - started
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await load.client.aclose()
    return summary, load


def _account(summary: Summary, load: Load, database: Path) -> None:
    with contextlib.closing(sqlite3.connect(database)) as db:
        summary.integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        rows = db.execute("SELECT id, client_id FROM messages ORDER BY id").fetchall()
    stored_ids = [row[0] for row in rows]
    by_client_id: dict[str, list[int]] = {}
    for message_id, client_id in rows:
        by_client_id.setdefault(client_id, []).append(message_id)
    attempted = set(load.attempted)
    summary.attempted = len(attempted)
    summary.acknowledged = len(load.acknowledged)
    summary.acknowledged_by_retry = load.by_retry
    summary.sends_without_answer = load.without_answer
    summary.stored = len(rows)
    summary.lost = sum(1 for cid in load.acknowledged if cid not in by_client_id)
    summary.duplicated = sum(len(ids) - 1 for ids in by_client_id.values())
    summary.unacknowledged = len(attempted - load.acknowledged.keys())
    summary.stored_unacknowledged = len(by_client_id.keys() - load.acknowledged.keys())
    summary.wrong_message_id = sum(
        1
        for cid, message_id in load.acknowledged.items()
        if cid in by_client_id and by_client_id[cid][0] != message_id
    )
    summary.stream_resumes = load.resumes
    summary.stream_resets = load.resets
    stored = set(stored_ids)
    for delivered in load.delivered:
        summary.stream_events += len(delivered)
        summary.gaps += len(stored - set(delivered))
        summary.repeats += len(delivered) - len(set(delivered))
        summary.out_of_order += sum(1 for a, b in itertools.pairwise(delivered) if b < a)
