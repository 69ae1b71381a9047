"""The load generator of `benchmarks.compare`: one process, raw asyncio sockets, no HTTP library.

    python -m benchmarks.loadgen CONFIG.json RESULT.json

`compare` starts it once per server under test, as a separate process, so that its CPU is
never counted with the server's. It runs three phases one after another against one server
(`host`, `port`) and writes what it measured to RESULT.json:

- `memory`: open K streams (at most `connect_concurrency` handshakes in flight), time until
  every one has its first frame, hold them idle for `hold_seconds`, and note the workers'
  RSS before and (peak) while held, and each stream's longest silence and heartbeat count.
- `bursts`: R streams; S senders that all post together every `interval` seconds (open
  loop: a sender whose previous post is still out opens another connection) until M
  messages; then wait for every acknowledged message to arrive.
- `loop`: L streams; C senders posting back-to-back (one connection each) for T seconds.

Every message body carries `bm:<id>:<monotonic send time>;`; a receiver notes the arrival
time of the bytes that hold it. One clock, one process. Lost (acknowledged, never received)
and duplicated (received more than once) are exact, by message id. The server's CPU is read
from /proc/<pid>/stat of the worker processes named in the config (`worker_pids`) at the
start and end of each phase; the window of a message phase runs from the first send to the
last delivery (or the drain timeout). A server with a store of its own (PostgreSQL) names
its main process (`store_pid`): the store's CPU is added to the server's, and reported on
its own too. A reverse proxy in front (`proxy_pid`, nginx) is measured but not added. RSS is
the workers' only (see `tree_cpu_seconds`).

The server's API is given by the config, so the same code drives the gateway (cookies,
`POST /api/conversations/{id}/messages`, `GET /api/stream`) and naive_quart (`POST /send`,
`GET /stream/<uid>`). It runs on the stock asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from loadtests.sse import ChunkedDecoder

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MARK = re.compile(rb"bm:(\d+):(\d+\.\d+);")
# Heartbeats are comment lines; naive_quart's first frame is the comment ": hello".
HEARTBEAT = re.compile(rb"^:(?! hello)", re.M)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
HEARTBEAT_SLACK_SECONDS = 2.0  # at most; never more than one interval


def log(message: str) -> None:
    print(f"[loadgen {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- /proc -------------------------------------------------------------------------------


def server_sample(pids: list[int]) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) summed over the server's worker processes."""
    cpu, rss = 0.0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        rss += int(fields[21]) * PAGE_SIZE
    return cpu, rss


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a server that runs a process per connection or task (PostgreSQL's
    postmaster and its backends, nginx's master and workers): the root's own, its children's
    that have exited (`cutime + cstime`, counted once the root has reaped them) and its live
    children's. Their RSS is not summed: each process maps the same shared buffers, so a sum
    would count them once per process, and the streams hold none of its connections."""
    try:
        fields = Path(f"/proc/{root}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile: its time is in the root's cutime once reaped
        if int(child[1]) == root:
            ticks += int(child[11]) + int(child[12])
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank, as loadtests/report.py computes it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


# --- the wire ----------------------------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time (Content-Length bodies)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        match = CONTENT_LENGTH.search(head)
        total = end + 4 + (int(match.group(1)) if match else 0)
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


class Stream(asyncio.Protocol):
    """One open SSE stream: notes when its first frame came, silences, heartbeats, and hands
    every message marker it sees to the generator with the arrival time."""

    def __init__(self, generator: LoadGenerator, index: int, request: bytes) -> None:
        self.generator = generator
        self.index = index
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.in_head = True
        self.decoder: ChunkedDecoder | None = None
        self.lines = bytearray()
        self.ready: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.first = 0.0
        self.last = 0.0
        self.longest_silence = 0.0
        self.heartbeats = 0
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.in_head:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.head[:end])
            data = bytes(self.head[end + 4 :])
            self.in_head = False
            self.head = bytearray()
            status = int(head[9:12])
            if status != 200:
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"stream answered {status}"))
                assert self.transport is not None
                self.transport.close()
                return
            if b"chunked" in head.lower():
                self.decoder = ChunkedDecoder()
        payload = self.decoder.feed(data) if self.decoder is not None else data
        if not payload:
            return
        self.lines += payload
        cut = self.lines.rfind(b"\n")
        if cut < 0:
            return
        text = bytes(self.lines[: cut + 1])
        del self.lines[: cut + 1]
        if not self.first:
            self.first = now
            if not self.ready.done():
                self.ready.set_result(now)
        elif now - self.last > self.longest_silence:
            self.longest_silence = now - self.last
        self.last = now
        if b":" in text[:1] or b"\n:" in text:
            self.heartbeats += len(HEARTBEAT.findall(text))
        if b"bm:" in text:
            for match in MARK.finditer(text):
                self.generator.received(self.index, int(match[1]), float(match[2]), now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("stream closed before its first frame"))
        elif not self.generator.closing:
            self.generator.streams_ended += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Sender:
    """A sending member: its targets (one per receiver it talks to) and idle connections."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.targets: list[tuple[bytes, int, int | None]] = [
            (target["path"].encode(), target["receiver"], target.get("to"))
            for target in spec["targets"]
        ]
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
        self.idle: list[HttpConnection] = []
        self.next = 0


