"""The load tests cannot silently rot: the smoke scenario runs against a real gateway.

It is the requirement scenario in miniature (every Locust user class, a real Hypercorn
server with the shipped hypercorn.toml, a fresh dataset) and checks what the runner
would judge: every acknowledged message delivered exactly once, p95 well under 2 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.report import percentile
from loadtests.run import run_scenario
from loadtests.scenarios import REQUIREMENT_P95_MS, SCENARIOS
from loadtests.sse import ChunkedDecoder, parse_frames


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
