"""The gateway side by side with the naive yardstick, in one run, under identical traffic.

    .venv/bin/python -m benchmarks.compare [--quick] [--baseline REV]

Runs, one after another, each on a fresh server bound to 127.0.0.1 on an ephemeral port:

  naive          ../shared/bench/naive_quart.py (one Hypercorn worker, its docstring's command)
  gateway-1      this checkout's gateway, hypercorn.toml with --workers 1
  gateway        this checkout's gateway, hypercorn.toml as shipped (2 workers)
  floor          benchmarks/floor.py, a bare SSE app on the same Hypercorn: streams only, the
                 least a held stream can cost on this server
  baseline       with --baseline REV: that commit's gateway and its own hypercorn.toml, from a
                 temporary `git worktree` (removed afterwards)

and, only when named in --targets (they need Debian's postgresql and nginx):

  postgres-2hosts  two gateway hosts (hypercorn.toml, 1 worker each: the same 2 gateway
                 processes as `gateway`) on one throwaway PostgreSQL cluster (fsync on) holding
                 both the messaging database and WhiteBalloon's tables, behind nginx running
                 deploy/nginx/whiteballoon.conf with both as upstreams; traffic under /messages
  gateway-nginx  `gateway` (SQLite, one host, 2 workers) behind the same nginx: the control
                 that tells the proxy's share of postgres-2hosts' figures from the store's

and drives each with the same load generator (`benchmarks/loadgen.py`, one separate process
per server, raw asyncio sockets) through three phases: K idle streams (memory per stream,
connect time, heartbeats), bursts (R streams, S senders posting together every 100 ms, M
messages) and a closed loop (C senders back-to-back for T seconds, L streams open). It prints
one table with every figure and its ratio to naive, and writes everything as JSON to
benchmarks/results/compare-<timestamp>.json. See benchmarks/README.md.

The gateway runs with WhiteBalloon's own session cookie (a `sessions` row per member in a
stand-in app.db), every `WB_RATE_*=off` (as loadtests/run.py does), `synchronous=FULL`
(the default) and the access log as shipped (on; `--no-access-log` turns it off).
naive_quart runs with Hypercorn's defaults: no access log. On PostgreSQL the server's CPU is
the gateway workers' plus PostgreSQL's (every process of the cluster), also shown on its
own; nginx's is measured and shown, never added.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.store.stand_in import DirectoryEntry, create_directory, create_sessions
from loadtests.run import BENCHMARK_RATE_LIMITS
from tests.support.localserver import LocalGateway, stop_session
from tests.support.nginx import Nginx, find_nginx, free_port
from tests.support.postgres import PostgresCluster, binaries, whiteballoon_on_postgres

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
NAIVE_DIR = (PROJECT_ROOT / ".." / "shared" / "bench").resolve()
COOKIE_NAME = "wb_session_id"
RUNNING_ON = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")
CONVERSATION_CONCURRENCY = 16
TARGET_NAMES = ("naive", "gateway-1", "gateway", "floor")  # the default run
# Run only when named: they need PostgreSQL and nginx, and take longer to set up.
OPTIONAL_TARGETS = ("postgres-2hosts", "gateway-nginx")
PROXY_PREFIX = "/messages"  # where deploy/nginx/whiteballoon.conf puts the gateway


@dataclass
class Options:
    streams: int = 1000  # R: burst receivers
    senders: int = 20  # S: burst senders
    messages: int = 4000  # M
    interval: float = 0.1
    loop_senders: int = 64  # C
    loop_streams: int = 200  # L
    loop_seconds: float = 20.0  # T
    memory_streams: int = 5000  # K
    hold_seconds: float = 20.0
    drain_seconds: float = 10.0
    connect_concurrency: int = 100
    targets: list[str] = field(default_factory=lambda: list(TARGET_NAMES))
    baseline: str | None = None
    access_log: bool = True
    gateway_env: dict[str, str] = field(default_factory=dict)
    naive_dir: str = str(NAIVE_DIR)
    results_dir: str = str(RESULTS_DIR)

    @property
    def members(self) -> int:
        return max(self.streams, self.memory_streams, self.loop_streams)


QUICK = {"streams": 200, "messages": 800, "loop_seconds": 8.0, "memory_streams": 1000}


# --- servers -------------------------------------------------------------------------------


def worker_pids(master: int) -> list[int]:
    """The Hypercorn master's children, without multiprocessing's resource tracker."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == master and b"resource_tracker" not in cmdline:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def wait_for_workers(master: int, count: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(master)
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise RuntimeError(f"expected {count} workers under {master}, found {worker_pids(master)}")


