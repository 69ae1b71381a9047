"""Settings, each declared once with its environment variable, type, default and help.

`Settings.from_env()` is the only reader of the environment; a bad value stops start-up
with a `ConfigError` naming the variable, instead of surfacing later as a confusing failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.exceptions import ConfigError
from gateway.rate_limits import RateLimit, parse_rate_limit


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _secrets(raw: str) -> tuple[str, ...]:
    secrets = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not secrets:
        raise ValueError("needs at least one non-empty secret")
    return secrets


_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class PostgresUrl:
    """A PostgreSQL database, as a libpq connection URL (`postgresql://user@host/db`)."""

    url: str

    def __str__(self) -> str:
        """The URL with any password masked: safe to log or print."""
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", self.url)

    def __repr__(self) -> str:
        return f"PostgresUrl({str(self)!r})"


# Where a database lives: a SQLite file, or a PostgreSQL database.
Database = Path | PostgresUrl


def database_location(raw: str) -> Database:
    """A database in the forms WhiteBalloon's own `DATABASE_URL` takes: a SQLite file path or
    `sqlite:///` URL (`sqlite:///data/app.db` relative, `sqlite:////srv/app.db` absolute), or
    a `postgresql://` URL (`postgres://` too). A driver after `+` (`postgresql+psycopg://`) is
    ignored. Any other scheme is refused: it must never be taken for a folder name."""
    if not raw.strip():
        raise ValueError("is empty")
    url = _URL.fullmatch(raw.strip())
    if url is None:
        return Path(raw)
    scheme, rest = url.group(1).lower().split("+", 1)[0], url.group(2)
    if scheme in ("postgresql", "postgres"):
        return _postgres_url(rest)
    if scheme != "sqlite":
        raise ValueError(
            f"names a {scheme!r} database; the gateway stores in SQLite or PostgreSQL: give a "
            "file path, a sqlite:/// URL or a postgresql:// URL"
        )
    path = rest[1:] if rest.startswith("/") else rest  # sqlite:///x is the relative path x
    if not path or path == ":memory:" or "?" in path:
        raise ValueError("must name a database file, as sqlite:///path/to/file.db")
    return Path(path)


def _postgres_url(rest: str) -> PostgresUrl:
    from psycopg import conninfo  # only PostgreSQL settings need the driver

    url = "postgresql://" + rest
    try:
        parts = conninfo.conninfo_to_dict(url)
    except Exception as error:  # psycopg.ProgrammingError, with libpq's own words
        raise ValueError(f"is not a PostgreSQL URL libpq accepts: {error}") from None
    if not parts.get("dbname"):
        raise ValueError("must name its database, as postgresql://user@host/dbname")
    return PostgresUrl(url)


def database_path(raw: str) -> Path:
    """A SQLite database file (`database_location`, PostgreSQL refused): what the importer
    reads, WhiteBalloon's own `messages.db`."""
    location = database_location(raw)
    if isinstance(location, PostgresUrl):
        raise ValueError("names a PostgreSQL database; this must be a SQLite file")
    return location


