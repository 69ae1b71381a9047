"""The load tests cannot silently rot: the smoke scenario runs against a real gateway.

It is the requirement scenario in miniature (every Locust user class, a real Hypercorn
server with the shipped hypercorn.toml, a fresh dataset) and checks what the runner
would judge: every acknowledged message delivered exactly once, p95 well under 2 s. The
burst scenario runs in miniature too (a few seconds): senders posting together on a
shared clock, open loop, with CPU per message in its summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.kills import KillRun, run_kills
from loadtests.report import percentile, summarize
from loadtests.run import run_scenario
from loadtests.scenarios import REQUIREMENT_P95_MS, SCENARIOS
from loadtests.sse import ChunkedDecoder, parse_frames
from loadtests.tally import Tally


def test_chunked_decoder_joins_chunks_split_anywhere() -> None:
    wire = b"6\r\nid: 1\n\r\n5\r\n\ndata\r\n0\r\n\r\n"
    decoder = ChunkedDecoder()
    payload = b"".join(decoder.feed(wire[i : i + 3]) for i in range(0, len(wire), 3))
    assert payload == b"id: 1\n\ndata"
    assert decoder.finished


def test_frames_parse_events_and_heartbeats() -> None:
    # A heartbeat is a comment line and needs no blank line after it; events do.
    raw = b'retry: 2000\nid: 7\nevent: message\ndata: {"id": 3}\n\n: heartbeat\nid: 8\ndata: x\n\n'
    event, heartbeat, plain = parse_frames(raw, 1.0)
    assert (event.id, event.event, event.data) == ("7", "message", '{"id": 3}')
    assert not event.is_comment
    assert heartbeat.is_comment
    assert (plain.id, plain.event, plain.data) == ("8", "message", "x")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0


def test_cpu_per_message_is_window_cpu_over_messages_acked_and_delivered() -> None:
    tally = Tally(phases={"sending": 100.0, "drained": 104.0})
    for message_id in (1, 2, 3, 4):
        tally.record_ack(message_id, 100.0, 100.1)
    for message_id in (1, 2, 3):  # 4 was acknowledged but never arrived
        tally.record_delivery("stream", message_id, 5.0)
    tally.burst_lateness_ms.extend([0.5, 2.0])
    scenario = SCENARIOS["burst"]

    summary = summarize(
        scenario, tally, configuration="", locust_failure_count=0, gateway_cpu_window_seconds=0.06
    )

    assert summary.lost == 1
    assert summary.cpu_ms_per_message == pytest.approx(20.0)  # 60 ms over 3 messages
    assert summary.cpu_window_seconds == pytest.approx(4.0)
    assert summary.burst_lateness_max_ms == 2.0
    assert "cpu/message  20.000 ms" in summary.text()
    assert json.loads(json.dumps(summary.to_json()))["cpu_ms_per_message"] == pytest.approx(20.0)


@pytest.mark.e2e
def test_smoke_scenario_delivers_every_message_once_and_fast(tmp_path: Path) -> None:
    scenario = SCENARIOS["smoke"]
    summary = run_scenario(scenario, tmp_path)

    assert summary.finished_cleanly, summary.text()
    assert summary.sent == scenario.messages, summary.text()
    assert summary.delivered == summary.sent, summary.text()
    assert summary.lost == 0
    assert summary.duplicated == 0
    assert summary.latency.count == summary.sent
    assert summary.latency.p95 < REQUIREMENT_P95_MS
    assert summary.error_count == 0, summary.text()
    assert summary.requirement_met
    assert all(verdict.met for verdict in summary.verdicts), summary.text()  # heartbeats too
    # Every receiving user class took part and reported through Locust.
    assert summary.latency_by_kind.keys() == {"stream", "resuming stream", "poll"}
    stats = (tmp_path / "smoke_stats.csv").read_text()
    assert stats.count("send-to-receive") == 3
    assert "heartbeat interval" in stats
    assert (tmp_path / "smoke.html").stat().st_size > 0
    summary_json = json.loads((tmp_path / "smoke_summary.json").read_text())
    assert summary_json["cpu_ms_per_message"] > 0
    assert summary.gateway_cpu_window_seconds is not None
    assert summary.gateway_cpu_seconds is not None
    assert summary.gateway_cpu_window_seconds <= summary.gateway_cpu_seconds


@pytest.mark.e2e
def test_burst_scenario_in_miniature(tmp_path: Path) -> None:
    # The burst scenario's shape (bursts every 100 ms on the senders' shared clock) with
    # 5 senders, 20 streams and 50 messages: 10 bursts of 5.
    scenario = SCENARIOS["burst"].with_overrides(stream_receivers=20, senders=5, messages=50)
    summary = run_scenario(scenario, tmp_path)

    assert summary.finished_cleanly, summary.text()
    assert summary.sent == 50, summary.text()
    assert summary.delivered == summary.sent
    assert (summary.lost, summary.duplicated, summary.error_count) == (0, 0, 0), summary.text()
    assert summary.requirement_met
    assert summary.burst_interval_seconds == 0.1
    # Every send was made in a burst, and how late its sender woke was recorded (not bounded
    # here: on a busy machine a greenlet may wake late; the summary reports it).
    assert summary.burst_lateness_max_ms is not None
    assert summary.burst_lateness_max_ms >= 0, summary.text()
    assert summary.cpu_ms_per_message is not None
    assert summary.cpu_ms_per_message > 0
    summary_json = json.loads((tmp_path / "burst_summary.json").read_text())
    assert summary_json["cpu_ms_per_message"] == summary.cpu_ms_per_message
    stats = (tmp_path / "burst_stats.csv").read_text()
    assert "send-to-receive (stream)" in stats


@pytest.mark.e2e
def test_kill9_scenario_in_miniature(tmp_path: Path) -> None:
    # `python -m loadtests.run kill9` with one kill and a light load: the accounting adds up.
    run = KillRun(kills=1, interval=1.5, senders=3, rate=60.0)
    summary = run_kills(run, tmp_path)

    assert summary.clean, summary.text()
    assert summary.kills_done == 1
    assert summary.acknowledged == summary.attempted == summary.stored > 50, summary.text()
    assert summary.stream_events == run.streams * summary.stored
    assert summary.stream_resumes >= run.streams  # each stream broke off and resumed
    assert "verdict      CLEAN" in (tmp_path / "kill9_summary.txt").read_text()
