"""Everything a worker holds open while it serves, and the one place it is wired together.

`Services.open` builds each collaborator with the others it needs passed to its
constructor, so the whole dependency graph of a worker is read here, top to bottom.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

from quart import Quart

from gateway import demo
from gateway.auth import Authenticator, CookieNames
from gateway.config import Database, PostgresUrl, Settings
from gateway.live.broadcaster import Broadcaster
from gateway.live.doorbell import Doorbell
from gateway.live.relay import Relay
from gateway.live.retention import EventRetention
from gateway.live.session_watch import SessionWatch
from gateway.messaging.participants import ConversationMembers
from gateway.rate_limits import RateLimiter
from gateway.store import Directory, MessagingStore
from gateway.store.postgres import Listener

EXTENSION = "whiteballoon"  # where the app keeps its worker's Services


def services_of(app: Quart) -> Services:
    return cast(Services, app.extensions[EXTENSION])


@dataclass
class Counters:
    """Totals since this worker started, for operators."""

    messages_stored: int = 0
    poll_requests: int = 0


@dataclass
class Services:
    settings: Settings
    store: MessagingStore
    directory: Directory
    broadcaster: Broadcaster
    doorbell: Doorbell | None  # SQLite: the workers of this host ring each other
    listener: Listener | None  # PostgreSQL: every host hears each commit's NOTIFY
    relay: Relay
    retention: EventRetention
    authenticator: Authenticator
    session_watch: SessionWatch
    session_secrets: tuple[str, ...]
    counters: Counters
    rate_limiter: RateLimiter
    conversation_members: ConversationMembers = field(default_factory=ConversationMembers)

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        store = await MessagingStore.open(
            settings.messaging_db,
            synchronous=settings.sqlite_synchronous,
            read_connections=settings.read_connections,
            write_batch_size=settings.write_batch_size,
        )
        data_dir = settings.data_dir
        app_db: Database
        if settings.app_db is None:
            app_db = await demo.open_demo_directory(data_dir)
            session_secrets: tuple[str, ...] = (demo.demo_secret(data_dir),)
        else:
            app_db = settings.app_db
            session_secrets = settings.session_secrets or ()
        directory = await Directory.open(
            app_db, settings.read_connections, cache_seconds=settings.auth_cache_seconds
        )

        # Live delivery. After a commit, an action publishes to the broadcaster, which
        # delivers in id order to this worker's streams. The other workers' relays read the
        # log at once: on SQLite the broadcaster rings their doorbells; on PostgreSQL the
        # commit itself notifies every host's listener. When ids skip (another worker
        # committed in between), the broadcaster wakes this worker's relay, which delivers
        # from the log.
        relay_wake = asyncio.Event()
        doorbell: Doorbell | None = None
        listener: Listener | None = None
        if isinstance(settings.messaging_db, PostgresUrl):
            listener = Listener(settings.messaging_db, on_notify=relay_wake.set)
        else:
            doorbell = Doorbell(settings.messaging_db, on_ring=relay_wake.set)
        broadcaster = Broadcaster(
            settings.stream_queue_size,
            on_gap=relay_wake.set,
            on_published=doorbell.ring if doorbell is not None else None,
            streams_per_member=settings.streams_per_member,
        )
        relay = Relay(store, broadcaster, relay_wake, settings.relay_poll_seconds)
        if listener is not None:
            await listener.start()  # before the relay reads where the log ends: none missed
        await relay.start()
        if doorbell is not None:
            doorbell.open()
        retention = EventRetention(store, settings.event_retention_days)
        retention.start()

        cookies = CookieNames(
            app_session=None if settings.demo_mode else settings.app_session_cookie,
            signed=settings.session_cookie if session_secrets else None,
        )
        authenticator = Authenticator(
            directory,
            cookies,
            session_secrets,
            settings.session_max_age,
            settings.auth_cache_seconds,
        )
        session_watch = SessionWatch(authenticator, broadcaster, settings.session_check_seconds)
        session_watch.start()
        return cls(
            settings,
            store,
            directory,
            broadcaster,
            doorbell,
            listener,
            relay,
            retention,
            authenticator,
            session_watch,
            session_secrets,
            Counters(),
            RateLimiter(
                {
                    "sends": settings.rate_sends,
                    "conversations": settings.rate_conversations,
                    "intents": settings.rate_intents,
                    "reports": settings.rate_reports,
                    "blocks": settings.rate_blocks,
                }
            ),
        )

    async def close(self) -> None:
        await self.session_watch.close()
        self.broadcaster.close()
        if self.doorbell is not None:
            self.doorbell.close()
        if self.listener is not None:
            await self.listener.close()
        await self.relay.close()
        await self.retention.close()
        await self.store.close()
        await self.directory.close()
