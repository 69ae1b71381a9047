"""Members are who the main app's session says they are; the gateway has no login of its own.

Two kinds of credential, both read from cookies the browser already sends:

- **WhiteBalloon's own session** (`wb_session_id`, named by `WB_APP_SESSION_COOKIE`): an
  opaque id of a row of the main app's `sessions` table. It is valid while that row exists,
  has not expired, is fully authenticated (approved) and names an existing member. This is
  what a WhiteBalloon instance sets today, so `WB_APP_DB` alone is enough.
- **A signed session** (`WB_SESSION_COOKIE`, `WB_SESSION_SECRET`), exactly as Starlette's
  `SessionMiddleware` writes it: `TimestampSigner(secret).sign(base64(json(session)))` with an
  integer `user_id` and optionally a `session_id` naming a `sessions` row that must be live
  too. For main apps that sign their sessions, and for the demo.

A verified credential is trusted for `auth_cache_seconds`; open streams are re-checked by
`live.session_watch`, which asks `still_valid` about all of them at once.
"""

from __future__ import annotations

import binascii
import hmac
import json
import time
from base64 import b64decode, b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from gateway.exceptions import Unauthenticated
from gateway.limits import MAX_ID, MAX_SESSION_ID_CHARS
from gateway.messaging.models import Member
from gateway.store import Directory
from gateway.store.directory import AppSession

_CACHE_LIMIT = 50_000

SIGNED_OUT = "Your WhiteBalloon session has ended; sign in again."
SIGN_IN_PENDING = (
    "Your sign-in to WhiteBalloon isn't finished yet: once it is approved there, "
    "messaging opens here."
)


def sign_session(secret: str, session: dict[str, Any]) -> str:
    """A cookie value exactly as the main app's SessionMiddleware would write it."""
    payload = b64encode(json.dumps(session).encode("utf-8"))
    return TimestampSigner(secret).sign(payload).decode("utf-8")


def read_session(cookie: str, secrets: tuple[str, ...], max_age: int) -> dict[str, Any]:
    """The session dict inside a valid cookie; `Unauthenticated` for anything else."""
    payload, _ = _unsign(cookie, secrets, max_age)
    return payload


def _unsign(cookie: str, secrets: tuple[str, ...], max_age: int) -> tuple[dict[str, Any], float]:
    """The session inside a valid signed cookie, and when (epoch seconds) its signature expires."""
    for secret in secrets:
        try:
            payload, signed_at = TimestampSigner(secret).unsign(
                cookie, max_age=max_age, return_timestamp=True
            )
        except (BadSignature, SignatureExpired, ValueError, OverflowError, OSError):
            continue  # ValueError: a timestamp past year 9999 breaks itsdangerous's dates
        try:
            session = json.loads(b64decode(payload))
        except (binascii.Error, ValueError, RecursionError):
            raise Unauthenticated() from None
        if not isinstance(session, dict):
            raise Unauthenticated()
        return session, signed_at.timestamp() + max_age
    raise Unauthenticated()


