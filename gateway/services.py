"""Everything a worker holds open while it serves: stores, broadcaster, relay, authenticator."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.live.broadcaster import Broadcaster
from gateway.live.relay import Relay
from gateway.live.retention import EventRetention
from gateway.store import DEMO_MEMBERS, Directory, MessagingStore, create_directory

log = logging.getLogger(__name__)


@dataclass
class Counters:
    """Totals since this worker started, for operators."""

    messages_stored: int = 0
    poll_requests: int = 0


class ConversationMembers:
    """Who takes part in each recently used conversation; bounded, and never stale (it
    never changes)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._members: dict[int, tuple[int, int]] = {}

    def get(self, conversation_id: int) -> tuple[int, int] | None:
        return self._members.get(conversation_id)

    def remember(self, conversation_id: int, members: tuple[int, int]) -> None:
        if len(self._members) >= self._limit:
            self._members.clear()
        self._members[conversation_id] = members


@dataclass
class Services:
    settings: Settings
    store: MessagingStore
    directory: Directory
    broadcaster: Broadcaster
    relay: Relay
    retention: EventRetention
    authenticator: Authenticator
    session_secrets: tuple[str, ...]
    counters: Counters
    conversation_members: ConversationMembers = field(default_factory=ConversationMembers)

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        store = await MessagingStore.open(
            settings.messaging_db,
            synchronous=settings.sqlite_synchronous,
            read_connections=settings.read_connections,
            write_batch_size=settings.write_batch_size,
        )
        if settings.app_db is None:
            app_db = demo_directory_path(settings)
            await create_directory(app_db, DEMO_MEMBERS)
            log.warning(
                "DEMO MODE: WB_APP_DB is not set, so members come from the demo directory %s "
                "and anyone can sign in as them at /demo/login. Never run this in production.",
                app_db,
            )
        else:
            app_db = settings.app_db
        directory = await Directory.open(app_db, settings.read_connections)
        session_secrets = settings.session_secrets or (demo_secret(settings),)
        broadcaster = Broadcaster(settings.stream_queue_size)
        relay = Relay(store, broadcaster, settings.relay_poll_seconds, settings.messaging_db)
        await relay.start()
        retention = EventRetention(store, settings.event_retention_days)
        retention.start()
        authenticator = Authenticator(
            directory, session_secrets, settings.session_max_age, settings.auth_cache_seconds
        )
        return cls(
            settings,
            store,
            directory,
            broadcaster,
            relay,
            retention,
            authenticator,
            session_secrets,
            Counters(),
        )

    async def close(self) -> None:
        self.broadcaster.close()
        await self.relay.close()
        await self.retention.close()
        await self.store.close()
        await self.directory.close()


def demo_directory_path(settings: Settings) -> Path:
    return settings.messaging_db.parent / "demo-app.db"


def demo_secret(settings: Settings) -> str:
    """A random signing secret kept beside the demo data, shared by all workers."""
    path = settings.messaging_db.parent / "demo-session-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f"{path.name}.{os.getpid()}")
    candidate.write_text(secrets.token_urlsafe(32))
    os.chmod(candidate, 0o600)
    try:
        os.link(candidate, path)  # atomic: the first worker's secret wins
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return path.read_text().strip()
