"""What one Locust run saw, kept in the Locust process and written out for the runner.

Senders record every acknowledged message id; receivers record every message id they
receive with its send-to-receive latency. Comparing the two gives lost and duplicated
messages exactly, independent of Locust's own (rounded) statistics.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TALLY_FILE = "tally.json"
PHASES_FILE = "phases.json"


@dataclass
class Tally:
    # message id -> time.time() its send started, for messages the gateway acknowledged
    acked: dict[int, float] = field(default_factory=dict)
    ack_times: list[float] = field(default_factory=list)
    # message id -> how many times its receiver got it (more than once is a duplicate)
    received: dict[int, int] = field(default_factory=dict)
    # receiver kind ("stream", "resuming stream", "poll") -> first-delivery latencies in ms
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    send_failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # the longest a stream went without a byte (heartbeat or event) while held
    max_silence_seconds: float = 0.0
    ready_receivers: int = 0
    # burst scenarios: how late each sender woke for its burst, in ms after the boundary
    burst_lateness_ms: list[float] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    finished_cleanly: bool = False

    def record_ack(self, message_id: int, sent_at: float, acked_at: float) -> None:
        self.acked[message_id] = sent_at
        self.ack_times.append(acked_at)

    def record_delivery(self, kind: str, message_id: int, latency_ms: float) -> bool:
        """Count a received message; False when its receiver already had it."""
        seen = self.received.get(message_id, 0)
        self.received[message_id] = seen + 1
        if seen:
            return False
        self.latencies_ms.setdefault(kind, []).append(latency_ms)
        return True

    def undelivered(self) -> int:
        return sum(1 for message_id in self.acked if message_id not in self.received)

    def save(self, state_dir: Path) -> None:
        payload = {
            "acked": self.acked,
            "ack_times": self.ack_times,
            "received": self.received,
            "latencies_ms": self.latencies_ms,
            "send_failures": self.send_failures,
            "errors": dict(self.errors),
            "max_silence_seconds": self.max_silence_seconds,
            "ready_receivers": self.ready_receivers,
            "burst_lateness_ms": self.burst_lateness_ms,
            "phases": self.phases,
            "finished_cleanly": self.finished_cleanly,
        }
        (state_dir / TALLY_FILE).write_text(json.dumps(payload))

    @classmethod
    def load(cls, state_dir: Path) -> Tally:
        data: dict[str, Any] = json.loads((state_dir / TALLY_FILE).read_text())
        return cls(
            acked={int(k): v for k, v in data["acked"].items()},
            ack_times=data["ack_times"],
            received={int(k): v for k, v in data["received"].items()},
            latencies_ms=data["latencies_ms"],
            send_failures=data["send_failures"],
            errors=Counter(data["errors"]),
            max_silence_seconds=data["max_silence_seconds"],
            ready_receivers=data["ready_receivers"],
            burst_lateness_ms=data.get("burst_lateness_ms", []),
            phases=data["phases"],
            finished_cleanly=data["finished_cleanly"],
        )


def write_phase(state_dir: Path, phases: dict[str, float]) -> None:
    """Phase marks (ready, sending, drained) for the runner's memory sampler to follow.

    Replaced atomically: the sampler reads it every few milliseconds and must never see
    half a file (it takes a CPU reading at each new phase).
    """
    partial = state_dir / f"{PHASES_FILE}.tmp"
    partial.write_text(json.dumps(phases))
    os.replace(partial, state_dir / PHASES_FILE)


def read_phases(state_dir: Path) -> dict[str, float]:
    try:
        return dict(json.loads((state_dir / PHASES_FILE).read_text()))
    except (FileNotFoundError, ValueError):
        return {}
