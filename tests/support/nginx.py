"""Run Debian's nginx in front of a test server, with the shipped deploy/nginx/whiteballoon.conf.

The shipped file is an operator's example with real-looking ports; `render()` swaps in the
ports of the servers a test started (and can make the variants the tests need), checking
that each line it replaces is there exactly once, so the test always runs the file as
shipped. `Nginx` wraps it in a minimal nginx.conf whose every path (pid, logs, temp files)
lives in a temporary directory, so it runs without root and without touching /etc/nginx:

    with Nginx(tmp_path / "nginx", whiteballoon_port=wb.port, gateway_port=gw.port) as proxy:
        httpx.get(proxy.url("/messages/"))
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = PROJECT_ROOT / "deploy" / "nginx" / "whiteballoon.conf"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/bin/nginx")

# The shipped file's example values, as written there.
_WHITEBALLOON_SERVER = "server 127.0.0.1:8000;"
_GATEWAY_SERVER = "server 127.0.0.1:8001;"
_LISTEN = "listen 80;"
_LISTEN_V6 = "listen [::]:80;"
_GATEWAY_PASS = "proxy_pass http://whiteballoon_messages/;"
_STREAM_PASS = "proxy_pass http://whiteballoon_messages/api/stream;"
_HOST_HEADER = "proxy_set_header Host $http_host;"


def find_nginx() -> str | None:
    for candidate in (os.environ.get("WB_NGINX"), shutil.which("nginx"), *NGINX_CANDIDATES):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_nginx() -> str:
    """nginx's path; skip the test without it, except in CI, where it must be installed."""
    executable = find_nginx()
    if executable is None:
        reason = "no nginx found (install Debian's `nginx-light` package or set WB_NGINX)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the reverse-proxy tests, not skip them")
        pytest.skip(reason)
    return executable


def free_port() -> int:
    """A port nobody listens on right now (nginx cannot report an ephemeral port it bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"{SHIPPED_CONF.name}: expected {old!r} once, found it {count} times")
    return text.replace(old, new)


def _gateway_locations(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the active `location /messages...` blocks that proxy."""
    spans = []
    start = text.find("\n    location /messages")
    while start != -1:
        end = text.index("\n    }", start)
        if "proxy_pass" in text[start:end]:
            spans.append((start, end))
        start = text.find("\n    location /messages", end)
    return spans


def render(
    *,
    listen_port: int,
    whiteballoon_port: int,
    gateway_port: int | Sequence[int],
    pass_host: bool = True,
    root_path: bool = False,
    source: Path = SHIPPED_CONF,
) -> str:
    """The shipped server block with real ports.

    Several gateway ports make the upstream list several gateway hosts (on one PostgreSQL
    database), as the shipped file's comment describes. pass_host=False drops
    `proxy_set_header Host` from the gateway's locations (the mistake
    the file warns about); root_path=True is the file's WB_ROOT_PATH=/messages variant, which
    passes the path to the gateway unchanged.
    """
    text = source.read_text()
    text = _replace_once(text, _WHITEBALLOON_SERVER, f"server 127.0.0.1:{whiteballoon_port};")
    ports = [gateway_port] if isinstance(gateway_port, int) else list(gateway_port)
    servers = "\n    ".join(f"server 127.0.0.1:{port};" for port in ports)
    text = _replace_once(text, _GATEWAY_SERVER, servers)
    text = _replace_once(text, _LISTEN, f"listen 127.0.0.1:{listen_port};")
    text = _replace_once(text, _LISTEN_V6, "")
    if root_path:
        text = _replace_once(text, _GATEWAY_PASS, "proxy_pass http://whiteballoon_messages;")
        text = _replace_once(text, _STREAM_PASS, "proxy_pass http://whiteballoon_messages;")
    if not pass_host:
        spans = _gateway_locations(text)
        if len(spans) != 2:
            raise AssertionError(f"expected two gateway locations, found {len(spans)}")
        for start, end in reversed(spans):
            block = text[start:end]
            if block.count(_HOST_HEADER) != 1:
                raise AssertionError(f"no single {_HOST_HEADER!r} in {block!r}")
            text = text[:start] + block.replace(_HOST_HEADER, "") + text[end:]
    return text


