"""Ends the open streams (and waiting polls) of sessions that have ended.

A stream authenticates once, when it opens, and may stay open for an hour. Every
`interval` seconds this asks the authenticator, in one batch, whether the credentials of all
open subscriptions still hold (logout, expiry, revocation of the approval, a deleted member,
an expired signature) and closes those that don't: their streams send a final
`event: closed` with reason `signed_out` and end, so clients show the signed-out state
instead of reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.auth import Authenticator
from gateway.live.broadcaster import Broadcaster

log = logging.getLogger(__name__)


class SessionWatch:
    def __init__(
        self, authenticator: Authenticator, broadcaster: Broadcaster, interval: float
    ) -> None:
        self._authenticator = authenticator
        self._broadcaster = broadcaster
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.closed_streams = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="session-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> int:
        """Close the subscriptions whose credentials no longer hold; returns how many."""
        watched = [s for s in self._broadcaster.subscriptions() if s.credential is not None]
        if not watched:
            return 0
        valid = await self._authenticator.still_valid(
            s.credential for s in watched if s.credential is not None
        )
        ended = [s for s in watched if s.credential not in valid and not s.closed]
        for subscription in ended:
            subscription.close("signed_out")
        self.closed_streams += len(ended)
        return len(ended)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:
                log.exception("could not check open streams' sessions; will retry")