class PlainServer:
    """A Hypercorn server that is not the gateway, on an ephemeral port, in its own session
    (stopped by its process group)."""

    name = "server"

    def __init__(self, data_dir: Path, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.command = command
        self.cwd = cwd
        self.env = env
        self.log_path = data_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> PlainServer:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = RUNNING_ON.search(self.log_path.read_bytes())
            if match:
                self.port = int(match.group(1))
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"{self.name} did not start in 30 s")
        while time.monotonic() < deadline:
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} never answered")

    def ready(self) -> bool:
        return True

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return wait_for_workers(self.process.pid, 1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_session(process)


class NaiveServer(PlainServer):
    """naive_quart.py started as its docstring says, from its folder."""

    name = "naive"

    def __init__(self, folder: Path, data_dir: Path) -> None:
        hypercorn = Path(sys.executable).parent / "hypercorn"
        command = [str(hypercorn), "naive_quart:app", "--bind", "127.0.0.1:0"]
        super().__init__(data_dir, command, folder, {"WB_NAIVE_DB": str(data_dir / "naive.db")})

    def ready(self) -> bool:
        # Its table is created before serving: ready when a send is stored.
        try:
            response = httpx.post(
                f"http://127.0.0.1:{self.port}/send", json={"to": 0, "body": "warm"}
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 201


class FloorServer(PlainServer):
    """benchmarks/floor.py: a bare SSE app on Hypercorn with the gateway's hypercorn.toml and
    one worker, for the least a held stream can cost on this server."""

    name = "floor"

    def __init__(self, data_dir: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "hypercorn",
            "--config",
            str(PROJECT_ROOT / "hypercorn.toml"),
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "benchmarks.floor:app",
        ]
        super().__init__(data_dir, command, PROJECT_ROOT, {})


def configured_workers(config: Path) -> int:
    match = re.search(r"^workers\s*=\s*(\d+)", config.read_text(), re.M)
    return int(match.group(1)) if match else 1


# --- the dataset ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cast:
    """Member ids: receivers 1..N, then the burst senders, then the closed-loop senders."""

    receivers: int
    senders: int
    loop_senders: int

    def receiver(self, index: int) -> int:
        return index + 1

    def sender(self, k: int) -> int:
        return self.receivers + k + 1

    def loop_sender(self, k: int) -> int:
        return self.receivers + self.senders + k + 1

    def all_ids(self) -> list[int]:
        return list(range(1, self.receivers + self.senders + self.loop_senders + 1))


def burst_pairs(options: Options) -> list[tuple[int, int]]:
    """(sender k, receiver index): receiver i talks to burst sender i % S."""
    return [(i % options.senders, i) for i in range(options.streams)]


def loop_pairs(options: Options) -> list[tuple[int, int]]:
    """(loop sender k, receiver index): receiver j talks to loop sender j % C; when there are
    fewer streams than senders, receivers take more than one sender so every sender sends."""
    c, n = options.loop_senders, options.loop_streams
    return [(j % c, j % n) for j in range(max(c, n))]


def directory(cast: Cast) -> list[DirectoryEntry]:
    return [DirectoryEntry(i, f"bm-{i:05d}", sync_scope="public") for i in cast.all_ids()]


async def build_app_db(path: Path, cast: Cast) -> dict[int, str]:
    await create_directory(path, directory(cast))
    return await create_sessions(path, cast.all_ids())


async def start_conversations(
    base_url: str, pairs: list[tuple[int, int]], sessions: dict[int, str]
) -> dict[tuple[int, int], int]:
    """(sender member, receiver member) -> conversation id, started through the API."""
    limit = asyncio.Semaphore(CONVERSATION_CONCURRENCY)

    async def start(client: httpx.AsyncClient, sender: int, receiver: int) -> int:
        async with limit:
            response = await client.post(
                "/api/conversations",
                json={"peer_id": receiver, "origin": {"type": "inbox", "ref": None}},
                headers={"Cookie": f"{COOKIE_NAME}={sessions[sender]}"},
            )
        response.raise_for_status()
        return int(response.json()["conversation"]["id"])

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        ids = await asyncio.gather(*(start(client, s, r) for s, r in pairs))
    return dict(zip(pairs, ids, strict=True))


def naive_config(options: Options, cast: Cast) -> dict[str, Any]:
    def senders(pairs: list[tuple[int, int]], count: int) -> list[dict[str, Any]]:
        return [
            {
                "targets": [
                    {"path": "/send", "receiver": i, "to": cast.receiver(i)}
                    for k2, i in pairs
                    if k2 == k
                ]
            }
            for k in range(count)
        ]

    return {
        "api": "naive",
        "heartbeat_seconds": 15.0,  # fixed in naive_quart.py
        "receivers": [{"path": f"/stream/{cast.receiver(i)}"} for i in range(cast.receivers)],
        "burst_senders": senders(burst_pairs(options), options.senders),
        "loop_senders": senders(loop_pairs(options), options.loop_senders),
    }


def gateway_config(
    options: Options, cast: Cast, base_url: str, sessions: dict[int, str], prefix: str = ""
) -> dict[str, Any]:
    """The loadgen's view of the gateway at `base_url` (which ends with `prefix`, the path
    a proxy serves it under)."""

    def cookie(member: int) -> dict[str, str]:
        return {"Cookie": f"{COOKIE_NAME}={sessions[member]}"}

    bursts = [(cast.sender(k), cast.receiver(i)) for k, i in burst_pairs(options)]
    loops = [(cast.loop_sender(k), cast.receiver(i)) for k, i in loop_pairs(options)]
    conversations = asyncio.run(start_conversations(base_url, bursts + loops, sessions))

    def senders(pairs: list[tuple[int, int]], count: int, member: Any) -> list[dict[str, Any]]:
        return [
            {
                "headers": cookie(member(k)),
                "targets": [
                    {
                        "path": f"{prefix}/api/conversations/"
                        f"{conversations[(member(k), cast.receiver(i))]}/messages",
                        "receiver": i,
                    }
                    for k2, i in pairs
                    if k2 == k
                ],
            }
            for k in range(count)
        ]

    heartbeat = float(options.gateway_env.get("WB_HEARTBEAT_SECONDS", 15))
    return {
        "api": "gateway",
        "heartbeat_seconds": heartbeat,
        "receivers": [
            {"path": f"{prefix}/api/stream", "headers": cookie(cast.receiver(i))}
            for i in range(cast.receivers)
        ],
        "burst_senders": senders(burst_pairs(options), options.senders, cast.sender),
        "loop_senders": senders(loop_pairs(options), options.loop_senders, cast.loop_sender),
    }


def phases(options: Options) -> dict[str, Any]:
    return {
        "memory": {"streams": options.memory_streams, "hold_seconds": options.hold_seconds},
        "bursts": {
            "streams": options.streams,
            "messages": options.messages,
            "interval": options.interval,
            "drain_seconds": options.drain_seconds,
        },
        "loop": {
            "streams": options.loop_streams,
            "seconds": options.loop_seconds,
            "drain_seconds": options.drain_seconds,
        },
    }


def loadgen_timeout(options: Options) -> float:
    sending = options.messages / options.senders * options.interval + options.loop_seconds
    connecting = (options.memory_streams + options.streams + options.loop_streams) / 50
    return 180 + options.hold_seconds + sending + connecting + 2 * options.drain_seconds


def run_loadgen(config: dict[str, Any], work: Path, options: Options) -> dict[str, Any]:
    config_path, result_path = work / "loadgen.json", work / "loadgen-result.json"
    config_path.write_text(json.dumps(config))
    with (work / "loadgen.log").open("wb") as log:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.loadgen", str(config_path), str(result_path)],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=loadgen_timeout(options),
            check=False,
        )
    sys.stderr.write((work / "loadgen.log").read_text(errors="replace"))
    if completed.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"load generator failed ({completed.returncode})")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


