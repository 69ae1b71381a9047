"""Tails the event log so events committed by other workers reach this worker's streams.

The database is the source of truth: every event is a row before anyone hears of it. With
several Hypercorn workers, each worker's relay reads rows newer than the last one its
broadcaster delivered: at once when another worker rings its doorbell after a commit or
when the broadcaster noticed a gap, and every `poll_seconds` in any case.
SQLite serialises writers, so ids become visible in order and a tail by id misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.live.broadcaster import Broadcaster
from gateway.store import MessagingStore
from gateway.store import messaging as messaging_store

log = logging.getLogger(__name__)

BATCH = 1000


class Relay:
    def __init__(
        self,
        store: MessagingStore,
        broadcaster: Broadcaster,
        wake: asyncio.Event,
        poll_seconds: float,
    ) -> None:
        """`wake` is set by whoever knows the log has events this worker has not delivered:
        the broadcaster on a gap, the doorbell when another worker committed."""
        self._store = store
        self._broadcaster = broadcaster
        self._wake = wake
        self._poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self._store.reading() as conn:
            _, newest = await messaging_store.event_id_bounds(conn)
        # Streams replay older events from the log themselves; live delivery starts here.
        self._broadcaster.last_published = newest
        self._task = asyncio.create_task(self._run(), name="event-relay")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.catch_up()
            except Exception:
                log.exception("relay could not read the event log; retrying")
                await asyncio.sleep(1)

    async def catch_up(self) -> None:
        while True:
            async with self._store.reading() as conn:
                events = await messaging_store.events_of_everyone(
                    conn, self._broadcaster.last_published, BATCH
                )
            self._broadcaster.publish_from_log(events)
            if len(events) < BATCH:
                return
