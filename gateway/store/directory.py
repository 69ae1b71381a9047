"""Read-only access to the main app's member directory (`app.db`), and the demo copy of it.

The visibility rule is the main app's: V sees M when V is an admin, M's sync_scope is
'public', M is V, or V invited M. Two members may message when each sees the other.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from gateway.messaging.models import Member
from gateway.store.connections import ReadPool, connect


def _sees(viewer: str, member: str) -> str:
    return (
        f"(COALESCE({viewer}.is_admin, 0) != 0 OR {member}.sync_scope = 'public' "
        f"OR {member}.id = {viewer}.id OR EXISTS (SELECT 1 FROM user_attributes ua "
        f"WHERE ua.user_id = {member}.id AND ua.key = 'invited_by_user_id' "
        f"AND CAST(ua.value AS INTEGER) = {viewer}.id))"
    )


_MUTUAL = f"{_sees('v', 'm')} AND {_sees('m', 'v')}"
_MEMBER_COLUMNS = "id, username, COALESCE(is_admin, 0) != 0 AS is_admin"


def _member(row: sqlite3.Row) -> Member:
    return Member(user_id=row["id"], username=row["username"], is_admin=bool(row["is_admin"]))


def _parse_sqlalchemy_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # The main app writes naive UTC; an offset, if any, is honoured rather than dropped.
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _read_only_uri(path: Path) -> str:
    return f"file:{os.path.abspath(path)}?mode=ro"


class Directory:
    def __init__(self, pool: ReadPool, has_sessions: bool) -> None:
        self._pool = pool
        self.has_sessions = has_sessions

    @classmethod
    async def open(cls, path: Path, size: int) -> Directory:
        # mode=ro: the gateway can never write the main app's database, even by mistake.
        pool = await ReadPool.open(_read_only_uri(path), size, uri=True)
        directory = cls(pool, has_sessions=False)
        directory.has_sessions = bool(
            await directory._rows(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'", ()
            )
        )
        return directory

    async def close(self) -> None:
        await self._pool.close()

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        async with self._pool.connection() as conn:
            return cast(list[sqlite3.Row], await conn.execute_fetchall(sql, params))

    async def member(self, user_id: int) -> Member | None:
        return (await self.members_by_id([user_id])).get(user_id)

    async def members_by_id(self, ids: Iterable[int]) -> dict[int, Member]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = await self._rows(
            f"SELECT {_MEMBER_COLUMNS} FROM users WHERE id IN ({','.join('?' * len(wanted))})",
            wanted,
        )
        return {row["id"]: _member(row) for row in rows}

    async def member_by_username(self, username: str) -> Member | None:
        rows = await self._rows(
            f"SELECT {_MEMBER_COLUMNS} FROM users WHERE username = ?", (username,)
        )
        return _member(rows[0]) if rows else None

    async def peer(self, viewer: int, peer_id: int) -> tuple[Member, bool] | None:
        """The member `peer_id` and whether they and `viewer` may message; None if unknown."""
        rows = await self._rows(
            f"SELECT {_MEMBER_COLUMNS}, EXISTS (SELECT 1 FROM users v WHERE v.id = ? "
            f"AND {_MUTUAL}) AS mutual FROM users m WHERE m.id = ?",
            (viewer, peer_id),
        )
        return (_member(rows[0]), bool(rows[0]["mutual"])) if rows else None

    async def messageable(self, viewer: int, query: str, limit: int) -> list[Member]:
        """Members `viewer` may message, by username, optionally filtered by a substring."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._rows(
            f"SELECT m.id, m.username, COALESCE(m.is_admin, 0) != 0 AS is_admin "
            f"FROM users v, users m WHERE v.id = ? AND m.id != v.id AND {_MUTUAL} "
            "AND m.username LIKE ? ESCAPE '\\' "
            # An exact match first, so a deep link finds its member among many similar names.
            "ORDER BY lower(m.username) = lower(?) DESC, m.username COLLATE NOCASE LIMIT ?",
            (viewer, pattern, query, limit),
        )
        return [_member(row) for row in rows]

    async def has_moderator_attribute(self, user_id: int) -> bool:
        """Whether the main app marks this member a messaging moderator (admins are anyway)."""
        rows = await self._rows(
            "SELECT 1 FROM user_attributes WHERE user_id = ? AND key = 'messaging_moderator' "
            "AND lower(trim(value)) IN ('1', 'true', 'yes')",
            (user_id,),
        )
        return bool(rows)

    async def session_is_active(self, session_id: Any, user_id: int) -> bool:
        """Whether the main app still holds this session: logged in, unexpired, fully signed in."""
        rows = await self._rows(
            "SELECT user_id, expires_at, is_fully_authenticated FROM sessions WHERE id = ?",
            (session_id,),
        )
        if not rows or rows[0]["user_id"] != user_id or rows[0]["is_fully_authenticated"] != 1:
            return False
        expires_at = _parse_sqlalchemy_time(rows[0]["expires_at"])
        return expires_at is not None and expires_at > datetime.utcnow()


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


# A few members who show every visibility case.
DEMO_MEMBERS = (
    DirectoryEntry(1, "alice", sync_scope="public"),
    DirectoryEntry(2, "bob", sync_scope="public"),
    DirectoryEntry(3, "carol", sync_scope="public", invited_by=1),
    DirectoryEntry(4, "dave", invited_by=1),  # private: only alice, his inviter, sees him
    DirectoryEntry(5, "erin", is_admin=True, sync_scope="public"),  # an admin sees everyone
    DirectoryEntry(6, "frank", invited_by=5),
)


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
