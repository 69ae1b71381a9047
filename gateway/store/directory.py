"""Read-only access to the main app's member directory (`app.db`), and the demo copy of it.

The visibility rule is the main app's: V sees M when V is an admin, M's sync_scope is
'public', M is V, or V invited M. Two members may message when each sees the other.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from gateway.models import Member
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
    return parsed.replace(tzinfo=None) if parsed.tzinfo else parsed


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
        async with (
            pool.connection() as conn,
            conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"
            ) as cursor,
        ):
            has_sessions = await cursor.fetchone() is not None
        return cls(pool, has_sessions)

    async def close(self) -> None:
        await self._pool.close()

    async def member(self, user_id: int) -> Member | None:
        return (await self.members_by_id([user_id])).get(user_id)

    async def members_by_id(self, ids: Iterable[int]) -> dict[int, Member]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        async with (
            self._pool.connection() as conn,
            conn.execute(
                f"SELECT {_MEMBER_COLUMNS} FROM users WHERE id IN ({','.join('?' * len(wanted))})",
                wanted,
            ) as cursor,
        ):
            rows = cast(list[sqlite3.Row], await cursor.fetchall())
        return {row["id"]: _member(row) for row in rows}

    async def member_by_username(self, username: str) -> Member | None:
        async with (
            self._pool.connection() as conn,
            conn.execute(
                f"SELECT {_MEMBER_COLUMNS} FROM users WHERE username = ?", (username,)
            ) as cursor,
        ):
            row = await cursor.fetchone()
        return _member(row) if row else None

    async def mutually_visible(self, a: int, b: int) -> bool:
        async with (
            self._pool.connection() as conn,
            conn.execute(
                f"SELECT 1 FROM users v, users m WHERE v.id = ? AND m.id = ? AND {_MUTUAL}", (a, b)
            ) as cursor,
        ):
            return await cursor.fetchone() is not None

    async def messageable(self, viewer: int, query: str, limit: int) -> list[Member]:
        """Members `viewer` may message, by username, optionally filtered by a substring."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with (
            self._pool.connection() as conn,
            conn.execute(
                f"SELECT m.id, m.username, COALESCE(m.is_admin, 0) != 0 AS is_admin "
                f"FROM users v, users m WHERE v.id = ? AND m.id != v.id AND {_MUTUAL} "
                "AND m.username LIKE ? ESCAPE '\\' ORDER BY m.username COLLATE NOCASE LIMIT ?",
                (viewer, pattern, limit),
            ) as cursor,
        ):
            rows = cast(list[sqlite3.Row], await cursor.fetchall())
        return [_member(row) for row in rows]

    async def session_is_active(self, session_id: Any, user_id: int) -> bool:
        """Whether the main app still holds this session: logged in, unexpired, fully signed in."""
        async with (
            self._pool.connection() as conn,
            conn.execute(
                "SELECT user_id, expires_at, is_fully_authenticated FROM sessions WHERE id = ?",
                (session_id,),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        if row is None or row["user_id"] != user_id or row["is_fully_authenticated"] != 1:
            return False
        expires_at = _parse_sqlalchemy_time(row["expires_at"])
        return expires_at is not None and expires_at > datetime.utcnow()


# The demo directory: the main app's schema with a few members who show every visibility case.
DEMO_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL, "
    "is_admin BOOLEAN NOT NULL DEFAULT 0, sync_scope TEXT NOT NULL DEFAULT 'private')",
    "CREATE TABLE IF NOT EXISTS user_attributes (user_id INTEGER NOT NULL, key TEXT NOT NULL, "
    "value TEXT, PRIMARY KEY (user_id, key))",
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, "
    "expires_at DATETIME NOT NULL, is_fully_authenticated BOOLEAN NOT NULL DEFAULT 0)",
)
# (id, username, is_admin, sync_scope, invited by)
DEMO_MEMBERS: tuple[tuple[int, str, int, str, int | None], ...] = (
    (1, "alice", 0, "public", None),
    (2, "bob", 0, "public", None),
    (3, "carol", 0, "public", 1),
    (4, "dave", 0, "private", 1),  # only alice, who invited him, and admins see dave
    (5, "erin", 1, "public", None),  # an admin: sees everyone
    (6, "frank", 0, "private", 5),
)


async def create_demo_directory(path: Path) -> None:
    """Create (or top up) the demo directory; safe when several workers start at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await connect(path)
    try:
        await conn.execute("BEGIN IMMEDIATE")
        for statement in DEMO_SCHEMA:
            await conn.execute(statement)
        for user_id, username, is_admin, scope, inviter in DEMO_MEMBERS:
            await conn.execute(
                "INSERT OR IGNORE INTO users (id, username, is_admin, sync_scope) "
                "VALUES (?, ?, ?, ?)",
                (user_id, username, is_admin, scope),
            )
            if inviter is not None:
                await conn.execute(
                    "INSERT OR IGNORE INTO user_attributes (user_id, key, value) "
                    "VALUES (?, 'invited_by_user_id', ?)",
                    (user_id, str(inviter)),
                )
        await conn.execute("COMMIT")
    finally:
        await conn.close()
