"""A throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, `initdb` in a
temporary folder (as the `postgres` system user when the tests run as root, since PostgreSQL
refuses to run as root), listening only on a Unix socket in that folder, stopped and deleted
at the end.

`PostgresCluster.database()` creates an empty database and returns its URL, as an operator
would give it in `WB_MESSAGING_DB` or `WB_APP_DB`. `whiteballoon_on_postgres` makes the main
app's database there, as WhiteBalloon's SQLModel tables are on PostgreSQL, with a read-only
role for the gateway.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from gateway.config import PostgresUrl
from gateway.store.stand_in import SESSION_DAYS, DirectoryEntry

START_SECONDS = 60
_WATCHER = """
import os, shutil, signal, sys, time
parent, server, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
while alive(parent) and alive(server):
    time.sleep(1)
if alive(server):
    os.killpg(server, signal.SIGINT)
    for _ in range(300):
        if not alive(server):
            break
        time.sleep(0.1)
shutil.rmtree(root, ignore_errors=True)
"""


def binaries() -> Path | None:
    """The folder of the newest installed PostgreSQL server, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_binaries() -> Path:
    """The server binaries, or a skip (a failure in CI, which installs them)."""
    folder = binaries()
    if folder is None:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


class PostgresCluster:
    def __init__(self, *, durable: bool = False) -> None:
        """`durable=False` turns fsync off: a cluster that lives for one test run need not
        survive a power cut, and the gateway's own durability is tested by killing it."""
        self._bin = require_binaries()
        self._durable = durable
        self._as: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
            self._owner = (user.pw_uid, user.pw_gid)
        self.root = Path(tempfile.mkdtemp(prefix="wb-postgres-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url(self, database: str = "postgres", user: str = "postgres") -> PostgresUrl:
        return PostgresUrl(f"postgresql://{user}@/{database}?host={self.socket_dir}")

    def start(self) -> PostgresCluster:
        if self._owner is not None:
            os.chown(self.root, *self._owner)
        data = self.root / "data"
        subprocess.run(
            [
                *(*self._as, str(self._bin / "initdb"), "-D", str(data), "-U", "postgres"),
                *("--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"),
            ],
            check=True,
            capture_output=True,
        )
        settings = [
            "listen_addresses=",
            f"unix_socket_directories={self.socket_dir}",
            "max_connections=300",
            f"fsync={'on' if self._durable else 'off'}",
        ]
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (the server holds it)
        self._process = subprocess.Popen(
            [
                *(*self._as, str(self._bin / "postgres"), "-D", str(data)),
                *(arg for setting in settings for arg in ("-c", setting)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._watch(self._process.pid)
        self._wait_ready()
        return self

    def _watch(self, server: int) -> None:
        """Stop the server and delete its folder should this process die without `stop`
        (a test run killed by a timeout): the server runs in a session of its own."""
        subprocess.Popen(
            [sys.executable, "-c", _WATCHER, str(os.getpid()), str(server), str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"PostgreSQL did not start:\n{self.log()}")
            try:
                psycopg.connect(self.url().url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def server_pid(self) -> int:
        """The postmaster's PID, the parent of every backend (as root, the process started
        here is `runuser`, not the server)."""
        return int((self.root / "data" / "postmaster.pid").read_text().split("\n", 1)[0])

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url().url, autocommit=True)

    def database(self, prefix: str = "wb") -> PostgresUrl:
        """A new, empty database."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop(self, url: PostgresUrl) -> None:
        name = psycopg.conninfo.conninfo_to_dict(url.url)["dbname"]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")[-4000:]
        return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # fast shutdown: end sessions, stop
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


# WhiteBalloon's tables as SQLModel creates them on PostgreSQL (real booleans and timestamps,
# unlike SQLite), and the role the README asks operators to give the gateway: SELECT on the
# three tables it reads, nothing more.
WHITEBALLOON_TABLES = """
CREATE TABLE users (id SERIAL PRIMARY KEY, username VARCHAR UNIQUE, is_admin BOOLEAN NOT NULL,
    contact_email VARCHAR, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    sync_scope VARCHAR NOT NULL);
CREATE TABLE user_attributes (id SERIAL PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users,
    key VARCHAR NOT NULL, value VARCHAR, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, created_by_user_id INTEGER,
    updated_by_user_id INTEGER, UNIQUE (user_id, key));
CREATE TABLE sessions (id VARCHAR PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    last_seen_at TIMESTAMP WITHOUT TIME ZONE, auth_request_id VARCHAR,
    is_fully_authenticated BOOLEAN NOT NULL);
"""


@dataclass(frozen=True)
class WhiteBalloonDatabase:
    owner: PostgresUrl  # what WhiteBalloon itself connects as
    reader: PostgresUrl  # what the gateway is given in WB_APP_DB

    def sign_in(self, user_id: int, session_id: str | None = None, *, approved: bool = True) -> str:
        """A sign-in as WhiteBalloon records it; the value of the `wb_session_id` cookie."""
        session_id = session_id or uuid.uuid4().hex
        self.sign_in_many({user_id: session_id}, approved=approved)
        return session_id

    def sign_in_many(self, sessions: dict[int, str], *, approved: bool = True) -> None:
        """Member id -> session id, each recorded as `sign_in` does, over one connection (the
        benchmark signs in thousands)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        expires = now + timedelta(days=SESSION_DAYS)
        with psycopg.connect(self.owner.url) as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO sessions VALUES (%s, %s, %s, %s, NULL, NULL, %s)",
                [(sid, uid, now, expires, approved) for uid, sid in sessions.items()],
            )


@contextlib.contextmanager
def whiteballoon_on_postgres(
    cluster: PostgresCluster, members: Iterable[DirectoryEntry]
) -> Iterator[WhiteBalloonDatabase]:
    owner = cluster.database("whiteballoon")
    name = psycopg.conninfo.conninfo_to_dict(owner.url)["dbname"]
    role = f"{name}_gateway"
    now = datetime.now(UTC).replace(tzinfo=None)
    with psycopg.connect(owner.url, autocommit=True) as conn:
        conn.execute(WHITEBALLOON_TABLES)
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT SELECT ON users, user_attributes, sessions TO "{role}"')
        for m in members:
            conn.execute(
                "INSERT INTO users (id, username, is_admin, created_at, sync_scope) "
                "VALUES (%s, %s, %s, %s, %s)",
                (m.user_id, m.username, m.is_admin, now, m.sync_scope),
            )
            attributes = list(m.attributes)
            if m.invited_by is not None:
                attributes.append(("invited_by_user_id", str(m.invited_by)))
            for key, value in attributes:
                conn.execute(
                    "INSERT INTO user_attributes (user_id, key, value, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (m.user_id, key, value, now, now),
                )
    try:
        yield WhiteBalloonDatabase(owner, cluster.url(name, user=role))
    finally:
        cluster.drop(owner)
        with cluster.admin() as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
