"""Read-only access to the main app's member directory (`app.db`).

The visibility rule is the main app's: V sees M when V is an admin, M's sync_scope is
'public', M is V, or V invited M. Two members may message when each sees the other.

The main app's database is SQLite or PostgreSQL, as its `DATABASE_URL` says; the queries are
written in the SQL both share (booleans compared with `IS TRUE`, ids compared as text, no
`COLLATE NOCASE`), and read rows as either engine returns them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.config import Database, PostgresUrl
from gateway.messaging.models import Member
from gateway.store.connections import ReadPool
from gateway.store.rows import Row, fetch_all, parse_sqlalchemy_time


def _sees(viewer: str, member: str) -> str:
    return (
        f"({viewer}.is_admin IS TRUE OR {member}.sync_scope = 'public' "
        f"OR {member}.id = {viewer}.id OR EXISTS (SELECT 1 FROM user_attributes ua "
        f"WHERE ua.user_id = {member}.id AND ua.key = 'invited_by_user_id' "
        f"AND trim(ua.value) = CAST({viewer}.id AS TEXT)))"
    )


_MUTUAL = f"{_sees('v', 'm')} AND {_sees('m', 'v')}"  # the rule `Sight.mutual` states too
_MEMBER_COLUMNS = "id, username, is_admin IS TRUE AS is_admin"


def _member(row: Row) -> Member:
    return Member(user_id=row["id"], username=row["username"], is_admin=bool(row["is_admin"]))


@dataclass(frozen=True, slots=True)
class Sight:
    """A member as one viewer finds them in the directory: who sees whom."""

    member: Member
    viewer_sees: bool
    sees_viewer: bool

    @property
    def mutual(self) -> bool:
        """Two members may message only when each sees the other."""
        return self.viewer_sees and self.sees_viewer


@dataclass(frozen=True, slots=True)
class AppSession:
    """One row of the main app's `sessions` table."""

    id: str
    user_id: int
    expires_at: datetime | None  # naive UTC; None when unreadable (treated as expired)
    fully_authenticated: bool


_SIGHT_CACHE_LIMIT = 100_000
# SQLite allows 32766 parameters; stay well below for any build.
_IN_LIST_CHUNK = 500


def _read_only_uri(path: Path) -> str:
    return f"file:{os.path.abspath(path)}?mode=ro"


class Directory:
    """The main app's directory, read-only. WhiteBalloon sends no signal when it changes, so
    the one cached answer, who sees whom by id (asked on every send), is kept for at most
    `cache_seconds`: the same bound as a verified session's."""

    def __init__(self, pool: ReadPool[Any], has_sessions: bool, cache_seconds: float = 0.0) -> None:
        self._pool = pool
        self.has_sessions = has_sessions
        self._cache_seconds = cache_seconds
        self._sights: dict[tuple[int, int], tuple[float, Sight | None]] = {}

    @classmethod
    async def open(cls, location: Database, size: int, *, cache_seconds: float = 0.0) -> Directory:
        pool: ReadPool[Any]
        if isinstance(location, PostgresUrl):
            from gateway.store import postgres

            # Read-only sessions; a role with SELECT on users, user_attributes and sessions
            # is all the gateway needs.
            pool = ReadPool([await postgres.connect_read(location) for _ in range(size)])
            tables = "SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = 'sessions' " + (
                "AND schemaname = ANY (current_schemas(false))"
            )
        else:
            # mode=ro: the gateway can never write the main app's database, even by mistake.
            pool = await ReadPool.open(_read_only_uri(location), size, uri=True)
            tables = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"
        directory = cls(pool, has_sessions=False, cache_seconds=cache_seconds)
        directory.has_sessions = bool(await directory._rows(tables, ()))
        return directory

    async def close(self) -> None:
        await self._pool.close()

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[Row]:
        async with self._pool.connection() as conn:
            return await fetch_all(conn, sql, params)

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

    async def sight(self, viewer: int, member: int | str) -> Sight | None:
        """The member (by id, or by username) and who sees whom; None if no such member."""
        if isinstance(member, int) and self._cache_seconds > 0:
            now = time.monotonic()
            cached = self._sights.get((viewer, member))
            if cached is not None and cached[0] > now:
                return cached[1]
            found = await self._sight(viewer, member)
            if len(self._sights) >= _SIGHT_CACHE_LIMIT:
                self._sights.clear()
            self._sights[(viewer, member)] = (now + self._cache_seconds, found)
            return found
        return await self._sight(viewer, member)

    async def _sight(self, viewer: int, member: int | str) -> Sight | None:
        column = "username" if isinstance(member, str) else "id"
        rows = await self._rows(
            f"SELECT {_MEMBER_COLUMNS}, "
            f"EXISTS (SELECT 1 FROM users v WHERE v.id = ? AND {_sees('v', 'm')}) AS seen, "
            f"EXISTS (SELECT 1 FROM users v WHERE v.id = ? AND {_sees('m', 'v')}) AS sees_back "
            f"FROM users m WHERE m.{column} = ?",
            (viewer, viewer, member),
        )
        if not rows:
            return None
        return Sight(_member(rows[0]), bool(rows[0]["seen"]), bool(rows[0]["sees_back"]))

    async def messageable(self, viewer: int, query: str, limit: int) -> list[Member]:
        """Members `viewer` may message, by username, optionally filtered by a substring."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._rows(
            f"SELECT m.id, m.username, m.is_admin IS TRUE AS is_admin "
            f"FROM users v, users m WHERE v.id = ? AND m.id != v.id AND {_MUTUAL} "
            "AND lower(m.username) LIKE lower(?) ESCAPE '\\' "
            # An exact match first, so a deep link finds its member among many similar names.
            "ORDER BY lower(m.username) = lower(?) DESC, lower(m.username), m.username LIMIT ?",
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

    async def app_sessions(self, session_ids: Iterable[str]) -> dict[str, AppSession]:
        """The main app's `sessions` rows with these ids (missing ones are absent)."""
        wanted = sorted(set(session_ids))
        if not wanted or not self.has_sessions:
            return {}
        found: dict[str, AppSession] = {}
        for start in range(0, len(wanted), _IN_LIST_CHUNK):
            chunk = wanted[start : start + _IN_LIST_CHUNK]
            rows = await self._rows(
                "SELECT id, user_id, expires_at, is_fully_authenticated FROM sessions "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                found[row["id"]] = AppSession(
                    id=str(row["id"]),
                    user_id=row["user_id"],
                    expires_at=parse_sqlalchemy_time(row["expires_at"]),
                    fully_authenticated=row["is_fully_authenticated"] in (1, True),
                )
        return found

    async def existing_members(self, user_ids: Iterable[int]) -> set[int]:
        """Which of these ids are members of the main app."""
        wanted = sorted(set(user_ids))
        found: set[int] = set()
        for start in range(0, len(wanted), _IN_LIST_CHUNK):
            chunk = wanted[start : start + _IN_LIST_CHUNK]
            rows = await self._rows(
                f"SELECT id FROM users WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update(row["id"] for row in rows)
        return found
