"""The summary of one run: deliveries, latency percentiles, throughput, memory, verdicts."""

from __future__ import annotations

import csv
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests.scenarios import REQUIREMENT_P95_MS, Scenario
from loadtests.tally import Tally


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (exact, unlike Locust's rounded bins)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Latency:
    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Latency:
        ordered = sorted(values)
        return cls(
            len(ordered),
            percentile(ordered, 50),
            percentile(ordered, 95),
            percentile(ordered, 99),
            ordered[-1] if ordered else math.nan,
        )

    def line(self) -> str:
        return (
            f"p50 {self.p50:.1f} ms, p95 {self.p95:.1f} ms, p99 {self.p99:.1f} ms, "
            f"max {self.max:.1f} ms ({self.count} deliveries)"
        )


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: str
    wanted: str
    met: bool


@dataclass
class Summary:
    scenario: str
    description: str
    hardware: str
    configuration: str
    sent: int  # acknowledged messages
    send_failures: int
    delivered: int
    lost: int
    duplicated: int
    latency: Latency
    latency_by_kind: dict[str, Latency]
    acked_per_second: float
    errors: dict[str, int]
    finished_cleanly: bool
    open_streams: int
    connected_receivers: int
    receivers: int
    rss_baseline_mb: float | None = None
    rss_held_mb: float | None = None
    rss_per_stream_kb: float | None = None
    max_silence_seconds: float | None = None
    gateway_cpu_seconds: float | None = None
    locust_cpu_seconds: float | None = None
    other_cpu_cores: float | None = None
    # Worker CPU from the first send until every acknowledged message had arrived (the
    # "sending" to "drained" marks), over that window's wall time, and per message
    # acknowledged and delivered: the figure benchmarks/compare.py calls the same name.
    gateway_cpu_window_seconds: float | None = None
    cpu_window_seconds: float | None = None
    cpu_ms_per_message: float | None = None
    # burst scenarios: interval, and how late senders woke for their bursts
    burst_interval_seconds: float | None = None
    burst_lateness_p99_ms: float | None = None
    burst_lateness_max_ms: float | None = None
    send_window_seconds: float = 0.0
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def requirement_met(self) -> bool:
        return next(v.met for v in self.verdicts if v.name == "requirement")

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "requirement_met": self.requirement_met}

    def text(self) -> str:
        lines = [
            f"scenario     {self.scenario}: {self.description}",
            f"hardware     {self.hardware}",
            f"config       {self.configuration}",
            f"messages     sent (acknowledged) {self.sent}, delivered {self.delivered}, "
            f"lost {self.lost}, duplicated {self.duplicated}, send failures {self.send_failures}",
            f"latency      {self.latency.line()}",
        ]
        for kind, latency in sorted(self.latency_by_kind.items()):
            lines.append(f"  {kind:<16}{latency.line()}")
        if {"stream", "poll"} <= self.latency_by_kind.keys():
            stream, poll = self.latency_by_kind["stream"], self.latency_by_kind["poll"]
            lines.append(
                f"  poll/stream p50 x{poll.p50 / stream.p50:.2f}, p95 x{poll.p95 / stream.p95:.2f},"
                f" p99 x{poll.p99 / stream.p99:.2f}"
            )
        lines.append(
            f"throughput   {self.acked_per_second:.1f} acknowledged messages/s "
            f"over a {self.send_window_seconds:.1f} s send window"
        )
        if self.burst_interval_seconds is not None:
            lines.append(
                f"bursts       every {self.burst_interval_seconds * 1000:g} ms; senders woke "
                f"p99 {self.burst_lateness_p99_ms:.1f} ms, max {self.burst_lateness_max_ms:.1f} ms"
                " after the boundary"
            )
        if self.rss_per_stream_kb is not None:
            lines.append(
                f"memory       workers {self.rss_baseline_mb:.1f} MB -> {self.rss_held_mb:.1f} MB "
                f"with {self.open_streams} streams: {self.rss_per_stream_kb:.1f} KB per stream"
            )
        if self.max_silence_seconds is not None:
            lines.append(
                f"heartbeats   longest silence on a held stream {self.max_silence_seconds:.2f} s"
            )
        if self.gateway_cpu_seconds is not None:
            lines.append(
                f"cpu          gateway workers {self.gateway_cpu_seconds:.1f} s, "
                f"Locust {self.locust_cpu_seconds:.1f} s; other processes on the machine "
                f"{self.other_cpu_cores or 0:.2f} cores on average"
            )
        if self.cpu_ms_per_message is not None:
            window = (
                f"{self.cpu_window_seconds:.1f} s from first send to last delivery"
                if self.cpu_window_seconds is not None
                else "from first send to the time cap"
            )
            lines.append(
                f"cpu/message  {self.cpu_ms_per_message:.3f} ms of gateway worker CPU per message "
                f"acknowledged and delivered ({self.gateway_cpu_window_seconds:.2f} s over "
                f"{window}, {self.delivered} messages)"
            )
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        lines.append(f"errors       {self.error_count} ({errors})")
        if not self.finished_cleanly:
            lines.append("warning      the run hit its time cap before draining")
        for verdict in self.verdicts:
            mark = "MET   " if verdict.met else "MISSED"
            lines.append(
                f"{mark}       {verdict.name}: {verdict.measured} (wanted {verdict.wanted})"
            )
        return "\n".join(lines)


def hardware() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}"


def locust_failures(stats_csv: Path) -> int:
    """Failures Locust counted (failed sends, stream errors, duplicates, gaps)."""
    try:
        with stats_csv.open() as handle:
            for row in csv.DictReader(handle):
                if row["Name"] == "Aggregated":
                    return int(row["Failure Count"])
    except (OSError, KeyError, ValueError):
        pass
    return 0