# --- one target ----------------------------------------------------------------------------


def run_target(
    name: str,
    options: Options,
    root: Path,
    app_db: Path,
    cast: Cast,
    sessions: dict[int, str],
    baseline_root: Path | None,
) -> dict[str, Any]:
    work = root / name
    work.mkdir()
    started = time.monotonic()
    common = {
        "phases": phases(options),
        "host": "127.0.0.1",
        "connect_concurrency": options.connect_concurrency,
    }
    if name == "floor":
        floor = FloorServer(work).start()
        try:
            pids = floor.worker_pids()
            config = {
                **common,
                "phases": {"memory": phases(options)["memory"]},  # it has no messages
                "api": "floor",
                "heartbeat_seconds": 15.0,  # benchmarks/floor.py's default
                "receivers": [{"path": "/stream"}] * options.memory_streams,
                "port": floor.port,
                "worker_pids": pids,
            }
            result = run_loadgen(config, work, options)
        finally:
            floor.stop()
        return {
            "name": name,
            "description": "benchmarks/floor.py, a bare SSE app: hypercorn.toml, 1 worker; "
            "streams only",
            "workers": len(pids),
            "seconds": round(time.monotonic() - started, 1),
            **result,
        }
    if name == "naive":
        server = NaiveServer(Path(options.naive_dir), work).start()
        try:
            pids = server.worker_pids()
            config = {
                **naive_config(options, cast),
                **common,
                "port": server.port,
                "worker_pids": pids,
            }
            result = run_loadgen(config, work, options)
        finally:
            server.stop()
        description = "naive_quart.py, hypercorn defaults (1 worker, no access log)"
        return {
            "name": name,
            "description": description,
            "workers": len(pids),
            "seconds": round(time.monotonic() - started, 1),
            **result,
        }

    if name in OPTIONAL_TARGETS:
        result = run_proxied(name, options, work, common, app_db, cast, sessions)
        return {"name": name, "seconds": round(time.monotonic() - started, 1), **result}

    env = {"WB_APP_DB": str(app_db), **BENCHMARK_RATE_LIMITS, **options.gateway_env}
    workers: int | None = 1 if name == "gateway-1" else None
    kwargs: dict[str, Any] = {
        "workers": workers,
        "env": env,
        "start_timeout": 60,
        "access_log": options.access_log,
        "session_secret": None,
    }
    if name == "baseline":
        assert baseline_root is not None
        kwargs["root"] = baseline_root
    gateway = LocalGateway(work / "data", **kwargs)
    toml = gateway.root / "hypercorn.toml"
    expected = workers or configured_workers(toml)
    with gateway:
        assert gateway._process is not None
        pids = wait_for_workers(gateway._process.pid, expected)
        config = {
            **gateway_config(options, cast, gateway.base_url, sessions),
            **common,
            "port": gateway.port,
            "worker_pids": pids,
        }
        result = run_loadgen(config, work, options)
    label = f"@{options.baseline}" if name == "baseline" else ""
    description = (
        f"gateway{label}, hypercorn.toml with {expected} worker(s), access log "
        f"{'on (as shipped)' if options.access_log else 'off'}, WB_RATE_*=off, "
        f"synchronous={options.gateway_env.get('WB_SQLITE_SYNCHRONOUS', 'FULL')}"
    )
    extra = " ".join(f"{k}={v}" for k, v in sorted(options.gateway_env.items()))
    if extra:
        description += f", {extra}"
    return {
        "name": name,
        "description": description,
        "workers": len(pids),
        "seconds": round(time.monotonic() - started, 1),
        **result,
    }


