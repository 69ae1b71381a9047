"""Run one named scenario end to end and print its summary.

    python -m loadtests.run requirement            # or smoke, latency, burst, throughput,
    python -m loadtests.run latency --workers 1    #    streams, fallback, compare; --list
    python -m loadtests.run kill9 --kills 25       # kill -9 under load (loadtests/kills.py)

Each run builds a fresh directory database and data dir in a temporary folder, starts the
gateway with the shipped hypercorn.toml on an ephemeral port, starts the conversations,
runs Locust headless until the scenario ends itself (or hits its time cap), stops
everything, and prints the summary. Locust's CSV and HTML report, the gateway's log and
the summary as JSON are left in loadtests/results/. The exit status is 1 when the product
requirement (p95 under 2 s, nothing lost or duplicated) is not met, 0 otherwise; the
benchmark targets are reported as MET/MISSED without changing it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtests import kills
from loadtests.dataset import RunConfig, build_directory, create_conversations
from loadtests.memory import MemorySampler, machine_busy_seconds
from loadtests.report import Summary, locust_failures, summarize
from loadtests.scenarios import SCENARIOS, Scenario
from loadtests.tally import TALLY_FILE, Tally
from tests.support.localserver import PROJECT_ROOT, LocalGateway

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Beyond the scenario's own phases: Locust start-up, spawning, slack before the hard stop.
TIME_CAP_MARGIN_SECONDS = 30


class RunFailed(Exception):
    """The run could not produce a tally (Locust crashed or never started)."""


def raise_open_file_limit(streams: int) -> None:
    """Each stream costs a descriptor in Locust and one in a worker; both inherit this limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, 2 * streams + 1024)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def time_cap_seconds(scenario: Scenario) -> int:
    connecting = scenario.receivers / scenario.spawn_rate + 30  # the locustfile's ready timeout
    phases = scenario.hold_seconds + scenario.send_seconds + scenario.drain_seconds
    return int(connecting + phases + TIME_CAP_MARGIN_SECONDS)


def locust_command(scenario: Scenario, base_url: str, results_dir: Path) -> list[str]:
    counts = {
        "StreamReceiver": scenario.stream_receivers,
        "ResumingReceiver": scenario.resuming_receivers,
        "Poller": scenario.pollers,
        "Sender": scenario.senders,
    }
    prefix = results_dir / scenario.name
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        base_url,
        "--users",
        str(sum(counts.values())),
        "--spawn-rate",
        str(scenario.spawn_rate),
        "--run-time",
        f"{time_cap_seconds(scenario)}s",
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        "--loglevel",
        "WARNING",
        *(name for name, count in counts.items() if count > 0),
    ]


# A benchmark measures the gateway, not its abuse limits: a few load-test members send
# thousands of messages and each starts many conversations, which the per-member limits
# (gateway/config.py, WB_RATE_*) exist to refuse. Turned off unless a run sets them itself,
# e.g. `--env WB_RATE_SENDS=60/1m` to measure the gateway with limits in force.
BENCHMARK_RATE_LIMITS = {
    name: "off"
    for name in (
        "WB_RATE_SENDS",
        "WB_RATE_CONVERSATIONS",
        "WB_RATE_INTENTS",
        "WB_RATE_REPORTS",
        "WB_RATE_BLOCKS",
    )
}


def run_scenario(scenario: Scenario, results_dir: Path = RESULTS_DIR) -> Summary:
    raise_open_file_limit(scenario.open_streams + scenario.pollers)
    results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"wb-loadtest-{scenario.name}-") as tmp:
        root = Path(tmp)
        app_db, data_dir, state_dir = root / "app.db", root / "data", root / "state"
        state_dir.mkdir()
        asyncio.run(build_directory(app_db, scenario))
        env = {"WB_APP_DB": str(app_db), **BENCHMARK_RATE_LIMITS, **scenario.gateway_env}
        # No WB_SESSION_SECRET: members sign in with WhiteBalloon's own session cookie.
        gateway = LocalGateway(
            data_dir, workers=scenario.workers, env=env, start_timeout=60, session_secret=None
        )
        try:
            with gateway:
                dataset = asyncio.run(create_conversations(gateway.base_url, app_db, scenario))
                config_path = state_dir / "run.json"
                RunConfig(scenario, dataset, gateway.base_url, str(state_dir)).save(config_path)
                sampler = MemorySampler(gateway.env["WB_MESSAGING_DB"], state_dir)
                sampler.start()
                locust_cpu_before = _children_cpu_seconds()
                machine_before, started = machine_busy_seconds(), time.monotonic()
                _run_locust(scenario, gateway.base_url, results_dir, config_path)
                locust_cpu = _children_cpu_seconds() - locust_cpu_before
                final = sampler.stop()
                machine_cpu = machine_busy_seconds() - machine_before
                elapsed = time.monotonic() - started
        finally:
            shutil.copyfile(gateway.log_path, results_dir / f"{scenario.name}.gateway.log")
        if not (state_dir / TALLY_FILE).exists():
            raise RunFailed(f"Locust left no tally; see {results_dir / scenario.name}.locust.log")
        assert sampler.baseline is not None
        gateway_cpu = final.cpu_seconds - sampler.baseline.cpu_seconds
        summary = summarize(
            scenario,
            Tally.load(state_dir),
            configuration=_configuration(scenario, gateway),
            locust_failure_count=locust_failures(results_dir / f"{scenario.name}_stats.csv"),
            rss_baseline=sampler.baseline.rss_bytes,
            rss_held=sampler.peak_rss_while_held(),
            gateway_cpu_seconds=gateway_cpu,
            locust_cpu_seconds=locust_cpu,
            # The machine may be shared: CPU nobody in this run used competed with it.
            other_cpu_cores=max(0.0, machine_cpu - gateway_cpu - locust_cpu) / elapsed,
            gateway_cpu_window_seconds=sampler.cpu_between("sending", "drained"),
        )
    (results_dir / f"{scenario.name}_summary.json").write_text(
        json.dumps(summary.to_json(), indent=2, default=str)
    )
    (results_dir / f"{scenario.name}_summary.txt").write_text(summary.text() + "\n")
    return summary