class Phase:
    """Accounting for one message phase: acknowledged and received ids, latencies."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.acked: dict[int, int] = {}  # message id -> receiver index
        self.sent_to: dict[int, int] = {}
        self.received: Counter[int] = Counter()
        self.latency: dict[int, float] = {}
        self.ack_latency: list[float] = []
        self.acked_in_window = 0
        self.acked_and_delivered = 0
        self.misrouted = 0
        self.errors: Counter[str] = Counter()
        self.caught_up = asyncio.Event()  # set whenever every acked message has arrived

    def ack(self, mid: int, latency: float, in_window: bool) -> None:
        self.acked[mid] = self.sent_to[mid]
        self.ack_latency.append(latency)
        if in_window:
            self.acked_in_window += 1
        if mid in self.received:
            self.acked_and_delivered += 1
        self._check()

    def receive(self, index: int, mid: int, sent_at: float, now: float) -> None:
        first = mid not in self.received
        self.received[mid] += 1
        if not first:
            return
        self.latency[mid] = now - sent_at
        if self.sent_to.get(mid) != index:
            self.misrouted += 1
        if mid in self.acked:
            self.acked_and_delivered += 1
            self._check()

    def _check(self) -> None:
        if self.acked_and_delivered == len(self.acked):
            self.caught_up.set()
        else:
            self.caught_up.clear()

    def summary(self) -> dict[str, Any]:
        delivered = [self.latency[mid] for mid in self.acked if mid in self.latency]
        return {
            "sent": len(self.sent_to),
            "acked": len(self.acked),
            "delivered": len(delivered),
            "lost": sum(1 for mid in self.acked if mid not in self.received),
            "duplicated": sum(count - 1 for count in self.received.values()),
            "received_unacked": sum(1 for mid in self.received if mid not in self.acked),
            "misrouted": self.misrouted,
            "errors": dict(self.errors),
            "p50_ms": ms(percentile(delivered, 50)),
            "p95_ms": ms(percentile(delivered, 95)),
            "p99_ms": ms(percentile(delivered, 99)),
            "max_ms": ms(max(delivered) if delivered else None),
            "ack_p50_ms": ms(percentile(self.ack_latency, 50)),
            "ack_p95_ms": ms(percentile(self.ack_latency, 95)),
            "ack_p99_ms": ms(percentile(self.ack_latency, 99)),
        }


class LoadGenerator:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.host: str = config["host"]
        self.port: int = config["port"]
        self.pids: list[int] = config["worker_pids"]
        self.store_pid: int | None = config.get("store_pid")
        self.proxy_pid: int | None = config.get("proxy_pid")
        self.api: str = config["api"]  # "gateway" or "naive"
        self.receivers: list[dict[str, Any]] = config["receivers"]
        self.phase: Phase | None = None
        self.next_mid = 1
        self.closing = False
        self.streams_ended = 0
        self.semaphore = asyncio.Semaphore(config.get("connect_concurrency", 100))

    # --- plumbing ---

    def received(self, index: int, mid: int, sent_at: float, now: float) -> None:
        if self.phase is not None:
            self.phase.receive(index, mid, sent_at, now)

    def stream_request(self, index: int) -> bytes:
        spec = self.receivers[index]
        lines = [f"GET {spec['path']} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in spec.get("headers", {}).items()]
        lines += ["Accept: text/event-stream", "Cache-Control: no-cache", "", ""]
        return "\r\n".join(lines).encode("latin-1")

    async def open_stream(self, index: int) -> Stream | None:
        loop = asyncio.get_running_loop()
        async with self.semaphore:
            stream = Stream(self, index, self.stream_request(index))
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: stream, self.host, self.port), 30
                )
                await asyncio.wait_for(stream.ready, 30)
            except (TimeoutError, OSError) as error:
                log(f"stream {index} failed: {error!r}")
                stream.close()
                return None
            return stream

    async def open_streams(self, count: int) -> tuple[list[Stream], float, int]:
        started = time.monotonic()
        opened = await asyncio.gather(*(self.open_stream(i) for i in range(count)))
        streams = [s for s in opened if s is not None]
        return streams, time.monotonic() - started, count - len(streams)

    async def close_streams(self, streams: list[Stream]) -> None:
        self.closing = True
        for stream in streams:
            stream.close()
        await asyncio.sleep(0.2)
        self.closing = False

    async def http_connection(self) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(HttpConnection, self.host, self.port)
        return connection

    def message_request(
        self, sender: Sender, target: tuple[bytes, int, int | None], mid: int, sent_at: float
    ) -> bytes:
        path, _, to = target
        text = f"bm:{mid}:{sent_at:.6f};"
        if self.api == "naive":
            body = json.dumps({"to": to, "body": text}).encode()
        else:
            body = json.dumps({"body": text, "client_id": f"bm-{mid}"}).encode()
        head = (
            b"POST "
            + path
            + b" HTTP/1.1\r\nHost: "
            + f"{self.host}:{self.port}".encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n"
            + sender.headers.encode()
            + b"\r\n"
        )
        return head + body

    async def send(
        self,
        phase: Phase,
        sender: Sender,
        connection: HttpConnection | None,
        window_end: float = math.inf,
    ) -> HttpConnection | None:
        """Post one message to the sender's next receiver; returns the connection if reusable."""
        target = sender.targets[sender.next % len(sender.targets)]
        sender.next += 1
        mid = self.next_mid
        self.next_mid += 1
        phase.sent_to[mid] = target[1]
        try:
            if connection is None or connection.closed:
                connection = await self.http_connection()
            sent_at = time.monotonic()
            status, _ = await asyncio.wait_for(
                connection.request(self.message_request(sender, target, mid, sent_at)), 30
            )
        except (TimeoutError, OSError) as error:
            phase.errors[type(error).__name__] += 1
            if connection is not None and connection.transport is not None:
                connection.transport.close()
            return None
        now = time.monotonic()
        if status in (200, 201):
            phase.ack(mid, now - sent_at, now <= window_end)
        else:
            phase.errors[str(status)] += 1
        return None if connection.closed else connection

    def sample(self) -> dict[str, float]:
        cpu, rss = server_sample(self.pids)
        store = tree_cpu_seconds(self.store_pid) if self.store_pid else 0.0
        proxy = tree_cpu_seconds(self.proxy_pid) if self.proxy_pid else 0.0
        return {
            "t": time.monotonic(),
            "server_cpu": cpu + store,  # the store's work is the server's: counted
            "store_cpu": store,
            "proxy_cpu": proxy,  # measured, not counted
            "server_rss": rss,
            "own_cpu": own_cpu_seconds(),
            "machine_busy": machine_busy_seconds(),
        }

    def usage(self, before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
        wall = after["t"] - before["t"]
        server = after["server_cpu"] - before["server_cpu"]
        store = after["store_cpu"] - before["store_cpu"]
        proxy = after["proxy_cpu"] - before["proxy_cpu"]
        own = after["own_cpu"] - before["own_cpu"]
        machine = after["machine_busy"] - before["machine_busy"]
        other = max(0.0, machine - server - proxy - own)
        return {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(server, 3),
            "server_cores": round(server / wall, 3) if wall else 0.0,
            "store_cpu_s": round(store, 3) if self.store_pid else None,
            "proxy_cpu_s": round(proxy, 3) if self.proxy_pid else None,
            "proxy_cores": (round(proxy / wall, 3) if wall else 0.0) if self.proxy_pid else None,
            "loadgen_cpu_s": round(own, 3),
            "loadgen_cores": round(own / wall, 3) if wall else 0.0,
            "other_cores": round(other / wall, 3) if wall else 0.0,
        }

    async def quiesce(self, limit: float = 10.0) -> None:
        """Wait until the server's workers (and store) are idle (under 10% of a core), at most
        `limit` s."""
        deadline = time.monotonic() + limit
        before = self.sample()["server_cpu"]
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = self.sample()["server_cpu"]
            if now - before < 0.05:
                return
            before = now

    async def drain(self, phase: Phase, seconds: float) -> None:
        """Wait (sends all answered) until every acknowledged message has arrived."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(phase.caught_up.wait(), seconds)

    # --- phases ---

    async def memory(self, spec: dict[str, Any]) -> dict[str, Any]:
        count, hold = spec["streams"], spec["hold_seconds"]
        interval = self.config["heartbeat_seconds"]
        slack = min(HEARTBEAT_SLACK_SECONDS, interval)
        await self.quiesce()
        before = self.sample()
        log(f"memory: opening {count} streams")
        streams, connect_s, failed = await self.open_streams(count)
        connected = self.sample()
        log(f"memory: {len(streams)} open in {connect_s:.1f} s ({failed} failed); holding {hold} s")
        peak_rss = connected["server_rss"]
        hold_end = time.monotonic() + hold
        while (left := hold_end - time.monotonic()) > 0:
            await asyncio.sleep(min(1.0, left))
            peak_rss = max(peak_rss, server_sample(self.pids)[1])
        end = time.monotonic()
        held = self.sample()
        silences = [max(s.longest_silence, end - s.last) for s in streams if not s.ended]
        ended = sum(1 for s in streams if s.ended)
        without = sum(1 for s in streams if s.heartbeats == 0)
        checked = hold >= interval + slack
        longest = max(silences) if silences else None
        await self.close_streams(streams)
        rss_delta = peak_rss - before["server_rss"]
        return {
            "streams": count,
            "opened": len(streams),
            "failed": failed,
            "ended_early": ended,
            "connect_s": round(connect_s, 3),
            "connect_concurrency": self.config.get("connect_concurrency", 100),
            "rss_before_bytes": before["server_rss"],
            "rss_held_bytes": peak_rss,
            "rss_per_stream_kb": round(rss_delta / max(1, len(streams)) / 1024, 2),
            "connect_cpu_ms_per_stream": round(
                (connected["server_cpu"] - before["server_cpu"]) * 1000 / max(1, len(streams)), 3
            ),
            "hold_seconds": hold,
            "heartbeat_seconds": interval,
            "longest_silence_s": None if longest is None else round(longest, 2),
            "streams_without_heartbeat": without,
            # None: the hold was too short to expect a heartbeat (e.g. the smoke test's).
            "heartbeats_on_time": (
                (
                    without == 0
                    and ended == 0
                    and longest is not None
                    and longest <= interval + slack
                )
                if checked
                else None
            ),
            "usage_connect": self.usage(before, connected),
            "usage_hold": self.usage(connected, held),
        }

    async def bursts(self, spec: dict[str, Any]) -> dict[str, Any]:
        count, messages, interval = spec["streams"], spec["messages"], spec["interval"]
        senders = [Sender(s) for s in self.config["burst_senders"]]
        await self.quiesce()
        log(f"bursts: opening {count} streams")
        streams, connect_s, failed = await self.open_streams(count)
        await self.quiesce()
        phase = self.phase = Phase("bursts")
        ticks = math.ceil(messages / len(senders))
        log(f"bursts: {messages} messages, {len(senders)} senders every {interval * 1000:g} ms")

        async def post(sender: Sender) -> None:
            connection = sender.idle.pop() if sender.idle else None
            connection = await self.send(phase, sender, connection)
            if connection is not None:
                sender.idle.append(connection)

        # Warm connections: one per sender, opened before the clock starts.
        for sender in senders:
            sender.idle.append(await self.http_connection())
        before = self.sample()
        start = time.monotonic() + 0.05
        lags: list[float] = []
        tasks: list[asyncio.Task[None]] = []
        sent = 0
        for tick in range(ticks):
            due = start + tick * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.monotonic() - due)
            for sender in senders:
                if sent == messages:
                    break
                tasks.append(asyncio.create_task(post(sender)))
                sent += 1
        send_end = time.monotonic()
        await asyncio.wait(tasks, timeout=60)
        result = await self.finish(phase, spec, before, streams, connect_s, failed)
        for sender in senders:
            for connection in sender.idle:
                if connection.transport is not None:
                    connection.transport.close()
        result.update(
            senders=len(senders),
            interval_s=interval,
            send_seconds=round(send_end - start, 3),
            tick_lag_p99_ms=ms(percentile(lags, 99)),
            tick_lag_max_ms=ms(max(lags) if lags else None),
        )
        return result

    async def loop(self, spec: dict[str, Any]) -> dict[str, Any]:
        count, seconds = spec["streams"], spec["seconds"]
        senders = [Sender(s) for s in self.config["loop_senders"]]
        await self.quiesce()
        log(f"loop: opening {count} streams")
        streams, connect_s, failed = await self.open_streams(count)
        connections = [await self.http_connection() for _ in senders]
        await self.quiesce()
        phase = self.phase = Phase("loop")
        log(f"loop: {len(senders)} senders back-to-back for {seconds} s")
        before = self.sample()
        window_end = time.monotonic() + seconds

        async def run(sender: Sender, connection: HttpConnection | None) -> None:
            while time.monotonic() < window_end:
                connection = await self.send(phase, sender, connection, window_end)
            if connection is not None and connection.transport is not None:
                connection.transport.close()

        await asyncio.wait(
            [asyncio.create_task(run(s, c)) for s, c in zip(senders, connections, strict=True)],
            timeout=seconds + 60,
        )
        result = await self.finish(phase, spec, before, streams, connect_s, failed)
        result.update(
            senders=len(senders),
            seconds=seconds,
            acked_per_second=round(phase.acked_in_window / seconds, 1),
        )
        return result

    async def finish(
        self,
        phase: Phase,
        spec: dict[str, Any],
        before: dict[str, Any],
        streams: list[Stream],
        connect_s: float,
        failed: int,
    ) -> dict[str, Any]:
        """End a message phase: wait for deliveries, sample the server, close its streams,
        and account for what was sent, delivered and what it cost."""
        await self.drain(phase, spec["drain_seconds"])
        after = self.sample()
        self.phase = None
        await self.close_streams(streams)
        result = phase.summary()
        delivered = phase.acked_and_delivered
        usage = self.usage(before, after)

        def per_message(seconds: float | None) -> float | None:
            return (
                None if seconds is None or not delivered else round(seconds * 1000 / delivered, 3)
            )

        result.update(
            streams=spec["streams"],
            streams_failed=failed,
            streams_ended=self.streams_ended,
            connect_s=round(connect_s, 3),
            acked_and_delivered=delivered,
            cpu_ms_per_message=per_message(usage["server_cpu_s"]),
            store_cpu_ms_per_message=per_message(usage["store_cpu_s"]),
            proxy_cpu_ms_per_message=per_message(usage["proxy_cpu_s"]),
            usage=usage,
        )
        return result

    async def run(self) -> dict[str, Any]:
        phases = self.config["phases"]
        results: dict[str, Any] = {"event_loop": type(asyncio.get_running_loop()).__module__}
        for name in ("memory", "bursts", "loop"):
            if name in phases:
                self.streams_ended = 0
                results[name] = await getattr(self, name)(phases[name])
                log(f"{name}: done")
        return results


def raise_open_file_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, wanted) if hard == resource.RLIM_INFINITY else min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    config = json.loads(Path(args[0]).read_text())
    raise_open_file_limit(len(config["receivers"]) + 1024)
    # The stock asyncio loop, whatever the server runs: the generator's own behaviour and
    # cost stay the same for every server and every run.
    runner = asyncio.run

    async def go() -> dict[str, Any]:
        return await LoadGenerator(config).run()

    results = runner(go())
    Path(args[1]).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