def run_proxied(
    name: str,
    options: Options,
    work: Path,
    common: dict[str, Any],
    app_db: Path,
    cast: Cast,
    sessions: dict[int, str],
) -> dict[str, Any]:
    """Gateway hosts behind nginx: `postgres-2hosts` (two hosts of one worker on a PostgreSQL
    cluster holding both databases) or `gateway-nginx` (one SQLite host of two workers).

    Both take the same cast and cookies as the other targets (on PostgreSQL, the same session
    ids in WhiteBalloon's `sessions` table there). The server's CPU is the gateway workers'
    and, on PostgreSQL, the cluster's: the shared store's work is the price of several hosts.
    nginx's CPU is measured and reported, not added, since the other targets have no proxy;
    `gateway-nginx` shows what the proxy alone changes."""
    postgres = name == "postgres-2hosts"
    hosts, workers = (
        (2, 1) if postgres else (1, configured_workers(PROJECT_ROOT / "hypercorn.toml"))
    )
    if find_nginx() is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
    if postgres and binaries() is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    env: dict[str, str] = {"WB_APP_DB": str(app_db)}
    store_pid: int | None = None
    with contextlib.ExitStack() as stack:
        if postgres:
            # fsync on, as SQLite's synchronous=FULL: a send is acknowledged once on disk.
            cluster = PostgresCluster(durable=True)
            stack.callback(cluster.stop)
            cluster.start()
            messaging = cluster.database("messaging")
            app = stack.enter_context(whiteballoon_on_postgres(cluster, directory(cast)))
            app.sign_in_many(sessions)
            env = {"WB_MESSAGING_DB": messaging.url, "WB_APP_DB": app.reader.url}
            store_pid = cluster.server_pid
            with cluster.admin() as conn:
                row = conn.execute("SHOW server_version").fetchone()
            version = f"PostgreSQL {row[0] if row else '?'}"
        env.update({**BENCHMARK_RATE_LIMITS, **options.gateway_env})
        gateways = [
            LocalGateway(
                work / f"host-{n}",
                workers=workers,
                env=env,
                start_timeout=60,
                access_log=options.access_log,
                session_secret=None,
            )
            for n in range(1, hosts + 1)
        ]
        pids = []
        for gateway in gateways:  # one after another: the first runs the migrations
            stack.enter_context(gateway)
            assert gateway._process is not None
            pids += wait_for_workers(gateway._process.pid, workers)
        proxy = Nginx(
            work / "nginx",
            whiteballoon_port=free_port(),  # WhiteBalloon itself is not needed here
            gateway_port=[gateway.port for gateway in gateways],
            # Every stream and every sender holds two: the client's and the upstream's.
            worker_connections=2 * (options.members + options.senders + options.loop_senders)
            + 1024,
        )
        stack.enter_context(proxy)
        assert proxy._process is not None
        base_url = proxy.url(PROXY_PREFIX)
        config = {
            **gateway_config(options, cast, base_url, sessions, PROXY_PREFIX),
            **common,
            "port": proxy.port,
            "worker_pids": pids,
            "store_pid": store_pid,
            "proxy_pid": proxy._process.pid,
        }
        result = run_loadgen(config, work, options)
    store = (
        f"{version} (fsync on, synchronous_commit on) holding both databases"
        if postgres
        else f"SQLite, synchronous={options.gateway_env.get('WB_SQLITE_SYNCHRONOUS', 'FULL')}"
    )
    description = (
        f"{hosts} gateway host(s), hypercorn.toml with {workers} worker(s) each, on {store}, "
        f"behind nginx (deploy/nginx/whiteballoon.conf, 1 worker; its CPU not counted), "
        f"access log {'on (as shipped)' if options.access_log else 'off'}, WB_RATE_*=off"
    )
    extra = " ".join(f"{k}={v}" for k, v in sorted(options.gateway_env.items()))
    if extra:
        description += f", {extra}"
    return {"description": description, "workers": len(pids), **result}


