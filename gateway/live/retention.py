"""Trims the event log: resuming needs recent events only; messages are never deleted here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from gateway.store import MessagingStore
from gateway.store import messaging as messaging_store
from gateway.timestamps import format_utc

log = logging.getLogger(__name__)

BATCH = 2000
INTERVAL_SECONDS = 3600.0


class EventRetention:
    def __init__(self, store: MessagingStore, keep_days: float) -> None:
        self._store = store
        self._keep = timedelta(days=keep_days)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def prune(self, now: datetime | None = None) -> int:
        """Delete events older than the retention window, in small write transactions."""
        cutoff = format_utc((now or datetime.now(UTC)) - self._keep)
        total = 0
        while True:
            # Small batches keep each write short, so sends never queue behind pruning.
            deleted = await self._store.write(
                lambda conn: messaging_store.prune_events(conn, cutoff, BATCH)
            )
            total += deleted
            if deleted < BATCH:
                return total

    async def _run(self) -> None:
        while True:
            try:
                pruned = await self.prune()
                if pruned:
                    log.info("pruned %d events older than %s", pruned, self._keep)
            except Exception:
                log.exception("pruning the event log failed; will retry")
            await asyncio.sleep(INTERVAL_SECONDS)
