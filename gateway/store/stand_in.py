"""A stand-in for the main app's database, in its schema: the demo's directory, and the one
tests and load tests build in place of a real WhiteBalloon instance.

The gateway itself only ever opens the main app's database read-only (`directory`); this
module is the one place that writes such a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.store.connections import connect

# WhiteBalloon's tables as its SQLModel models create them in SQLite (types, nullability,
# constraints; no SQL defaults): the columns the gateway reads, and the ones beside them.
DIRECTORY_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS users (id INTEGER NOT NULL, username VARCHAR, "
    "is_admin BOOLEAN NOT NULL, contact_email VARCHAR, created_at DATETIME NOT NULL, "
    "sync_scope VARCHAR NOT NULL, PRIMARY KEY (id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS ix_users_username ON users (username)",
    "CREATE TABLE IF NOT EXISTS user_attributes (id INTEGER NOT NULL, user_id INTEGER NOT NULL, "
    '"key" VARCHAR NOT NULL, value VARCHAR, created_at DATETIME NOT NULL, '
    "updated_at DATETIME NOT NULL, created_by_user_id INTEGER, updated_by_user_id INTEGER, "
    'PRIMARY KEY (id), CONSTRAINT ux_user_attributes_user_key UNIQUE (user_id, "key"), '
    "FOREIGN KEY (user_id) REFERENCES users (id))",
    "CREATE INDEX IF NOT EXISTS ix_user_attributes_user_id ON user_attributes (user_id)",
    "CREATE TABLE IF NOT EXISTS sessions (id VARCHAR NOT NULL, user_id INTEGER NOT NULL, "
    "created_at DATETIME NOT NULL, expires_at DATETIME NOT NULL, last_seen_at DATETIME, "
    "auth_request_id VARCHAR, is_fully_authenticated BOOLEAN NOT NULL, PRIMARY KEY (id), "
    "FOREIGN KEY (user_id) REFERENCES users (id))",
)
SESSION_DAYS = 14


def sqlalchemy_time(moment: datetime) -> str:
    """A time as SQLAlchemy stores a naive UTC DATETIME in SQLite."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    user_id: int
    username: str
    is_admin: bool = False
    sync_scope: str = "private"
    invited_by: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()


async def create_directory(path: Path, members: Iterable[DirectoryEntry]) -> None:
    """Create (or top up) a directory database in the main app's schema.

    The gateway itself only does this for demo mode; tests and load tests use it to stand
    in for the main app. Safe when several workers start at once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    now = sqlalchemy_time(datetime.now(UTC))
    conn = await connect(path)
    try:
        await conn.execute("BEGIN IMMEDIATE")
        for statement in DIRECTORY_SCHEMA:
            await conn.execute(statement)
        for entry in members:
            await conn.execute(
                "INSERT OR IGNORE INTO users (id, username, is_admin, created_at, sync_scope) "
                "VALUES (?, ?, ?, ?, ?)",
                (entry.user_id, entry.username, int(entry.is_admin), now, entry.sync_scope),
            )
            attributes = list(entry.attributes)
            if entry.invited_by is not None:
                attributes.append(("invited_by_user_id", str(entry.invited_by)))
            await conn.executemany(
                'INSERT OR IGNORE INTO user_attributes (user_id, "key", value, created_at, '
                "updated_at, created_by_user_id) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (entry.user_id, key, value, now, now, entry.invited_by)
                    for key, value in attributes
                ],
            )
        await conn.execute("COMMIT")
    finally:
        await conn.close()


async def create_session(
    path: Path,
    user_id: int,
    *,
    approved: bool = True,
    expires_at: datetime | None = None,
) -> str:
    """A sign-in as WhiteBalloon records it: a `sessions` row whose id is the value of the
    member's `wb_session_id` cookie; pending until approved."""
    sessions = await create_sessions(path, [user_id], approved=approved, expires_at=expires_at)
    return sessions[user_id]


async def create_sessions(
    path: Path,
    user_ids: Iterable[int],
    *,
    approved: bool = True,
    expires_at: datetime | None = None,
) -> dict[int, str]:
    """One sign-in per member, written in one transaction; member id -> session id."""
    now = datetime.now(UTC)
    expires = sqlalchemy_time(expires_at or now + timedelta(days=SESSION_DAYS))
    sessions = {user_id: uuid.uuid4().hex for user_id in user_ids}
    conn = await connect(path)
    try:
        await conn.execute("BEGIN IMMEDIATE")
        await conn.executemany(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, "
            "auth_request_id, is_fully_authenticated) VALUES (?, ?, ?, ?, NULL, ?, ?)",
            [
                (
                    session_id,
                    user_id,
                    sqlalchemy_time(now),
                    expires,
                    uuid.uuid4().hex,
                    int(approved),
                )
                for user_id, session_id in sessions.items()
            ],
        )
        await conn.execute("COMMIT")
    finally:
        await conn.close()
    return sessions
