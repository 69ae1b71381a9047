"""A member's event feed from a cursor, over SSE or long polling, with no gap and no duplicate.

Both paths subscribe to the broadcaster *before* reading the log: anything committed after
the read arrives through the subscription, anything before it is in the log, and events seen
on both sides are dropped by id. The cursor is the id of the last event the client has.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.auth import Credential
from gateway.live.broadcaster import SubscriptionClosed
from gateway.live.events import Event, closed_frame
from gateway.services import Services
from gateway.store import messaging as messaging_store

REPLAY_PAGE = 500
POLL_PAGE = 200
RETRY_MS = 2000


@dataclass(frozen=True, slots=True)
class Cursor:
    position: int
    reset_reason: str | None = None


async def resolve_cursor(s: Services, raw: str | None) -> Cursor:
    """Where to continue from; a cursor this database cannot continue gets a reset."""
    async with s.store.reading() as conn:
        oldest, newest = await messaging_store.event_id_bounds(conn)
    if raw is None or raw == "":
        return Cursor(newest)
    try:
        position = int(raw)
    except ValueError:
        return Cursor(newest, "unknown_cursor")
    if position < 0 or position > newest:
        return Cursor(newest, "unknown_cursor")
    if position < oldest - 1:
        return Cursor(newest, "cursor_too_old")
    return Cursor(position)


def control_event(user_id: int, type_: str, cursor: Cursor) -> Event:
    data: dict[str, str] = {"cursor": str(cursor.position)}
    if type_ == "reset" and cursor.reset_reason:
        data["reason"] = cursor.reset_reason
    return Event(cursor.position, user_id, type_, json.dumps(data, separators=(",", ":")))  # type: ignore[arg-type]


async def stream(
    s: Services,
    credential: Credential,
    raw_cursor: str | None,
    *,
    heartbeat: float,
    lifetime: float,
) -> AsyncIterator[bytes]:
    """SSE bytes: retry, hello, a reset if needed, the replay, then live events and heartbeats,
    and a final `closed` event when the server ends the stream."""
    user_id = credential.user_id
    subscription = s.broadcaster.subscribe(user_id, credential, stream=True)
    try:
        cursor = await resolve_cursor(s, raw_cursor)
        opening = (
            # In hello's own frame: a retry-only frame reads as an empty message to some clients.
            f"retry: {RETRY_MS}\n".encode() + control_event(user_id, "hello", cursor).sse_frame()
        )
        if cursor.reset_reason:
            opening += control_event(user_id, "reset", cursor).sse_frame()
        yield opening
        last = cursor.position
        while True:
            async with s.store.reading() as conn:
                replay = await messaging_store.events_of_member(conn, user_id, last, REPLAY_PAGE)
            if replay:
                last = replay[-1].id
                yield b"".join(event.sse_frame() for event in replay)
            if len(replay) < REPLAY_PAGE:
                break
        deadline = time.monotonic() + lifetime
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = await subscription.next(min(heartbeat, remaining))
            except SubscriptionClosed as closed:
                yield closed_frame(closed.reason)
                return
            if event is None:
                if deadline - time.monotonic() > 0:
                    # A comment line without a blank line: it keeps proxies from timing the
                    # stream out and can never be mistaken for an (empty) event.
                    yield b": heartbeat\n"
                continue
            batch = [e for e in (event, *subscription.drain()) if e.id > last]
            if batch:
                last = batch[-1].id
                yield b"".join(e.sse_frame() for e in batch)
        yield closed_frame("lifetime")
    finally:
        s.broadcaster.unsubscribe(subscription)


async def poll(
    s: Services, credential: Credential, raw_cursor: str | None, wait: float
) -> tuple[list[Event], int]:
    """Events after the cursor, waiting up to `wait` seconds for one; and the new cursor."""
    s.counters.poll_requests += 1
    user_id = credential.user_id
    subscription = s.broadcaster.subscribe(user_id, credential)
    try:
        cursor = await resolve_cursor(s, raw_cursor)
        if cursor.reset_reason:
            return [control_event(user_id, "reset", cursor)], cursor.position
        events = await _page(s, user_id, cursor.position)
        if not events and raw_cursor and wait > 0:
            try:
                arrived = await subscription.next(wait)
            except SubscriptionClosed:
                arrived = None
            if arrived is not None:
                events = await _page(s, user_id, cursor.position)
        return events, events[-1].id if events else cursor.position
    finally:
        s.broadcaster.unsubscribe(subscription)


async def _page(s: Services, user_id: int, after: int) -> list[Event]:
    async with s.store.reading() as conn:
        return await messaging_store.events_of_member(conn, user_id, after, POLL_PAGE)
