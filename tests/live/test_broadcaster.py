"""The in-process fan-out: order, bounded queues, and handing gaps to the relay."""

from __future__ import annotations

import pytest

from gateway.live.broadcaster import Broadcaster, SubscriptionClosed
from gateway.live.events import Event


def event(event_id: int, user_id: int = 1) -> Event:
    return Event(event_id, user_id, "message", "{}")


async def test_each_subscription_of_a_member_gets_each_event_once_in_order() -> None:
    broadcaster = Broadcaster(queue_size=10, on_gap=lambda: None, on_published=lambda: None)
    phone, laptop, other = (
        broadcaster.subscribe(1),
        broadcaster.subscribe(1),
        broadcaster.subscribe(2),
    )
    broadcaster.publish([event(1), event(2, user_id=2), event(3)])
    for subscription in (phone, laptop):
        assert [(await subscription.next(1)).id for _ in range(2)] == [1, 3]  # type: ignore[union-attr]
        assert await subscription.next(0.01) is None
    assert (await other.next(1)).id == 2  # type: ignore[union-attr]
    assert broadcaster.delivered == 5


async def test_events_out_of_sequence_are_left_to_the_relay() -> None:
    gaps: list[bool] = []
    broadcaster = Broadcaster(
        queue_size=10, on_gap=lambda: gaps.append(True), on_published=lambda: None
    )
    subscription = broadcaster.subscribe(1)
    broadcaster.publish([event(1)])
    broadcaster.publish([event(3)])  # 2 was committed by another worker
    assert gaps == [True]
    assert broadcaster.last_published == 1
    broadcaster.publish_from_log([event(1), event(2), event(3)])
    assert [(await subscription.next(1)).id for _ in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
    broadcaster.publish([event(3)])  # a late fast-path publish repeats nothing
    assert await subscription.next(0.01) is None


async def test_a_consumer_that_stops_reading_is_dropped_not_buffered_forever() -> None:
    broadcaster = Broadcaster(queue_size=3, on_gap=lambda: None, on_published=lambda: None)
    slow = broadcaster.subscribe(1)
    broadcaster.publish([event(n) for n in range(1, 10)])
    assert slow.lagged
    assert broadcaster.subscription_count == 0
    with pytest.raises(SubscriptionClosed):
        await slow.next(1)


async def test_closing_wakes_waiting_consumers() -> None:
    broadcaster = Broadcaster(queue_size=3, on_gap=lambda: None, on_published=lambda: None)
    subscription = broadcaster.subscribe(1)
    broadcaster.publish([event(1)])
    broadcaster.close()
    assert (await subscription.next(1)).id == 1  # type: ignore[union-attr]
    with pytest.raises(SubscriptionClosed):
        await subscription.next(1)
