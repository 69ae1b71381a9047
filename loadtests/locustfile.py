"""Locust users for the gateway's real traffic shapes, timed from send to receive.

- `StreamReceiver` holds `/api/stream` and reports every message it receives as a
  request event named "send-to-receive (stream)", so latency percentiles appear in
  Locust's statistics, CSV and HTML report.
- `ResumingReceiver` does the same but drops its stream at random and resumes it with
  `Last-Event-ID`; a duplicate or a gap in a conversation's sequence is a failure.
- `Poller` follows `/api/events` as a client does after its stream dropped.
- `Sender` posts to its conversations at the scenario's rate (or as fast as acks return),
  or, in a burst scenario, once at every boundary of a clock shared by all senders, so
  their posts arrive together (open loop: it does not wait for its previous answer).

Each message body carries the time its send started, so receive time minus that is the
send-to-receive latency (one machine, one clock). A coordinator greenlet lets senders
start only once every receiver is connected, stops them after the scenario's quota or
window, waits until every acknowledged message was delivered, and ends the run.

Configured by the runner through $LOADTEST_CONFIG (see loadtests/dataset.py RunConfig);
for the web UI, write one with `python -m loadtests.dataset conversations ...`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event as GeventEvent
from locust import User, constant, constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.stats import CSV_STATS_INTERVAL_SEC

from loadtests.dataset import COOKIE_NAME, ReceiverSpec, RunConfig
from loadtests.sse import SSEConnection, StreamError
from loadtests.tally import Tally, write_phase

CONFIG = RunConfig.load(Path(os.environ["LOADTEST_CONFIG"]))
SCENARIO = CONFIG.scenario
STATE_DIR = Path(CONFIG.state_dir)
HEARTBEAT_SECONDS = float(SCENARIO.gateway_env.get("WB_HEARTBEAT_SECONDS", "15"))
# Receivers connect at the spawn rate; allow that plus a margin before giving up on them.
READY_TIMEOUT = SCENARIO.receivers / SCENARIO.spawn_rate + 30.0
LONG_POLL_WAIT = 25
SEND_ATTEMPTS = 3
BURST_INTERVAL = SCENARIO.burst_interval
# Between opening sending and the first burst: senders open their connection first, so the
# first burst, like every other, is posts on warm connections.
BURST_WARMUP_SECONDS = 0.5


def burst_due(epoch: float, interval: float, tick: int) -> float:
    """When burst number `tick` (0, 1, ...) starts on the senders' shared clock."""
    return epoch + tick * interval