def main_conf(server_block: Path, prefix: Path, worker_connections: int = 512) -> str:
    """A whole nginx.conf around the server block; every path under `prefix`.
    `worker_connections` counts both sides: a proxied stream takes two."""
    # As root (CI containers), workers would run as `nobody` and could not reach the
    # private temporary directory; as anyone else, `user` is ignored with a warning.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    # Room for the connections plus nginx's own files (logs, temp files).
    files = ""
    if worker_connections > 512:
        files = f"worker_rlimit_nofile {worker_connections + 256};\n"
    return (
        f"{user}worker_processes 1;\n"
        f"{files}"
        f"events {{ worker_connections {worker_connections}; }}\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        f"    client_body_temp_path {prefix / 'body'};\n"
        f"    proxy_temp_path {prefix / 'proxy'};\n"
        f"    fastcgi_temp_path {prefix / 'fastcgi'};\n"
        f"    uwsgi_temp_path {prefix / 'uwsgi'};\n"
        f"    scgi_temp_path {prefix / 'scgi'};\n"
        f"    include {server_block};\n"
        "}\n"
    )


class Nginx:
    """nginx on 127.0.0.1:`port` (a free port chosen at construction, so a test can name the
    public origin, e.g. in WB_ALLOWED_ORIGINS, before anything starts)."""

    def __init__(
        self,
        directory: Path,
        *,
        whiteballoon_port: int,
        gateway_port: int | Sequence[int],
        pass_host: bool = True,
        root_path: bool = False,
        port: int | None = None,
        start_timeout: float = 10.0,
        worker_connections: int = 512,
    ) -> None:
        self.executable = require_nginx()
        self.directory = directory
        self.whiteballoon_port = whiteballoon_port
        self.gateway_port = gateway_port
        self.pass_host = pass_host
        self.root_path = root_path
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.worker_connections = worker_connections
        self.error_log = directory / "error.log"
        self.pid_path = directory / "nginx.pid"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.base_url

    def url(self, path: str) -> str:
        return self.base_url + path

    def write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        server_block = self.directory / "whiteballoon.conf"
        server_block.write_text(
            render(
                listen_port=self.port,
                whiteballoon_port=self.whiteballoon_port,
                gateway_port=self.gateway_port,
                pass_host=self.pass_host,
                root_path=self.root_path,
            )
        )
        conf = self.directory / "nginx.conf"
        conf.write_text(main_conf(server_block, self.directory, self.worker_connections))
        return conf

    def command(self, conf: Path, *extra: str) -> list[str]:
        directives = f"daemon off; pid {self.pid_path}; error_log {self.error_log} info;"
        return [
            self.executable,
            "-p",
            str(self.directory),
            "-e",
            str(self.error_log),
            "-c",
            str(conf),
            "-g",
            directives,
            *extra,
        ]

    def start(self) -> Nginx:
        conf = self.write_config()
        checked = subprocess.run(
            self.command(conf, "-t"), capture_output=True, text=True, check=False
        )
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{checked.stderr}")
        self._process = subprocess.Popen(
            self.command(conf),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_until_listening()
        return self

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            # The master's PID (daemon off: the process we started); QUIT would wait for the
            # open streams, TERM closes them at once.
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log_text(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def access_log_text(self) -> str:
        path = self.directory / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"nginx exited at start:\n{self.log_text()}")
            # The master writes its pid file once it has bound the port; a connection alone
            # could reach whoever took the port first.
            started = self.pid_path.exists() and self.pid_path.read_text().strip() == str(
                self._process.pid
            )
            if started:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen in {self.start_timeout}s:\n{self.log_text()}")
