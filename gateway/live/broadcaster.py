"""In-process fan-out of committed events to the streams and polls waiting in this worker.

Events are delivered in id order, each exactly once per subscription. `publish` is the fast
path for events this worker just committed; when their ids do not follow the last ones
delivered (another worker committed in between), they are left to the relay, which reads
the event log and hands everything over in order through `publish_from_log`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence

from gateway.auth import Credential
from gateway.live.events import CloseReason, Event


class SubscriptionClosed(Exception):
    """The subscription ended; `reason` says why, for the final event a stream sends."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason)
        self.reason = reason


class Subscription:
    """One stream's or poll's bounded buffer of events.

    A list and one future rather than an asyncio.Queue and wait_for: thousands of streams
    sit here for hours, so each saves the Queue's bookkeeping and a Task per wait. (A list,
    not a deque: an idle stream's buffer is empty, and an empty deque holds a 600-byte block;
    a stream takes what arrived all at once, through `drain`.)
    """

    def __init__(
        self, user_id: int, limit: int, credential: Credential | None, *, stream: bool
    ) -> None:
        self.user_id = user_id
        self.stream = stream  # a held stream (capped per member), not a passing poll
        # What the stream signed in with: re-checked while it is open (live.session_watch).
        self.credential = credential
        self.lagged = False
        self.closed = False
        self.close_reason: CloseReason = "shutdown"
        self._events: list[Event] = []
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, event: Event) -> bool:
        """Buffer an event; False once this subscription fell too far behind to keep."""
        if self.closed:
            return False
        if len(self._events) >= self._limit:
            self.lagged = True
            self.close("lagging")
            return False
        self._events.append(event)
        self._wake()
        return True

    def close(self, reason: CloseReason = "shutdown") -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
        self._wake()

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None when nothing arrived within `timeout` seconds."""
        if not self._events and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError:
                return None
            finally:
                self._waiter = None
        # A lagging consumer stops at once: it resumes from its cursor, not from a backlog.
        # A closed one (shutdown) first takes what it was already given.
        if self.lagged or not self._events:
            raise SubscriptionClosed(self.close_reason)
        return self._events.pop(0)

    def drain(self) -> list[Event]:
        """Events already buffered, taken without waiting, so they can be written together."""
        events = list(self._events)
        self._events.clear()
        return events

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Broadcaster:
    def __init__(
        self,
        queue_size: int,
        *,
        on_gap: Callable[[], None],
        on_published: Callable[[], None] | None,
        streams_per_member: int = 20,
    ) -> None:
        """`on_gap` is called when published ids skip some (the relay must read them from the
        log: the no-gap guarantee depends on it); `on_published` when this worker committed
        events (so other workers can be told at once), None when the database tells them
        itself (PostgreSQL's NOTIFY)."""
        self._queue_size = queue_size
        self._streams_per_member = streams_per_member
        # Per member, in the order they subscribed (a dict keeps it), so the oldest goes first.
        self._subscriptions: defaultdict[int, dict[Subscription, None]] = defaultdict(dict)
        self.evicted = 0
        self.closing = False
        self._on_gap = on_gap
        self._on_published = on_published
        self.last_published = 0
        self.delivered = 0

    @property
    def subscription_count(self) -> int:
        return sum(len(subs) for subs in self._subscriptions.values())

    def subscriptions(self) -> list[Subscription]:
        return [sub for subs in self._subscriptions.values() for sub in subs]

    def subscribe(
        self, user_id: int, credential: Credential | None = None, *, stream: bool = False
    ) -> Subscription:
        """A buffer of the member's events. A stream beyond the member's cap evicts their
        oldest stream, which ends with `closed: evicted` (its tab then polls), so a member
        with many tabs is never locked out and one member cannot hold thousands."""
        if self.closing:  # shutting down: the stream ends at once and resumes elsewhere
            ended = Subscription(user_id, self._queue_size, credential, stream=stream)
            ended.close("shutdown")
            return ended
        mine = self._subscriptions[user_id]
        if stream:
            streams = [s for s in mine if s.stream]
            for oldest in streams[: max(0, len(streams) - self._streams_per_member + 1)]:
                oldest.close("evicted")
                self.unsubscribe(oldest)
                self.evicted += 1
        subscription = Subscription(user_id, self._queue_size, credential, stream=stream)
        self._subscriptions[user_id][subscription] = None
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        subs = self._subscriptions.get(subscription.user_id)
        if subs is not None:
            subs.pop(subscription, None)
            if not subs:
                del self._subscriptions[subscription.user_id]

    def publish(self, events: Sequence[Event]) -> None:
        """Deliver events this worker just committed, unless that would skip over others."""
        if not events:
            return
        if self._on_published is not None:
            self._on_published()
        if events[0].id != self.last_published + 1:
            if events[-1].id > self.last_published:
                self._on_gap()
            return
        self._deliver(events)

    def publish_from_log(self, events: Sequence[Event]) -> None:
        """Deliver events read from the log in id order, skipping those already delivered."""
        self._deliver([event for event in events if event.id > self.last_published])

    def close(self) -> None:
        """Shutdown: every stream ends with a final `closed` event and resumes elsewhere."""
        self.closing = True
        for subs in list(self._subscriptions.values()):
            for subscription in list(subs):
                subscription.close("shutdown")
                self.unsubscribe(subscription)

    def _deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            for subscription in list(self._subscriptions.get(event.user_id, ())):
                if subscription.offer(event):
                    self.delivered += 1
                else:
                    self.unsubscribe(subscription)
            self.last_published = event.id
