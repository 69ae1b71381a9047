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

from gateway.models import Event


class SubscriptionClosed(Exception):
    """The subscription ended: it fell too far behind, or the worker is shutting down."""


class Subscription:
    def __init__(self, user_id: int, queue_size: int) -> None:
        self.user_id = user_id
        self.lagged = False
        self.closed = False
        # One spare slot, so a close can always wake a waiting consumer.
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(queue_size + 1)
        self._limit = queue_size

    def offer(self, event: Event) -> bool:
        """Queue an event; False once this subscription fell too far behind to keep."""
        if self.closed:
            return False
        if self._queue.qsize() >= self._limit:
            self.lagged = True
            self.close()
            return False
        self._queue.put_nowait(event)
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None when nothing arrived within `timeout` seconds."""
        if self.closed and self._queue.empty():
            raise SubscriptionClosed
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None or self.lagged:
            # A lagging consumer stops at once: it resumes from its cursor, not from a backlog.
            raise SubscriptionClosed
        return event

    def drain(self) -> list[Event]:
        """Events already queued, taken without waiting, so they can be written together."""
        events: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                self._queue.put_nowait(None)  # keep the close for the next call to next()
                break
            events.append(event)
        return events


class Broadcaster:
    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._subscriptions: defaultdict[int, set[Subscription]] = defaultdict(set)
        # Called when published ids skip some: the relay then reads them from the log.
        self.on_gap: Callable[[], None] = lambda: None
        self.last_published = 0
        self.delivered = 0

    @property
    def subscription_count(self) -> int:
        return sum(len(subs) for subs in self._subscriptions.values())

    def subscribe(self, user_id: int) -> Subscription:
        subscription = Subscription(user_id, self._queue_size)
        self._subscriptions[user_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        subs = self._subscriptions.get(subscription.user_id)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._subscriptions[subscription.user_id]

    def publish(self, events: Sequence[Event]) -> None:
        """Deliver events this worker just committed, unless that would skip over others."""
        if not events:
            return
        if events[0].id != self.last_published + 1:
            if events[-1].id > self.last_published:
                self.on_gap()
            return
        self._deliver(events)

    def publish_from_log(self, events: Sequence[Event]) -> None:
        """Deliver events read from the log in id order, skipping those already delivered."""
        self._deliver([event for event in events if event.id > self.last_published])

    def close(self) -> None:
        for subs in list(self._subscriptions.values()):
            for subscription in list(subs):
                self.unsubscribe(subscription)

    def _deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            for subscription in list(self._subscriptions.get(event.user_id, ())):
                if subscription.offer(event):
                    self.delivered += 1
                else:
                    self.unsubscribe(subscription)
            self.last_published = event.id