class Coordinator:
    """The run's phases, shared by every user of this (single) Locust process."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.sending_open = GeventEvent()
        self.sending_closed = False
        # The shared clock of a burst scenario: burst k is due at epoch + k * interval.
        self.burst_epoch = 0.0
        self.messages_started = 0
        self.sends_in_flight = 0
        self._receiver_specs = itertools.count()
        self._sender_specs = itertools.count()

    def claim_receiver(self) -> ReceiverSpec:
        receivers = CONFIG.dataset.receivers
        return receivers[next(self._receiver_specs) % len(receivers)]

    def claim_sender_index(self) -> int:
        return next(self._sender_specs) % len(CONFIG.dataset.senders)

    def may_send(self) -> bool:
        """Take one message from the quota, if sending is open and any is left."""
        if self.sending_closed or not self.sending_open.is_set():
            return False
        if SCENARIO.messages is not None and self.messages_started >= SCENARIO.messages:
            return False
        self.messages_started += 1
        return True

    def run(self, environment: Environment) -> None:
        tally = self.tally
        deadline = time.monotonic() + READY_TIMEOUT
        while tally.ready_receivers < SCENARIO.receivers and time.monotonic() < deadline:
            gevent.sleep(0.1)
        missing = SCENARIO.receivers - tally.ready_receivers
        if missing > 0:
            tally.errors["receivers not connected in time"] += missing
        self._mark("ready")
        gevent.sleep(SCENARIO.hold_seconds)

        if BURST_INTERVAL is not None:
            self.burst_epoch = time.monotonic() + BURST_WARMUP_SECONDS
            self.sending_open.set()  # senders warm their connections, then wait for burst 0
            gevent.sleep(max(0.0, self.burst_epoch - time.monotonic()))
            self._mark("sending")
        else:
            self._mark("sending")
            self.sending_open.set()
        deadline = time.monotonic() + SCENARIO.send_seconds
        while time.monotonic() < deadline and not self._quota_used():
            gevent.sleep(0.02)
        self.sending_closed = True
        self._mark("send_closed")

        # Whatever was acknowledged must now arrive; give receivers the drain time.
        deadline = time.monotonic() + SCENARIO.drain_seconds
        while time.monotonic() < deadline and (self.sends_in_flight or tally.undelivered()):
            gevent.sleep(0.05)
        self._mark("drained")
        tally.finished_cleanly = True
        # Locust rewrites its CSV once a second; let it include the last deliveries.
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.5)
        gevent.spawn(environment.runner.quit)  # type: ignore[union-attr]

    def _quota_used(self) -> bool:
        return SCENARIO.messages is not None and self.messages_started >= SCENARIO.messages

    def _mark(self, phase: str) -> None:
        self.tally.phases[phase] = time.time()
        write_phase(STATE_DIR, self.tally.phases)


COORDINATOR = Coordinator()


@events.test_start.add_listener
def start_coordinator(environment: Environment, **_: Any) -> None:
    gevent.spawn(COORDINATOR.run, environment)


@events.test_stop.add_listener
def save_tally(environment: Environment, **_: Any) -> None:
    COORDINATOR.tally.save(STATE_DIR)


def report(
    environment: Environment,
    request_type: str,
    name: str,
    response_time_ms: float,
    error: str | None = None,
) -> None:
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=response_time_ms,
        response_length=0,
        exception=Exception(error) if error else None,
        context={},
    )


class MessageReceipts:
    """One receiver's view of its conversation: latency, duplicates, gaps."""

    def __init__(self, environment: Environment, spec: ReceiverSpec, kind: str) -> None:
        self.environment = environment
        self.spec = spec
        self.kind = kind
        self.last_event_id = 0
        self.last_seq = 0
        self.ready = False

    def mark_ready(self) -> None:
        if not self.ready:
            self.ready = True
            COORDINATOR.tally.ready_receivers += 1

    def event(self, event_id: str, event_type: str, data: str, received_at: float) -> None:
        """Handle one event of the member's feed (stream or poll)."""
        number = int(event_id)
        if number <= self.last_event_id:
            self._failure("duplicate event", f"event {number} after {self.last_event_id}")
            return
        self.last_event_id = number
        if event_type == "message":
            self._message(json.loads(data), received_at)
        elif event_type == "reset":
            self._failure("reset", data)

    def _message(self, message: dict[str, Any], received_at: float) -> None:
        if message["conversation_id"] != self.spec.conversation_id:
            return
        body = json.loads(message["body"])
        latency_ms = (received_at - body["sent_at"]) * 1000
        if not COORDINATOR.tally.record_delivery(self.kind, message["id"], latency_ms):
            self._failure("duplicate message", f"message {message['id']}")
            return
        report(self.environment, self.kind.upper(), f"send-to-receive ({self.kind})", latency_ms)
        seq = body["seq"]
        if seq > self.last_seq + 1:
            self._failure("sequence gap", f"seq {seq} after {self.last_seq}")
        self.last_seq = max(self.last_seq, seq)

    def _failure(self, kind: str, detail: str) -> None:
        COORDINATOR.tally.errors[kind] += 1
        report(self.environment, self.kind.upper(), kind, 0, detail)


class StreamReceiver(User):
    """Holds one member's `/api/stream`, reconnecting with Last-Event-ID if it breaks."""

    fixed_count = SCENARIO.stream_receivers
    wait_time = constant(0)
    kind = "stream"
    # Mean seconds between deliberate drops; None holds the stream as long as it lives.
    drop_every: float | None = None

    def on_start(self) -> None:
        self.receipts = MessageReceipts(self.environment, COORDINATOR.claim_receiver(), self.kind)

    @task
    def hold_stream(self) -> None:
        headers = {"Cookie": f"{COOKIE_NAME}={self.receipts.spec.cookie}"}
        if self.receipts.last_event_id:
            headers["Last-Event-ID"] = str(self.receipts.last_event_id)
        # Two missed heartbeats mean the stream is dead, as a browser would conclude.
        connection = SSEConnection(
            CONFIG.base_url, "/api/stream", headers, read_timeout=2 * HEARTBEAT_SECONDS + 5
        )
        started = time.perf_counter()
        try:
            connection.open()
        except (StreamError, OSError) as error:
            report(self.environment, "SSE", "/api/stream (open)", 0, str(error))
            connection.close()
            gevent.sleep(1)
            return
        report(self.environment, "SSE", "/api/stream (open)", (time.perf_counter() - started) * 1e3)
        drop_at = time.time() + random.expovariate(1 / self.drop_every) if self.drop_every else None
        try:
            self._follow(connection, drop_at)
        except StreamError as error:
            report(self.environment, "SSE", "/api/stream (broken)", 0, str(error))
            gevent.sleep(1)
        finally:
            connection.close()

    def _follow(self, connection: SSEConnection, drop_at: float | None) -> None:
        tally = COORDINATOR.tally
        last_byte_at = time.time()
        for frame in connection.frames():
            silence = frame.received_at - last_byte_at
            last_byte_at = frame.received_at
            if COORDINATOR.sending_open.is_set() or "ready" in tally.phases:
                tally.max_silence_seconds = max(tally.max_silence_seconds, silence)
            if frame.is_comment:
                report(self.environment, "SSE", "heartbeat interval", silence * 1000)
            elif frame.event == "hello":
                self.receipts.mark_ready()
            elif frame.id is not None:
                self.receipts.event(frame.id, frame.event, frame.data, frame.received_at)
            if drop_at is not None and time.time() >= drop_at:
                return  # a deliberate drop: the next task run resumes from the cursor


