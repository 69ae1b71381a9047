"""The named load-test scenarios: who connects, how fast messages are sent, what must hold.

A scenario is plain data shared by the runner (which builds the dataset and starts Locust)
and the locustfile (which reads it back from the run configuration).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# The product requirement every scenario is judged against: the runner exits non-zero
# when it fails.
REQUIREMENT_P95_MS = 2000.0


@dataclass(frozen=True)
class Targets:
    """Benchmark targets from issue 5; reported as met or missed, not enforced."""

    p95_ms: float | None = None
    p99_ms: float | None = None
    min_acked_per_second: float | None = None
    max_rss_per_stream_kb: float | None = None
    heartbeat_slack_seconds: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # Receiving roles: each holds one receiver member's conversation with one sender.
    stream_receivers: int = 0
    resuming_receivers: int = 0
    pollers: int = 0
    senders: int = 1
    # Total messages per second over all senders; None sends as fast as acks come back.
    message_rate: float | None = None
    # Bursts instead of a rate: every sender posts once at each multiple of this many
    # seconds on a clock shared by all senders, so `senders` messages arrive together
    # (open loop: a sender does not wait for its previous answer). Overrides message_rate.
    burst_interval: float | None = None
    # Stop after this many messages (the requirement's fixed dataset), or after send_seconds.
    messages: int | None = None
    send_seconds: float = 30.0
    # Streams are held this long, idle, before sending starts (heartbeats, memory).
    hold_seconds: float = 0.0
    spawn_rate: float = 200.0
    # After sending stops, how long receivers get to catch up before the run ends.
    drain_seconds: float = 10.0
    # Mean seconds between deliberate drops of a resuming receiver's stream.
    resume_every_seconds: float = 2.0
    gateway_env: dict[str, str] = field(default_factory=dict)
    workers: int | None = None  # None: as hypercorn.toml says
    targets: Targets = field(default_factory=Targets)

    @property
    def receivers(self) -> int:
        return self.stream_receivers + self.resuming_receivers + self.pollers

    @property
    def open_streams(self) -> int:
        return self.stream_receivers + self.resuming_receivers

    def with_overrides(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        return cls(**{**data, "targets": Targets(**data["targets"])})


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "requirement",
            "The product requirement: a fixed 1000-message dataset, p95 under 2 s, none lost.",
            stream_receivers=80,
            resuming_receivers=10,
            pollers=10,
            senders=10,
            message_rate=100.0,
            messages=1000,
            send_seconds=60.0,
        ),
        Scenario(
            "smoke",
            "The requirement in miniature, every user class, for the test suite.",
            stream_receivers=6,
            resuming_receivers=2,
            pollers=2,
            senders=2,
            message_rate=50.0,
            messages=100,
            send_seconds=20.0,
            # Held idle long enough for heartbeats, which come every second here.
            hold_seconds=2.5,
            drain_seconds=8.0,
            resume_every_seconds=0.5,
            spawn_rate=50.0,
            gateway_env={"WB_HEARTBEAT_SECONDS": "1"},
            targets=Targets(heartbeat_slack_seconds=1.0),
        ),
        Scenario(
            "latency",
            "1,000 open streams receiving 200 messages/s.",
            stream_receivers=1000,
            senders=20,
            message_rate=200.0,
            send_seconds=30.0,
            targets=Targets(p95_ms=25.0, p99_ms=50.0),
        ),
        Scenario(
            "burst",
            "1,000 open streams; 20 senders posting together every 100 ms (200 msg/s in "
            "bursts of 20), 4,000 messages.",
            stream_receivers=1000,
            senders=20,
            burst_interval=0.1,
            messages=4000,
            # 20 s at 200 msg/s; the cap only matters if the load generator falls behind.
            send_seconds=40.0,
        ),
        Scenario(
            "throughput",
            "As many acknowledged sends per second as the gateway takes, 200 streams open.",
            stream_receivers=200,
            senders=64,
            message_rate=None,
            send_seconds=20.0,
            targets=Targets(min_acked_per_second=1500.0),
        ),
        Scenario(
            "streams",
            "5,000 concurrent streams held for a minute with heartbeats, 20 messages/s.",
            stream_receivers=5000,
            senders=10,
            message_rate=20.0,
            hold_seconds=5.0,
            send_seconds=60.0,
            spawn_rate=250.0,
            targets=Targets(max_rss_per_stream_kb=30.0, heartbeat_slack_seconds=2.0),
        ),
        Scenario(
            "fallback",
            "The latency scenario with every receiver long-polling /api/events instead.",
            pollers=1000,
            senders=20,
            message_rate=200.0,
            send_seconds=30.0,
        ),
        Scenario(
            "compare",
            "Streaming and polling side by side in one run: 500 streams, 500 pollers, 200 msg/s.",
            stream_receivers=500,
            pollers=500,
            senders=20,
            message_rate=200.0,
            send_seconds=30.0,
        ),
    )
}