def database_argument(raw: str) -> Path:
    """`database_path` for a command's argument: a refusal says why, as argparse reports it."""
    try:
        return database_path(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{raw!r} {error}") from None


def _app_db(raw: str) -> Database:
    if not raw.strip():
        raise ValueError("is empty: set it to the main app's database, or unset it for the demo")
    return database_location(raw)


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if "://" not in origin:
            raise ValueError(f"{origin!r} is not an origin such as https://app.example.org")
    return origins


def _on_off(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in {"on", "off"}:
        raise ValueError("must be on or off")
    return value == "on"


def _synchronous(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"FULL", "NORMAL"}:
        raise ValueError("must be FULL or NORMAL")
    return value


def _root_path(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and (not value.startswith("/") or "//" in value or any(c in value for c in "?#")):
        raise ValueError("must be a path such as /messages")
    return value


def _session_check(raw: str) -> float:
    # A signed-out member stops receiving within 5 s: a check, plus the time it takes.
    value = float(raw)
    if not 0 < value <= 4:
        raise ValueError("must be more than 0 and at most 4 seconds")
    return value


def setting(env: str, parse: Callable[[str], Any], default: Any, help: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "help": help})


@dataclass(frozen=True)
class Settings:
    session_secrets: tuple[str, ...] | None = setting(
        "WB_SESSION_SECRET",
        _secrets,
        None,
        "Comma-separated secrets of a signed session cookie (Starlette's SessionMiddleware), "
        "for main apps that sign their sessions. All verify; rotate by prepending a new one. "
        "Optional with WB_APP_DB (WhiteBalloon's own wb_session_id cookie needs none); refused "
        "without it (the demo keeps its own random secret in the data folder).",
    )
    app_session_cookie: str = setting(
        "WB_APP_SESSION_COOKIE",
        str,
        "wb_session_id",
        "Name of WhiteBalloon's own session cookie, whose value is a row of app.db's sessions.",
    )
    session_cookie: str = setting(
        "WB_SESSION_COOKIE", str, "wb_session", "Name of the signed session cookie."
    )
    session_max_age: int = setting(
        "WB_SESSION_MAX_AGE",
        _positive_int,
        1_209_600,
        "Oldest accepted signed-cookie signature, in seconds (the main app's 14-day session).",
    )
    root_path: str = setting(
        "WB_ROOT_PATH",
        _root_path,
        "",
        "Path prefix the proxy passes on unchanged (e.g. /messages). Leave unset when the "
        "proxy strips the prefix; the pages use relative URLs and work under either.",
    )
    sign_in_url: str = setting(
        "WB_SIGN_IN_URL",
        str,
        "/login",
        "Where the page sends a signed-out member: WhiteBalloon's sign-in page.",
    )
    messaging_db: Database = setting(
        "WB_MESSAGING_DB",
        database_location,
        Path("data/messaging.db"),
        "The gateway's own database: a SQLite file path or sqlite:/// URL, or a "
        "postgresql:// URL (several gateway hosts share one).",
    )
    app_db: Database | None = setting(
        "WB_APP_DB",
        _app_db,
        None,
        "The main app's database, as its DATABASE_URL names it (sqlite:///, postgresql://) "
        "or a SQLite file path, opened read-only. Unset: demo mode with seeded members.",
    )
    access_log: bool = setting(
        "WB_ACCESS_LOG",
        _on_off,
        True,
        "on: a line per request in the log (client, method and path, status, bytes, seconds; "
        "never a body, a cookie or a query string); off: none (e.g. when the proxy in front "
        "logs every request already).",
    )
    allowed_origins: tuple[str, ...] = setting(
        "WB_ALLOWED_ORIGINS",
        _origins,
        (),
        "Extra origins (besides the gateway's own) allowed to make cookie-authenticated writes.",
    )
    sqlite_synchronous: str = setting(
        "WB_SQLITE_SYNCHRONOUS",
        _synchronous,
        "FULL",
        "SQLite synchronous mode for messaging.db: FULL survives power loss, NORMAL only crashes.",
    )
    read_connections: int = setting(
        "WB_READ_CONNECTIONS", _positive_int, 4, "Read-only connections per database per worker."
    )
    write_batch_size: int = setting(
        "WB_WRITE_BATCH_SIZE",
        _positive_int,
        128,
        "Most write transactions committed together when sends arrive at the same moment.",
    )
    heartbeat_seconds: float = setting(
        "WB_HEARTBEAT_SECONDS", _positive_float, 15.0, "Seconds between SSE heartbeat comments."
    )
    stream_queue_size: int = setting(
        "WB_STREAM_QUEUE_SIZE",
        _positive_int,
        512,
        "Events buffered for one stream; a stream that falls further behind is closed and "
        "resumes from its cursor.",
    )
    streams_per_member: int = setting(
        "WB_STREAMS_PER_MEMBER",
        _positive_int,
        20,
        "Open streams one member may hold in this worker (tabs, devices); opening one more "
        "closes their oldest with a final `closed` event (reason evicted), which then polls.",
    )
    write_timeout_seconds: float = setting(
        "WB_WRITE_TIMEOUT_SECONDS",
        _positive_float,
        30.0,
        "A connection whose sent data stays unread this long is dropped (a stalled stream "
        "reader resumes from its cursor when it reconnects); kernel TCP_USER_TIMEOUT.",
    )
    stream_max_seconds: float = setting(
        "WB_STREAM_MAX_SECONDS",
        _positive_float,
        3600.0,
        "A stream is closed after this long so clients reconnect and rebalance across workers.",
    )
    relay_poll_seconds: float = setting(
        "WB_RELAY_POLL_SECONDS",
        _positive_float,
        0.02,
        "How often a worker looks for events committed by other workers.",
    )
    event_retention_days: float = setting(
        "WB_EVENT_RETENTION_DAYS",
        _positive_float,
        30.0,
        "Days the event log keeps events for resuming; an older cursor gets a `reset`. "
        "Messages themselves are kept regardless.",
    )
    auth_cache_seconds: float = setting(
        "WB_AUTH_CACHE_SECONDS",
        float,
        2.0,
        "How long a verified session is trusted before the main app's sessions table is "
        "read again (logout takes effect within this time; at most 5). 0 disables the cache.",
    )
    session_check_seconds: float = setting(
        "WB_SESSION_CHECK_SECONDS",
        _session_check,
        2.0,
        "How often open streams' sessions are checked again; a stream whose session ended "
        "is closed within this time plus a moment (at most 4: within 5 s in all).",
    )

    # Per-member rate limits (token buckets kept in messaging.db, shared by every worker):
    # COUNT/PERIOD refills COUNT per PERIOD and holds COUNT; "burst N" holds N instead; "off"
    # disables one (benchmarks). Generous for a person, tight for a script:
    # - sends: 1 a second sustained, 120 at once. A lively exchange is a message every few
    #   seconds; pasting a list line by line or catching up after an hour offline stays
    #   far below 120. A script is held to 3,600 an hour, and its peer can block it.
    # - conversations (first contact, the tightest): 5 at once, then 20 an hour. Nobody
    #   introduces themselves to more than a handful of new people in a sitting; spam reaches
    #   a new person only through this limit.
    # - intents: 20 at once, then one every 10 s: opening compose from requests or profiles
    #   while browsing, not a crawl of the directory.
    # - reports: 5 at once, 20 a day: a member facing one bad actor files one or two; 200 in
    #   a second flooded the moderators' queue.
    # - blocks (block and unblock together): 10 at once, then one every 30 s: tidying a
    #   block list, not toggling in a loop.
    rate_sends: RateLimit | None = setting(
        "WB_RATE_SENDS",
        parse_rate_limit,
        RateLimit(60, 60.0, 120),
        "Messages one member may send: COUNT/PERIOD (unit s, m, h or d) refills COUNT per "
        "PERIOD, 'burst N' holds at most N (else COUNT), 'off' disables. A retry of a stored "
        "client_id is never counted. Excess: 429 rate_limited with Retry-After.",
    )
    rate_conversations: RateLimit | None = setting(
        "WB_RATE_CONVERSATIONS",
        parse_rate_limit,
        RateLimit(20, 3600.0, 5),
        "New conversations (first contact) one member may start; opening an existing one "
        "is not counted. Same format as WB_RATE_SENDS.",
    )
    rate_intents: RateLimit | None = setting(
        "WB_RATE_INTENTS",
        parse_rate_limit,
        RateLimit(6, 60.0, 20),
        "Introduction intents (POST /api/intents) one member may record. Same format.",
    )
    rate_reports: RateLimit | None = setting(
        "WB_RATE_REPORTS",
        parse_rate_limit,
        RateLimit(20, 86400.0, 5),
        "Reports one member may file; repeating an open report is not counted. Same format.",
    )
    rate_blocks: RateLimit | None = setting(
        "WB_RATE_BLOCKS",
        parse_rate_limit,
        RateLimit(2, 60.0, 10),
        "Blocks and unblocks (together) one member may make; one that changes nothing is "
        "not counted. Same format.",
    )

    @property
    def demo_mode(self) -> bool:
        return self.app_db is None

    @property
    def data_dir(self) -> Path:
        """Where the demo keeps its members and secret: beside a SQLite messaging.db, or in
        ./data when messages are in PostgreSQL."""
        return self.messaging_db.parent if isinstance(self.messaging_db, Path) else Path("data")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            raw = environ.get(spec.metadata["env"])
            if raw is None:
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except ValueError as error:
                raise ConfigError(f"{spec.metadata['env']}={raw!r} is invalid: {error}") from None
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.app_db is None and self.session_secrets is not None:
            # The demo signs anyone in: with the main app's secret that would be its cookies.
            raise ConfigError(
                "WB_SESSION_SECRET is set but WB_APP_DB is not. Without WB_APP_DB the gateway "
                "runs the demo, which signs anyone in, and it will not do so with a real "
                "secret. Set WB_APP_DB, or unset WB_SESSION_SECRET to run the demo."
            )
        if isinstance(self.app_db, Path) and not self.app_db.is_file():
            raise ConfigError(f"WB_APP_DB={str(self.app_db)!r} is not an existing file")
        if not 0 <= self.auth_cache_seconds <= 5:  # also refuses nan
            raise ConfigError("WB_AUTH_CACHE_SECONDS must be between 0 and 5")
        if not self.event_retention_days <= 3650:
            raise ConfigError("WB_EVENT_RETENTION_DAYS must be at most 3650 (ten years)")

    @staticmethod
    def describe() -> str:
        """Help text for every setting, as printed by `python -m gateway.config`."""
        lines = []
        for spec in dataclasses.fields(Settings):
            default = "unset" if spec.default in (None, ()) else str(spec.default)
            if isinstance(spec.default, bool):
                default = "on" if spec.default else "off"
            lines.append(f"{spec.metadata['env']} (default: {default})")
            lines.append(f"    {spec.metadata['help']}")
        return "\n".join(lines)


if __name__ == "__main__":
    print(Settings.describe())
