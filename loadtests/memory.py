"""Resident memory and CPU time of the gateway's Hypercorn workers, read from /proc.

The workers are found by the unique messaging.db path in their environment (LocalGateway
passes it to the server, and Hypercorn's spawned workers inherit it), so nothing depends on
the server's internals. The master process only supervises; the workers hold the streams.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.tally import read_phases

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    rss_bytes: int
    cpu_seconds: float


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _gateway_pids(marker: str) -> list[int]:
    needle = marker.encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours
    return pids


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def worker_pids(marker: str) -> list[int]:
    """Gateway processes whose parent is also a gateway process, minus helpers."""
    pids = _gateway_pids(marker)
    workers = []
    for pid in pids:
        try:
            if (
                _parent(pid) in pids
                and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
            ):
                workers.append(pid)
        except OSError:
            continue
    return workers


def sample(pids: list[int]) -> ProcessSample:
    rss = 0
    cpu = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state is field 3, utime 14, stime 15, rss 24 (1-based).
        cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        rss += int(fields[21]) * PAGE_SIZE
    return ProcessSample(rss, cpu)


@dataclass
class MemorySampler:
    """Samples the workers once a second, labelled with the Locust run's current phase.

    It also watches the phase marks every `phase_interval` seconds and reads the workers'
    CPU time the moment a new phase appears, so CPU over a phase window (first send to last
    delivery: `cpu_between("sending", "drained")`) is exact to within that interval.
    """

    marker: str
    state_dir: Path
    interval: float = 1.0
    phase_interval: float = 0.02
    pids: list[int] = field(default_factory=list)
    baseline: ProcessSample | None = None
    samples: list[tuple[str, ProcessSample]] = field(default_factory=list)
    # phase name -> the workers' CPU seconds when the sampler first saw that phase
    phase_cpu: dict[str, float] = field(default_factory=dict)
    _final_cpu: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.pids = worker_pids(self.marker)
        self.baseline = sample(self.pids)
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> ProcessSample:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        final = sample(self.pids)
        for name in read_phases(self.state_dir).keys() - self.phase_cpu.keys():
            self.phase_cpu[name] = final.cpu_seconds  # marked after the sampler's last look
        self._final_cpu = final.cpu_seconds
        return final

    def peak_rss_while_held(self) -> int | None:
        """Largest worker RSS while every stream was open (ready until sending closed)."""
        held = [s.rss_bytes for phase, s in self.samples if phase in ("ready", "sending")]
        return max(held) if held else None

    def cpu_between(self, start_phase: str, end_phase: str) -> float | None:
        """Worker CPU seconds from one phase mark to another; None if the first never came.

        A run that hit its time cap has no end mark: its window then ends when sampling
        stopped (after Locust exited).
        """
        if start_phase not in self.phase_cpu:
            return None
        end = self.phase_cpu.get(end_phase, self._final_cpu)
        return None if end is None else end - self.phase_cpu[start_phase]

    def _run(self) -> None:
        next_full = time.monotonic() + self.interval
        while not self._stop.wait(self.phase_interval):
            phases = read_phases(self.state_dir)
            full_due = time.monotonic() >= next_full
            if not full_due and phases.keys() <= self.phase_cpu.keys():
                continue
            current = sample(self.pids)
            for name in phases.keys() - self.phase_cpu.keys():
                self.phase_cpu[name] = current.cpu_seconds
            if full_due:
                next_full += self.interval
                phase = max(phases, key=lambda name: phases[name]) if phases else "connecting"
                self.samples.append((phase, current))