def _run_locust(scenario: Scenario, base_url: str, results_dir: Path, config: Path) -> None:
    command = locust_command(scenario, base_url, results_dir)
    log_path = results_dir / f"{scenario.name}.locust.log"
    with log_path.open("wb") as log:
        # Locust exits non-zero whenever any failure was recorded; the tally judges the run.
        subprocess.run(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, "LOADTEST_CONFIG": str(config)},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=time_cap_seconds(scenario) + 60,
            check=False,
        )


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _configuration(scenario: Scenario, gateway: LocalGateway) -> str:
    workers = scenario.workers if scenario.workers is not None else "from hypercorn.toml"
    env = " ".join(f"{k}={v}" for k, v in sorted(scenario.gateway_env.items()))
    set_here = BENCHMARK_RATE_LIMITS.keys() & scenario.gateway_env.keys()
    if set_here != BENCHMARK_RATE_LIMITS.keys():
        env = f"{env} (other WB_RATE_* off)" if set_here else f"{env} WB_RATE_*=off".strip()
    if scenario.burst_interval is not None:
        rate = (
            f"bursts: all together every {scenario.burst_interval * 1000:g} ms "
            f"({scenario.senders / scenario.burst_interval:g} msg/s)"
        )
    elif scenario.message_rate:
        rate = f"{scenario.message_rate:g} msg/s"
    else:
        rate = "closed loop"
    return (
        f"hypercorn.toml (workers: {workers}), settings: {env}; "
        f"{scenario.stream_receivers} streams, {scenario.resuming_receivers} resuming streams, "
        f"{scenario.pollers} pollers, {scenario.senders} senders at {rate}"
    )


KILL_SCENARIO = "kill9"


def run_kill_scenario(args: argparse.Namespace) -> int:
    """Not a Locust run: the server is killed and restarted under a plain asyncio load."""
    changes = {
        "kills": args.kills,
        "interval": args.kill_interval,
        "senders": args.senders,
        "rate": args.rate,
        "streams": args.streams,
        "workers": args.workers,
    }
    run = dataclasses.replace(
        kills.KillRun(), **{k: v for k, v in changes.items() if v is not None}
    )
    started = time.monotonic()
    summary = kills.run_kills(run, args.results_dir)
    print(summary.text())
    print(f"results      {args.results_dir} ({time.monotonic() - started:.0f} s)")
    return 0 if summary.clean else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", nargs="?", choices=sorted([*SCENARIOS, KILL_SCENARIO]))
    parser.add_argument("--list", action="store_true", help="describe the scenarios and exit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--workers", type=int, help="Hypercorn workers (default: hypercorn.toml)")
    parser.add_argument("--rate", type=float, help="messages per second over all senders")
    parser.add_argument(
        "--burst-interval",
        type=float,
        metavar="SECONDS",
        help="senders post together at every multiple of this (burst scenarios; no --rate)",
    )
    parser.add_argument("--send-seconds", type=float, help="length of the send window")
    parser.add_argument("--messages", type=int, help="stop after this many messages")
    parser.add_argument("--senders", type=int)
    parser.add_argument("--streams", type=int, help="stream receivers")
    parser.add_argument("--pollers", type=int)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="gateway setting"
    )
    parser.add_argument("--kills", type=int, help=f"{KILL_SCENARIO}: how many kill -9")
    parser.add_argument(
        "--kill-interval", type=float, metavar="SECONDS", help=f"{KILL_SCENARIO}: load per kill"
    )
    args = parser.parse_args(argv)
    if args.list or args.scenario is None:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<12} {scenario.description}")
        print(f"{KILL_SCENARIO:<12} {kills.DESCRIPTION}")
        return 0
    if args.scenario == KILL_SCENARIO:
        return run_kill_scenario(args)
    base = SCENARIOS[args.scenario]
    if args.rate is not None and (args.burst_interval or base.burst_interval) is not None:
        parser.error("bursts have no --rate: set --senders and --burst-interval instead")
    scenario = base.with_overrides(
        workers=args.workers,
        message_rate=args.rate,
        burst_interval=args.burst_interval,
        send_seconds=args.send_seconds,
        messages=args.messages,
        senders=args.senders,
        stream_receivers=args.streams,
        pollers=args.pollers,
        gateway_env={**base.gateway_env, **dict(e.split("=", 1) for e in args.env)} or None,
    )
    started = time.monotonic()
    summary = run_scenario(scenario, args.results_dir)
    print(summary.text())
    print(f"results      {args.results_dir} ({time.monotonic() - started:.0f} s)")
    return 0 if summary.requirement_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
