"""Members are who the main app's signed session cookie says they are.

The cookie is what Starlette's `SessionMiddleware` writes:
`TimestampSigner(secret).sign(base64(json(session)))`. The gateway checks signature and age
against every configured secret, requires an integer `user_id`, and, when the session names
a `session_id` and the main app's `sessions` table exists, requires that session to be live,
so logging out of WhiteBalloon also ends messaging (within `auth_cache_seconds`).
"""

from __future__ import annotations

import binascii
import json
import time
from base64 import b64decode, b64encode
from typing import Any

from itsdangerous import BadSignature, TimestampSigner

from gateway.exceptions import Unauthenticated
from gateway.messaging.models import Member
from gateway.store import Directory

_CACHE_LIMIT = 50_000


def sign_session(secret: str, session: dict[str, Any]) -> str:
    """A cookie value exactly as the main app's SessionMiddleware would write it."""
    payload = b64encode(json.dumps(session).encode("utf-8"))
    return TimestampSigner(secret).sign(payload).decode("utf-8")


def read_session(cookie: str, secrets: tuple[str, ...], max_age: int) -> dict[str, Any]:
    """The session dict inside a valid cookie; `Unauthenticated` for anything else."""
    for secret in secrets:
        try:
            payload = TimestampSigner(secret).unsign(cookie, max_age=max_age)
        except BadSignature:  # also expired signatures
            continue
        try:
            session = json.loads(b64decode(payload))
        except (binascii.Error, ValueError):
            raise Unauthenticated() from None
        if not isinstance(session, dict):
            raise Unauthenticated()
        return session
    raise Unauthenticated()


class Authenticator:
    def __init__(
        self,
        directory: Directory,
        secrets: tuple[str, ...],
        max_age: int,
        cache_seconds: float,
    ) -> None:
        self._directory = directory
        self._secrets = secrets
        self._max_age = max_age
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Member]] = {}
        self.failures = 0

    async def member(self, cookie: str | None) -> Member:
        if not cookie:
            self.failures += 1
            raise Unauthenticated()
        now = time.monotonic()
        cached = self._cache.get(cookie)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            member = await self._verify(cookie)
        except Unauthenticated:
            self.failures += 1
            raise
        if self._cache_seconds > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
            self._cache[cookie] = (now + self._cache_seconds, member)
        return member

    async def _verify(self, cookie: str) -> Member:
        session = read_session(cookie, self._secrets, self._max_age)
        user_id = session.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise Unauthenticated()
        session_id = session.get("session_id")
        if (
            session_id is not None
            and self._directory.has_sessions
            and not await self._directory.session_is_active(session_id, user_id)
        ):
            raise Unauthenticated("Your WhiteBalloon session has ended; sign in again.")
        member = await self._directory.member(user_id)
        if member is None:
            raise Unauthenticated()
        return member
