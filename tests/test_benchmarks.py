"""The side-by-side benchmark cannot silently rot: `benchmarks.compare` runs in miniature.

naive_quart and the gateway with one worker, each a real Hypercorn server, driven by the
real load generator process: every acknowledged message arrives exactly once, and every
figure of the table is there for both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.compare import NAIVE_DIR, OPTIONAL_ROWS, _get, parse_args, rows, run_comparison
from benchmarks.loadgen import MARK, Phase, percentile

TINY = [
    "--streams", "50", "--messages", "200", "--loop-seconds", "3", "--loop-streams", "50",
    "--memory-streams", "50", "--hold-seconds", "2", "--drain-seconds", "5",
    "--targets", "naive,gateway-1",
    # Heartbeats every second so a 2 s hold can check them (naive_quart's are fixed at 15 s).
    "--env", "WB_HEARTBEAT_SECONDS=1",
]  # fmt: skip


def test_accounting_counts_lost_and_duplicated_by_id() -> None:
    phase = Phase("t")
    for mid, receiver in ((1, 0), (2, 1), (3, 1)):
        phase.sent_to[mid] = receiver
    phase.receive(0, 1, sent_at=10.0, now=10.004)  # arrives before its acknowledgement
    for mid in (1, 2, 3):
        phase.ack(mid, 0.002, in_window=True)
    phase.receive(1, 2, sent_at=10.0, now=10.010)
    phase.receive(1, 2, sent_at=10.0, now=10.011)
    summary = phase.summary()
    assert (summary["acked"], summary["delivered"]) == (3, 2)
    assert (summary["lost"], summary["duplicated"], summary["misrouted"]) == (1, 1, 0)
    assert summary["p50_ms"] == 4.0
    assert phase.acked_and_delivered == 2


def test_marker_and_percentile() -> None:
    frame = b'id: 9\nevent: message\ndata: {"body": "bm:17:1234.500000;"}\n\n'
    assert [(int(m[1]), float(m[2])) for m in MARK.finditer(frame)] == [(17, 1234.5)]
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0


@pytest.mark.e2e
@pytest.mark.skipif(not (NAIVE_DIR / "naive_quart.py").exists(), reason="no ../shared/bench")
def test_compare_in_miniature_loses_nothing_and_reports_every_figure(tmp_path: Path) -> None:
    options = parse_args([*TINY, "--results-dir", str(tmp_path)])
    report = run_comparison(options, TINY)

    targets = {t["name"]: t for t in report["targets"]}
    assert set(targets) == {"naive", "gateway-1"}
    for name, target in targets.items():
        assert "error" not in target, target
        for phase in ("bursts", "loop"):
            result = target[phase]
            assert result["lost"] == result["duplicated"] == 0, (name, phase, result)
            assert result["misrouted"] == result["received_unacked"] == 0, (name, phase)
            assert result["errors"] == {}, (name, phase, result["errors"])
            assert result["acked"] == result["delivered"] == result["acked_and_delivered"] > 0
            for key in ("p50_ms", "p95_ms", "p99_ms", "ack_p95_ms", "cpu_ms_per_message"):
                assert result[key] is not None, (name, phase, key)
                assert result[key] >= 0, (name, phase, key)
        assert target["bursts"]["sent"] == 200
        assert target["loop"]["acked_per_second"] > 0
        memory = target["memory"]
        assert memory["opened"] == 50
        assert memory["failed"] == memory["ended_early"] == 0
        for key in ("rss_per_stream_kb", "connect_s", "longest_silence_s"):
            assert memory[key] is not None, (name, key)
    # The gateway's 1 s heartbeats were checked within the hold; naive_quart's 15 s were not.
    assert targets["gateway-1"]["memory"]["heartbeats_on_time"] is True
    assert targets["naive"]["memory"]["heartbeats_on_time"] is None

    # Every row of the table has a value for both servers, and the JSON was written.
    for label, getter, _ in rows(report["options"]):
        for name, target in targets.items():
            if getter is None or (name == "naive" and "heartbeats on time" in label):
                continue
            value = getter(target) if callable(getter) else _get(target, getter)
            # PostgreSQL's and nginx's rows: neither runs here.
            assert (value is None) == (label in OPTIONAL_ROWS), (name, label)
    assert "x" in report["table"]
    assert Path(report["json_path"]).exists()


@pytest.mark.e2e
def test_the_floor_holds_streams_and_reports_only_their_cost(tmp_path: Path) -> None:
    argv = ["--targets", "floor", "--memory-streams", "50", "--hold-seconds", "2"]
    report = run_comparison(parse_args([*argv, "--results-dir", str(tmp_path)]), argv)
    (floor,) = report["targets"]
    assert "error" not in floor, floor
    memory = floor["memory"]
    assert (memory["opened"], memory["failed"], memory["ended_early"]) == (50, 0, 0)
    assert memory["rss_per_stream_kb"] is not None
    assert set(floor) & {"bursts", "loop"} == set()  # a bare app has no messages
    assert "floor" in report["table"]