class ResumingReceiver(StreamReceiver):
    """A stream that drops at random and resumes with Last-Event-ID."""

    fixed_count = SCENARIO.resuming_receivers
    kind = "resuming stream"
    drop_every = SCENARIO.resume_every_seconds


class Poller(FastHttpUser):
    """Follows `/api/events` by long polling, as a client whose stream cannot connect."""

    fixed_count = SCENARIO.pollers
    wait_time = constant(0)
    host = CONFIG.base_url
    network_timeout = LONG_POLL_WAIT + 30.0

    def on_start(self) -> None:
        self.receipts = MessageReceipts(self.environment, COORDINATOR.claim_receiver(), "poll")
        self.cursor: str | None = None

    @task
    def poll(self) -> None:
        # The first call has no cursor and returns the current one at once.
        query = f"?wait={LONG_POLL_WAIT}" + (f"&after={self.cursor}" if self.cursor else "")
        with self.client.get(
            "/api/events" + query,
            headers={"Cookie": f"{COOKIE_NAME}={self.receipts.spec.cookie}"},
            name="/api/events (long poll)",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                gevent.sleep(1)
                return
            payload = response.json()
        received_at = time.time()
        for event in payload["events"]:
            self.receipts.event(event["id"], event["type"], json.dumps(event["data"]), received_at)
        self.cursor = payload["cursor"]
        self.receipts.mark_ready()


class Sender(FastHttpUser):
    """Posts messages round-robin into its conversations; records what was acknowledged.

    At the scenario's rate (Locust paces the task), as fast as answers come back, or in
    bursts: every sender wakes at each boundary of the coordinator's shared clock and posts
    one message without waiting for the answer (in its own greenlet, on the client's pool
    of up to `concurrency` connections), so all senders' posts arrive together.
    """

    fixed_count = SCENARIO.senders
    wait_time = (
        constant_throughput(SCENARIO.message_rate / SCENARIO.senders)
        if SCENARIO.message_rate and BURST_INTERVAL is None
        else constant(0)
    )
    host = CONFIG.base_url

    def on_start(self) -> None:
        self.spec = CONFIG.dataset.senders[COORDINATOR.claim_sender_index()]
        self.conversations = itertools.cycle(self.spec.conversation_ids)
        self.seq: dict[int, int] = {}
        self.headers = {"Cookie": f"{COOKIE_NAME}={self.spec.cookie}"}
        self.burst = 0
        COORDINATOR.sending_open.wait()
        if BURST_INTERVAL is not None:
            self.client.get("/healthz", name="/healthz (warm-up)")

    @task
    def send(self) -> None:
        if BURST_INTERVAL is not None:
            self._send_in_next_burst(BURST_INTERVAL)
            return
        if not COORDINATOR.may_send():
            gevent.sleep(0.1)
            return
        self._send(*self._next_message())

    def _send_in_next_burst(self, interval: float) -> None:
        # Every burst is kept, late or not (a late one is sent at once), as the
        # raw-socket generator in benchmarks/ does; lateness shows in the summary.
        due = burst_due(COORDINATOR.burst_epoch, interval, self.burst)
        delay = due - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        lateness_ms = (time.monotonic() - due) * 1000
        self.burst += 1
        if not COORDINATOR.may_send():
            return
        COORDINATOR.tally.burst_lateness_ms.append(lateness_ms)
        gevent.spawn(self._send, *self._next_message())

    def _next_message(self) -> tuple[int, int]:
        """The next conversation and its sequence number; counts the send as in flight."""
        conversation_id = next(self.conversations)
        seq = self.seq[conversation_id] = self.seq.get(conversation_id, 0) + 1
        COORDINATOR.sends_in_flight += 1
        return conversation_id, seq

    def _send(self, conversation_id: int, seq: int) -> None:
        sent_at = time.time()
        payload = {
            "body": json.dumps({"sent_at": sent_at, "seq": seq}),
            # Retries reuse it, so a retried send is stored once (the gateway dedupes).
            "client_id": f"lt-{conversation_id}-{seq}",
        }
        try:
            for _ in range(SEND_ATTEMPTS):
                if self._post(conversation_id, payload, sent_at):
                    return
            COORDINATOR.tally.send_failures += 1
        finally:
            COORDINATOR.sends_in_flight -= 1

    def _post(self, conversation_id: int, payload: dict[str, str], sent_at: float) -> bool:
        with self.client.post(
            f"/api/conversations/{conversation_id}/messages",
            json=payload,
            headers=self.headers,
            name="/api/conversations/[id]/messages",
            catch_response=True,
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(f"status {response.status_code}")
                return False
            message_id = response.json()["message"]["id"]
        COORDINATOR.tally.record_ack(message_id, sent_at, time.time())
        return True
