"""What one member's streams may cost a worker: a cap per member, and HEAD costs nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from quart.testing import QuartClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.services import Services
from tests.support.members import ALICE, BOB, as_member
from tests.support.sse import open_stream

CAP = 3
HEAD_SECONDS = 5


@pytest.fixture
async def capped(settings: Settings) -> AsyncIterator[tuple[QuartClient, Services]]:
    settings = dataclasses.replace(settings, streams_per_member=CAP)
    async with create_app(settings).test_app() as test_app:
        yield test_app.test_client(), test_app.app.extensions["whiteballoon"]


async def test_a_stream_beyond_the_cap_evicts_the_members_oldest(
    capped: tuple[QuartClient, Services], cookies: dict[int, str]
) -> None:
    client, services = capped
    async with AsyncExitStack() as stack:
        streams = []
        for _ in range(CAP):  # one after another, so the first is the oldest
            streams.append(await stack.enter_async_context(open_stream(client, cookies[ALICE])))
            assert (await streams[-1].next_event()).event == "hello"
        bobs = await stack.enter_async_context(open_stream(client, cookies[BOB]))
        assert (await bobs.next_event()).event == "hello"
        newest = await stack.enter_async_context(open_stream(client, cookies[ALICE]))
        assert (await newest.next_event()).event == "hello"
        evicted = await streams[0].next_event()
        assert (evicted.event, evicted.data, evicted.id) == ("closed", {"reason": "evicted"}, None)
        for still_open in [*streams[1:], bobs]:
            assert await still_open.silent_for(0.3)
        assert services.broadcaster.subscription_count == CAP + 1  # alice's cap, and bob
        metrics = (await (await client.get("/metrics")).get_data()).decode()
        assert 'wb_streams_evicted_total{worker="' in metrics
        assert "} 1\n" in metrics.split("wb_streams_evicted_total", 2)[2]


async def test_head_of_the_stream_subscribes_nothing(
    capped: tuple[QuartClient, Services], cookies: dict[int, str]
) -> None:
    client, services = capped
    # Bounded: a HEAD that streams would otherwise hang the suite for WB_STREAM_MAX_SECONDS.
    response = await asyncio.wait_for(
        client.head("/api/stream", headers=as_member(cookies[ALICE])), HEAD_SECONDS
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert await asyncio.wait_for(response.get_data(), HEAD_SECONDS) == b""
    assert services.broadcaster.subscription_count == 0
    refused = await asyncio.wait_for(client.head("/api/stream"), HEAD_SECONDS)
    assert refused.status_code == 401