CredentialKind = Literal["app_session", "signed"]


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request authenticated with; an open stream keeps it to be re-checked."""

    kind: CredentialKind
    user_id: int
    # The main app's `sessions.id` this credential stands or falls with, if any.
    session_id: str | None
    # When a signed cookie's signature expires (epoch seconds); None for the app's own session.
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class CookieNames:
    app_session: str | None  # None: no main-app database, so no WhiteBalloon session to read
    signed: str | None  # None: no secret configured, so signed cookies are not accepted


class Authenticator:
    def __init__(
        self,
        directory: Directory,
        cookies: CookieNames,
        secrets: tuple[str, ...],
        max_age: int,
        cache_seconds: float,
    ) -> None:
        self._directory = directory
        self._cookies = cookies
        self._secrets = secrets
        self._max_age = max_age
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[CredentialKind, str], tuple[float, Member, Credential]] = {}
        self.failures = 0

    async def member(self, cookies: Mapping[str, str]) -> tuple[Member, Credential]:
        """The signed-in member and their credential; `Unauthenticated` if there is none.

        WhiteBalloon's own session is tried first; a signed cookie next, when configured.
        """
        refusal = Unauthenticated()
        for kind, name in (
            ("app_session", self._cookies.app_session),
            ("signed", self._cookies.signed),
        ):
            value = cookies.get(name) if name else None
            if not value:
                continue
            try:
                return await self._cached(kind, value)  # type: ignore[arg-type]
            except Unauthenticated as error:
                refusal = error
        self.failures += 1
        raise refusal

    async def still_valid(self, credentials: Iterable[Credential]) -> set[Credential]:
        """Which of these credentials still hold, read fresh from the main app (no cache).

        One query for all the sessions and one for all the members, however many there are.
        """
        wanted = set(credentials)
        if not wanted:
            return set()
        now = time.time()
        session_ids = {c.session_id for c in wanted if c.session_id is not None}
        live = await self._directory.app_sessions(session_ids) if session_ids else {}
        existing = await self._directory.existing_members({c.user_id for c in wanted})
        valid = {
            c
            for c in wanted
            if c.user_id in existing
            and (c.expires_at is None or c.expires_at > now)
            and (c.session_id is None or _usable(live.get(c.session_id), c.user_id))
        }
        if len(valid) < len(wanted):
            # What a stream just learnt, requests learn too, rather than after the cache time.
            ended = wanted - valid
            self._cache = {k: v for k, v in self._cache.items() if v[2] not in ended}
        return valid

    async def _cached(self, kind: CredentialKind, value: str) -> tuple[Member, Credential]:
        now = time.monotonic()
        key = (kind, value)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        if kind == "app_session":
            member, credential = await self._verify_app_session(value)
        else:
            member, credential = await self._verify_signed(value)
        if self._cache_seconds > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
            self._cache[key] = (now + self._cache_seconds, member, credential)
        return member, credential

    async def _verify_app_session(self, session_id: str) -> tuple[Member, Credential]:
        if not _is_session_id(session_id):
            raise Unauthenticated()
        row = (await self._directory.app_sessions([session_id])).get(session_id)
        # The lookup is by primary key; comparing the id again in constant time costs nothing.
        if row is None or not hmac.compare_digest(row.id.encode(), session_id.encode()):
            raise Unauthenticated(SIGNED_OUT)
        if not _unexpired(row):
            raise Unauthenticated(SIGNED_OUT)
        if not row.fully_authenticated:
            raise Unauthenticated(SIGN_IN_PENDING)
        member = await self._directory.member(row.user_id)
        if member is None:
            raise Unauthenticated(SIGNED_OUT)
        return member, Credential("app_session", member.user_id, session_id)

    async def _verify_signed(self, cookie: str) -> tuple[Member, Credential]:
        session, expires_at = _unsign(cookie, self._secrets, self._max_age)
        user_id = session.get("user_id")
        if not isinstance(user_id, int) or not _is_id(user_id):
            raise Unauthenticated()
        session_id = session.get("session_id")
        if session_id is not None:
            if isinstance(session_id, int) and _is_id(session_id):
                session_id = str(session_id)
            if not _is_session_id(session_id):
                raise Unauthenticated()
            if self._directory.has_sessions:
                row = (await self._directory.app_sessions([session_id])).get(session_id)
                if not _usable(row, user_id):
                    raise Unauthenticated(SIGNED_OUT)
            else:
                session_id = None  # nothing to check it against
        member = await self._directory.member(user_id)
        if member is None:
            raise Unauthenticated()
        return member, Credential("signed", user_id, session_id, expires_at)


def _is_session_id(value: object) -> bool:
    """Text a `sessions.id` could be: short, and valid Unicode (no lone surrogates)."""
    if not isinstance(value, str) or len(value) > MAX_SESSION_ID_CHARS:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _unexpired(row: AppSession) -> bool:
    return row.expires_at is not None and row.expires_at > datetime.now(UTC).replace(tzinfo=None)


def _usable(row: AppSession | None, user_id: int) -> bool:
    return (
        row is not None and row.user_id == user_id and row.fully_authenticated and _unexpired(row)
    )
