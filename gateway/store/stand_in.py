"""A stand-in for the main app's database, in its schema: the demo's directory, and the one
tests and load tests build in place of a real WhiteBalloon instance.

The gateway itself only ever opens the main app's database read-only (`directory`); this
module is the one place that writes such a database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.store.connections import connect

# The main app's schema, for the demo directory and for test and load-test directories.
DIRECTORY_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL, "
    "is_admin BOOLEAN NOT NULL DEFAULT 0, sync_scope TEXT NOT NULL DEFAULT 'private')",
    "CREATE TABLE IF NOT EXISTS user_attributes (user_id INTEGER NOT NULL, key TEXT NOT NULL, "
    "value TEXT, PRIMARY KEY (user_id, key))",
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, "
    "expires_at DATETIME NOT NULL, is_fully_authenticated BOOLEAN NOT NULL DEFAULT 0)",
)


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
    conn = await connect(path)
    try:
        await conn.execute("BEGIN IMMEDIATE")
        for statement in DIRECTORY_SCHEMA:
            await conn.execute(statement)
        for entry in members:
            await conn.execute(
                "INSERT OR IGNORE INTO users (id, username, is_admin, sync_scope) "
                "VALUES (?, ?, ?, ?)",
                (entry.user_id, entry.username, int(entry.is_admin), entry.sync_scope),
            )
            attributes = list(entry.attributes)
            if entry.invited_by is not None:
                attributes.append(("invited_by_user_id", str(entry.invited_by)))
            await conn.executemany(
                "INSERT OR IGNORE INTO user_attributes (user_id, key, value) VALUES (?, ?, ?)",
                [(entry.user_id, key, value) for key, value in attributes],
            )
        await conn.execute("COMMIT")
    finally:
        await conn.close()
