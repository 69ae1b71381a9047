"""Start a real gateway under Hypercorn on 127.0.0.1 and an ephemeral port.

Used by the end-to-end and browser tests and by the load-test runner, so each runs the
shipped `hypercorn.toml` exactly as production does, on a fresh data directory:

    with LocalGateway(tmp_path, workers=2) as gateway:
        httpx.get(gateway.url("/healthz"))
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from types import TracebackType

from gateway.auth import sign_session
from gateway.demo import secret_path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HYPERCORN_CONFIG = PROJECT_ROOT / "hypercorn.toml"
_RUNNING_ON = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")


class LocalGateway:
    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
        access_log: bool = False,
        session_secret: str | None = "local-test-secret",
        root: Path = PROJECT_ROOT,
    ) -> None:
        """`session_secret`: the WB_SESSION_SECRET set when WB_APP_DB is given and `env` names
        none, so `cookie_for` can sign cookies; None runs the gateway with WhiteBalloon's own
        `wb_session_id` cookie only, as a deployment without a shared secret does. `root`:
        the checkout whose gateway and hypercorn.toml run (another commit's, for a baseline)."""
        self.data_dir = data_dir
        self.root = root
        self.workers = workers
        self.env = {"WB_MESSAGING_DB": str(data_dir / "messaging.db"), **(env or {})}
        if "WB_APP_DB" in self.env and session_secret is not None:
            self.env.setdefault("WB_SESSION_SECRET", session_secret)
        self.start_timeout = start_timeout
        self.access_log = access_log
        self.log_path = data_dir / "hypercorn.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def root_path(self) -> str:
        """WB_ROOT_PATH without its trailing slash: the gateway answers only under it."""
        return self.env.get("WB_ROOT_PATH", "").strip().rstrip("/")

    @property
    def secret(self) -> str:
        """The signing secret: the configured one, or the demo's own once it has started."""
        configured = self.env.get("WB_SESSION_SECRET")
        if configured:
            return configured.split(",")[0]
        return secret_path(Path(self.env["WB_MESSAGING_DB"]).parent).read_text()

    def cookie_for(self, user_id: int, **session: object) -> str:
        """A session cookie value for `user_id`, signed like the main app's."""
        return sign_session(self.secret.strip(), {"user_id": user_id, **session})

    def start(self, port: int = 0) -> LocalGateway:
        """Start the server, on `port` or an ephemeral one, and return once it is healthy.
        Starting again (after `stop`) appends to the same log."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.root / "hypercorn.toml"
        command = [
            sys.executable,
            "-m",
            "hypercorn",
            "--config",
            str(config),
            "--bind",
            f"127.0.0.1:{port}",
        ]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        if not self.access_log and "accesslog" in tomllib.loads(config.read_text()):
            # A checkout from before WB_ACCESS_LOG turned on Hypercorn's own access log.
            command += ["--access-logfile", os.devnull]
        command.append("gateway.asgi:app")
        env = {**os.environ, "WB_ACCESS_LOG": "on" if self.access_log else "off", **self.env}
        if self.root != PROJECT_ROOT:
            env["PYTHONPATH"] = str(self.root)  # that checkout's gateway, not this one's
        with self.log_path.open("ab") as log:
            log_start = log.tell()  # an earlier start's "Running on" must not be read as ours
            self._process = subprocess.Popen(
                command,
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.port = port or self._wait_for_port(log_start)
        self._wait_until_healthy()
        return self

    def signal_all(self, signum: int) -> None:
        """Signal the master and every worker, as systemd signals a control group."""
        assert self._process is not None
        os.killpg(self._process.pid, signum)

    def signal_master(self, signum: int) -> None:
        """Signal Hypercorn's master alone, as `kill PID` or systemd's KillMode=mixed does."""
        assert self._process is not None
        os.kill(self._process.pid, signum)

    def worker_pids(self) -> list[int]:
        """The Hypercorn workers: the master's child processes."""
        assert self._process is not None
        master, children = self._process.pid, []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            # Spawned workers, not multiprocessing's resource tracker.
            if int(fields[1]) == master and b"spawn_main" in cmdline:
                children.append(int(stat.parent.name))
        return children

    def wait_exited(self, timeout: float) -> int:
        """The server's exit code once it stopped by itself within `timeout` seconds."""
        assert self._process is not None
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"still running after {timeout}s:\n{self.log_text()}") from None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_session(process)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_for_port(self, log_start: int) -> int:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            match = _RUNNING_ON.search(self.log_path.read_bytes()[log_start:])
            if match:
                return int(match.group(1))
            if self._process.poll() is not None:
                raise RuntimeError(f"gateway exited at start:\n{self.log_text()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway did not start in {self.start_timeout}s:\n{self.log_text()}")

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    self.url(self.root_path + "/healthz"), timeout=2
                ) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway never became healthy:\n{self.log_text()}")


def stop_session(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop a server started with `start_new_session`, and everything in its process group:
    SIGTERM, then SIGKILL after `timeout` seconds. Nothing if it has already exited."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