# --- the whole run -------------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def raise_open_file_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, wanted) if hard == resource.RLIM_INFINITY else min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_comparison(options: Options, argv: list[str] | None = None) -> dict[str, Any]:
    raise_open_file_limit(options.members + 2048)
    cast = Cast(options.members, options.senders, options.loop_senders)
    names = [n for n in options.targets if n in TARGET_NAMES + OPTIONAL_TARGETS]
    if options.baseline:
        names.append("baseline")
    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "machine": machine(),
        "command": "python -m benchmarks.compare " + " ".join(argv or []),
        "options": asdict(options),
        "targets": [],
    }
    with tempfile.TemporaryDirectory(prefix="wb-compare-") as tmp:
        root = Path(tmp)
        app_db = root / "app.db"
        sessions = asyncio.run(build_app_db(app_db, cast))
        baseline_root: Path | None = None
        try:
            if options.baseline:
                baseline_root = root / "baseline-tree"
                git("worktree", "add", "--detach", str(baseline_root), options.baseline)
                report["baseline_commit"] = subprocess.run(
                    ["git", "rev-parse", "--short", "HEAD"],
                    cwd=baseline_root,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
            for name in names:
                print(f"== {name}", file=sys.stderr, flush=True)
                try:
                    report["targets"].append(
                        run_target(name, options, root, app_db, cast, sessions, baseline_root)
                    )
                except Exception as error:  # one broken target must not lose the others
                    print(f"== {name} failed: {error!r}", file=sys.stderr, flush=True)
                    report["targets"].append({"name": name, "error": repr(error)})
        finally:
            if baseline_root is not None:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(baseline_root)],
                    cwd=PROJECT_ROOT,
                    check=False,
                )
                subprocess.run(["git", "worktree", "prune"], cwd=PROJECT_ROOT, check=False)
    results_dir = Path(options.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = results_dir / f"compare-{stamp}.json"
    report["table"] = table(report)
    path.write_text(json.dumps(report, indent=2))
    report["json_path"] = str(path)
    return report


# --- the table -----------------------------------------------------------------------------


def _get(result: dict[str, Any], path: str) -> Any:
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return (
            f"{value:,.1f}"
            if abs(value) >= 100
            else f"{value:.3g}"
            if abs(value) < 1
            else f"{value:.2f}"
        )
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ratio(value: Any, naive: Any) -> str:
    if isinstance(value, bool) or isinstance(naive, bool):
        return ""
    if not isinstance(value, int | float) or not isinstance(naive, int | float) or not naive:
        return ""
    return f"x{value / naive:.2f}"


STORE_ROW = "    of which PostgreSQL"
PROXY_ROW = "  nginx CPU ms per message (not counted)"
PROXY_CORES_ROW = "  nginx cores, busiest phase"
# Rows only a target with a store server or a proxy has ("-" for the others).
OPTIONAL_ROWS = (STORE_ROW, PROXY_ROW, PROXY_CORES_ROW)


def rows(options: dict[str, Any]) -> list[tuple[str, Any, bool]]:
    """(label, dotted path or function of a target's result, ratio to naive?); a row without
    a getter is a section heading."""
    o = options
    bursts = (
        f"Bursts: {o['streams']:,} streams, {o['senders']} senders together every "
        f"{o['interval'] * 1000:g} ms, {o['messages']:,} msgs"
    )
    loop = (
        f"Closed loop: {o['loop_senders']} senders back-to-back {o['loop_seconds']:g} s, "
        f"{o['loop_streams']} streams"
    )
    memory = f"Streams: {o['memory_streams']:,} held {o['hold_seconds']:g} s"
    return [
        (bursts, None, False),
        ("  send-to-receive p50 ms", "bursts.p50_ms", True),
        ("  send-to-receive p95 ms", "bursts.p95_ms", True),
        ("  send-to-receive p99 ms", "bursts.p99_ms", True),
        ("  lost / duplicated", lambda r: _pair(r, "bursts", "lost", "duplicated"), False),
        ("  POST ack p50 ms", "bursts.ack_p50_ms", True),
        ("  POST ack p95 ms", "bursts.ack_p95_ms", True),
        ("  server CPU ms per message", "bursts.cpu_ms_per_message", True),
        (STORE_ROW, "bursts.store_cpu_ms_per_message", False),
        (PROXY_ROW, "bursts.proxy_cpu_ms_per_message", False),
        (loop, None, False),
        ("  acknowledged msg/s", "loop.acked_per_second", True),
        ("  ack p50 ms", "loop.ack_p50_ms", True),
        ("  ack p95 ms", "loop.ack_p95_ms", True),
        ("  send-to-receive p95 ms", "loop.p95_ms", True),
        ("  lost / duplicated", lambda r: _pair(r, "loop", "lost", "duplicated"), False),
        ("  server CPU ms per message", "loop.cpu_ms_per_message", True),
        (STORE_ROW, "loop.store_cpu_ms_per_message", False),
        (PROXY_ROW, "loop.proxy_cpu_ms_per_message", False),
        (memory, None, False),
        ("  worker RSS KB per stream", "memory.rss_per_stream_kb", True),
        ("  connect all, s", "memory.connect_s", True),
        ("  server CPU ms per connect", "memory.connect_cpu_ms_per_stream", True),
        ("  heartbeats on time", "memory.heartbeats_on_time", True),
        ("  longest silence s", "memory.longest_silence_s", True),
        (
            "  streams failed / ended early",
            lambda r: _pair(r, "memory", "failed", "ended_early"),
            False,
        ),
        ("Load generator and machine (cores = CPU s / wall s)", None, False),
        ("  loadgen cores, busiest phase", lambda r: _max_usage(r, "loadgen_cores"), False),
        (
            "  burst start lateness p99 / max ms",
            lambda r: _pair(r, "bursts", "tick_lag_p99_ms", "tick_lag_max_ms"),
            False,
        ),
        ("  other processes' cores, busiest phase", lambda r: _max_usage(r, "other_cores"), False),
        ("  server cores, busiest phase", lambda r: _max_usage(r, "server_cores"), False),
        (PROXY_CORES_ROW, lambda r: _max_usage(r, "proxy_cores"), False),
    ]


def _pair(result: dict[str, Any], phase: str, a: str, b: str) -> str | None:
    first, second = _get(result, f"{phase}.{a}"), _get(result, f"{phase}.{b}")
    if first is None or second is None:
        return None
    return f"{_fmt(first)} / {_fmt(second)}"


def _max_usage(result: dict[str, Any], key: str) -> float | None:
    """The largest figure over the phases that lasted at least a second (/proc counts CPU in
    10 ms ticks, so shorter phases are noise)."""
    usages = [
        _get(result, path)
        for path in ("memory.usage_connect", "memory.usage_hold", "bursts.usage", "loop.usage")
    ]
    present = [
        u[key]
        for u in usages
        if isinstance(u, dict) and u.get("wall_s", 0) >= 1 and u.get(key) is not None
    ]
    return max(present) if present else None


def table(report: dict[str, Any]) -> str:
    targets = report["targets"]
    naive = next((t for t in targets if t["name"] == "naive" and "error" not in t), None)
    header = ["figure"]
    for target in targets:
        label = (
            target["name"]
            if target["name"] != "baseline"
            else f"baseline {report.get('baseline_commit', '')}".strip()
        )
        header.append(label)
        if naive is not None and target is not naive:
            header.append("/ naive")
    lines = [header]
    for label, getter, ratio in rows(report["options"]):
        if getter is None:
            lines.append([label] + [""] * (len(header) - 1))
            continue
        line = [label]
        base = (getter(naive) if callable(getter) else _get(naive, getter)) if naive else None
        for target in targets:
            value = getter(target) if callable(getter) else _get(target, getter)
            line.append("error" if "error" in target else _fmt(value))
            if naive is not None and target is not naive:
                line.append(_ratio(value, base) if ratio else "")
        lines.append(line)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for n, row in enumerate(lines):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        out.append("| " + " | ".join(cells) + " |")
        if n == 0:
            out.append(
                "|"
                + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths))
                + "|"
            )
    notes = [f"{t['name']}: {t.get('description', t.get('error'))}" for t in targets]
    return "\n".join([*out, "", *notes])


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="200 streams, 800 messages, 8 s closed loop, 1,000 held streams",
    )
    parser.add_argument("--baseline", metavar="REV", help="also run this commit's gateway")
    parser.add_argument(
        "--targets",
        default=",".join(TARGET_NAMES),
        help=f"comma-separated, from {', '.join(TARGET_NAMES + OPTIONAL_TARGETS)} "
        f"(default: {','.join(TARGET_NAMES)})",
    )
    parser.add_argument("--streams", type=int, help="R, burst receivers (1000)")
    parser.add_argument("--senders", type=int, help="S, burst senders (20)")
    parser.add_argument("--messages", type=int, help="M, burst messages (4000)")
    parser.add_argument("--interval", type=float, help="seconds between bursts (0.1)")
    parser.add_argument("--loop-senders", type=int, help="C (64)")
    parser.add_argument("--loop-streams", type=int, help="L (200)")
    parser.add_argument("--loop-seconds", type=float, help="T (20)")
    parser.add_argument("--memory-streams", type=int, help="K (5000)")
    parser.add_argument("--hold-seconds", type=float, help="how long K streams are held (20)")
    parser.add_argument("--drain-seconds", type=float, help="wait for deliveries (10)")
    parser.add_argument("--connect-concurrency", type=int, help="handshakes in flight (100)")
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="run the gateway without its access log (shipped: on)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="WB_SETTING=VALUE",
        help="extra gateway setting, repeatable",
    )
    parser.add_argument("--results-dir", help="where the JSON goes (benchmarks/results)")
    args = parser.parse_args(argv)
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in (
        "streams",
        "senders",
        "messages",
        "interval",
        "loop_senders",
        "loop_streams",
        "loop_seconds",
        "memory_streams",
        "hold_seconds",
        "drain_seconds",
        "connect_concurrency",
        "results_dir",
    ):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(TARGET_NAMES + OPTIONAL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    env = dict(item.split("=", 1) for item in args.env)
    return Options(
        **values,
        targets=targets,
        baseline=args.baseline,
        access_log=not args.no_access_log,
        gateway_env=env,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    options = parse_args(args)
    report = run_comparison(options, args)
    print(
        f"\nWhiteBalloon gateway vs naive_quart, {report['date']}, commit {report['commit']}, "
        f"{report['machine']['nproc']} x {report['machine']['cpu_model']}"
    )
    print(f"command: {report['command']}\n")
    print(report["table"])
    print(f"\nJSON: {report['json_path']}")
    return 1 if any("error" in t for t in report["targets"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