def summarize(
    scenario: Scenario,
    tally: Tally,
    *,
    configuration: str,
    locust_failure_count: int,
    rss_baseline: int | None = None,
    rss_held: int | None = None,
    gateway_cpu_seconds: float | None = None,
    locust_cpu_seconds: float | None = None,
    other_cpu_cores: float | None = None,
    gateway_cpu_window_seconds: float | None = None,
) -> Summary:
    delivered = sum(1 for message_id in tally.acked if message_id in tally.received)
    duplicated = sum(count - 1 for count in tally.received.values() if count > 1)
    all_latencies = [ms for values in tally.latencies_ms.values() for ms in values]
    started = tally.phases.get("sending")
    window = (max(tally.ack_times) - started) if tally.ack_times and started else 0.0
    errors = dict(tally.errors)
    if locust_failure_count:
        errors["locust failures"] = locust_failure_count
    if tally.send_failures:
        errors["send failures"] = tally.send_failures
    summary = Summary(
        scenario=scenario.name,
        description=scenario.description,
        hardware=hardware(),
        configuration=configuration,
        sent=len(tally.acked),
        send_failures=tally.send_failures,
        delivered=delivered,
        lost=len(tally.acked) - delivered,
        duplicated=duplicated,
        latency=Latency.of(all_latencies),
        latency_by_kind={kind: Latency.of(v) for kind, v in tally.latencies_ms.items()},
        acked_per_second=len(tally.acked) / window if window > 0 else 0.0,
        errors=errors,
        finished_cleanly=tally.finished_cleanly,
        open_streams=scenario.open_streams,
        connected_receivers=tally.ready_receivers,
        receivers=scenario.receivers,
        max_silence_seconds=tally.max_silence_seconds if scenario.open_streams else None,
        gateway_cpu_seconds=gateway_cpu_seconds,
        locust_cpu_seconds=locust_cpu_seconds,
        other_cpu_cores=other_cpu_cores,
        send_window_seconds=window,
    )
    if gateway_cpu_window_seconds is not None:
        summary.gateway_cpu_window_seconds = gateway_cpu_window_seconds
        # A run that hit its time cap has no "drained" mark: none then (the CPU is still
        # up to when sampling stopped, as memory.MemorySampler.cpu_between says).
        if started and "drained" in tally.phases:
            summary.cpu_window_seconds = tally.phases["drained"] - started
        if delivered:
            summary.cpu_ms_per_message = gateway_cpu_window_seconds * 1000 / delivered
    if scenario.burst_interval is not None:
        lateness = sorted(tally.burst_lateness_ms)
        summary.burst_interval_seconds = scenario.burst_interval
        summary.burst_lateness_p99_ms = percentile(lateness, 99)
        summary.burst_lateness_max_ms = lateness[-1] if lateness else math.nan
    # Pollers hold connections too, so memory is attributed to streams only without them.
    if scenario.pollers:
        rss_held = None
    if rss_baseline is not None and rss_held is not None and scenario.open_streams:
        summary.rss_baseline_mb = rss_baseline / 2**20
        summary.rss_held_mb = rss_held / 2**20
        summary.rss_per_stream_kb = (rss_held - rss_baseline) / 1024 / scenario.open_streams
    summary.verdicts = verdicts(scenario, summary)
    return summary


def verdicts(scenario: Scenario, s: Summary) -> list[Verdict]:
    requirement_ok = (
        s.sent > 0 and s.lost == 0 and s.duplicated == 0 and s.latency.p95 < REQUIREMENT_P95_MS
    )
    found = [
        Verdict(
            "requirement",
            f"p95 {s.latency.p95:.1f} ms, {s.lost} lost, {s.duplicated} duplicated of {s.sent}",
            f"p95 < {REQUIREMENT_P95_MS:.0f} ms, none lost or duplicated",
            requirement_ok,
        )
    ]
    t = scenario.targets
    if t.p95_ms is not None:
        found.append(
            Verdict(
                "p95", f"{s.latency.p95:.1f} ms", f"<= {t.p95_ms} ms", s.latency.p95 <= t.p95_ms
            )
        )
    if t.p99_ms is not None:
        found.append(
            Verdict(
                "p99", f"{s.latency.p99:.1f} ms", f"<= {t.p99_ms} ms", s.latency.p99 <= t.p99_ms
            )
        )
    if t.min_acked_per_second is not None:
        found.append(
            Verdict(
                "throughput",
                f"{s.acked_per_second:.0f} msg/s",
                f">= {t.min_acked_per_second:.0f} msg/s",
                s.acked_per_second >= t.min_acked_per_second,
            )
        )
    if t.max_rss_per_stream_kb is not None:
        found.append(
            Verdict(
                "streams held",
                f"{s.connected_receivers} connected",
                f"{s.receivers}",
                s.connected_receivers >= s.receivers,
            )
        )
        per_stream = s.rss_per_stream_kb
        found.append(
            Verdict(
                "memory per stream",
                f"{per_stream:.1f} KB" if per_stream is not None else "not measured",
                f"< {t.max_rss_per_stream_kb} KB",
                per_stream is not None and per_stream < t.max_rss_per_stream_kb,
            )
        )
    if t.heartbeat_slack_seconds is not None and s.max_silence_seconds is not None:
        heartbeat = float(scenario.gateway_env.get("WB_HEARTBEAT_SECONDS", "15"))
        limit = heartbeat + t.heartbeat_slack_seconds
        found.append(
            Verdict(
                "heartbeats on time",
                f"longest silence {s.max_silence_seconds:.2f} s",
                f"<= {limit:.0f} s",
                s.max_silence_seconds <= limit,
            )
        )
    return found
