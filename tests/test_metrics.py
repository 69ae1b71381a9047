"""Operators' numbers: the introduction funnel for admins, and `/metrics` for Prometheus."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway import metrics
from gateway.config import Settings
from gateway.live.events import PendingEvent
from gateway.store import messaging
from tests.support.members import ADMIN, ALICE, BOB, CAROL, MOD
from tests.support.moderation import Harness, harness

SAMPLE = re.compile(r"^(wb_[a-z_]+)(\{[^}]*\})? (\S+)$")


@pytest.fixture
async def gw(settings: Settings) -> AsyncIterator[Harness]:
    async with harness(settings) as h:
        yield h


async def intent(gw: Harness, user: int, peer: int, origin: str) -> None:
    payload = {"peer_id": peer, "origin": {"type": origin, "ref": None}}
    await gw.json(await gw.post("/api/intents", user, payload), 201)


async def funnel(gw: Harness, user: int = ADMIN, **window: str) -> dict[str, Any]:
    body = await gw.json(await gw.get("/api/metrics/introductions", user, **window), 200)
    return {row["origin_type"]: row for row in body["origins"]}


async def test_introduction_funnel_per_origin(gw: Harness) -> None:
    await intent(gw, ALICE, BOB, "request")
    await intent(gw, ALICE, BOB, "request")  # the same introduction opened twice
    await intent(gw, ALICE, CAROL, "request")
    await intent(gw, BOB, CAROL, "profile")
    replied = await gw.conversation(ALICE, BOB, origin="request")
    await gw.send(replied, ALICE, "about your request")
    await gw.send(replied, BOB, "thanks!")
    silent = await gw.conversation(ALICE, CAROL, origin="request")
    await gw.send(silent, ALICE, "hello?")
    await gw.send(silent, ALICE, "still there?")  # only the starter talks: no reply
    await gw.conversation(BOB, CAROL, origin="profile")  # started, never written in

    rows = await funnel(gw)
    assert set(rows) == {"request", "profile", "suggestion", "inbox"}
    request = rows["request"]
    assert request["intents"] == 2
    assert request["conversations_started"] == 2
    assert request["conversations_with_first_message"] == 2
    assert request["conversations_with_peer_reply_30d"] == 1
    assert request["rates"] == {
        "started_per_intent": 1.0,
        "first_message_per_started": 1.0,
        "peer_reply_per_started": 0.5,
    }
    profile = rows["profile"]
    assert (profile["intents"], profile["conversations_started"]) == (1, 1)
    assert profile["conversations_with_first_message"] == 0
    assert rows["suggestion"]["rates"]["started_per_intent"] is None  # nothing to divide by


async def test_a_reply_after_thirty_days_does_not_count(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB, origin="suggestion")
    late = (datetime.now(UTC) + timedelta(days=31)).isoformat(timespec="milliseconds")

    def tx(conn: sqlite3.Connection) -> None:
        messaging.insert_message(conn, cid, BOB, ALICE, "sorry, late", None, late[:-6] + "Z")

    await gw.services.store.write(tx)
    row = (await funnel(gw))["suggestion"]
    assert row["conversations_with_first_message"] == 1
    assert row["conversations_with_peer_reply_30d"] == 0


async def test_window_selects_by_time(gw: Harness) -> None:
    await intent(gw, ALICE, BOB, "request")
    await gw.conversation(ALICE, BOB, origin="request")
    future = await funnel(gw, since="2999-01-01")
    assert future["request"]["intents"] == future["request"]["conversations_started"] == 0
    past = await funnel(gw, since="2000-01-01", until="2999-01-01")
    assert past["request"]["conversations_started"] == 1


@pytest.mark.parametrize("user", [ALICE, MOD])
async def test_only_admins_see_introduction_metrics(gw: Harness, user: int) -> None:
    response = await gw.get("/api/metrics/introductions", user)
    assert (await gw.json(response, 403))["error"]["code"] == "forbidden"


def parse(text: str) -> dict[str, float]:
    """Sample values by name, checking each metric is announced with HELP and TYPE."""
    values: dict[str, float] = {}
    announced: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("gauge", "counter")
            announced.add(name)
        elif not line.startswith("# HELP "):
            match = SAMPLE.match(line)
            assert match, line
            assert match.group(1) in announced
            values[match.group(1)] = float(match.group(3))
    return values


async def scrape(gw: Harness) -> dict[str, float]:
    response = await gw.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await response.get_data(as_text=True))


async def test_prometheus_metrics_follow_what_happens(gw: Harness) -> None:
    start = await scrape(gw)
    assert set(start) == {
        "wb_open_streams",
        "wb_streams_evicted_total",
        "wb_streams_signed_out_total",
        "wb_messages_stored",
        "wb_messages_sent_total",
        "wb_events_delivered_total",
        "wb_poll_requests_total",
        "wb_auth_failures_total",
        "wb_delivery_lag_seconds",
        "wb_reports_open",
        "wb_rate_limited_total",
    }
    assert start["wb_messages_stored"] == 0

    cid = await gw.conversation(ALICE, BOB)
    await gw.send(cid, ALICE, "one")
    await gw.send(cid, BOB, "two")
    await gw.report(cid, ALICE, None)
    await gw.get("/api/events", ALICE, after="0")
    await gw.client.get("/api/me")  # no cookie
    await gw.client.get("/api/me", headers={"Cookie": "wb_session=forged"})

    now = await scrape(gw)
    assert now["wb_messages_stored"] == 2
    assert now["wb_messages_sent_total"] == start["wb_messages_sent_total"] + 2
    assert now["wb_poll_requests_total"] == start["wb_poll_requests_total"] + 1
    assert now["wb_auth_failures_total"] == start["wb_auth_failures_total"] + 2
    assert now["wb_reports_open"] == 1
    assert now["wb_open_streams"] == 0
    assert now["wb_delivery_lag_seconds"] < 5


async def test_delivery_lag_shows_events_not_yet_fanned_out(gw: Harness) -> None:
    s = gw.services
    await s.relay.close()  # nothing hands the event below to the streams any more
    old = (datetime.now(UTC) - timedelta(seconds=30)).isoformat(timespec="milliseconds")

    def tx(conn: sqlite3.Connection) -> None:
        event = PendingEvent(ALICE, "read", {"conversation_id": 1})
        messaging.insert_events(conn, [event], old.replace("+00:00", "Z"))

    await s.store.write(tx)
    assert await metrics.delivery_lag_seconds(s) >= 30
    assert (await scrape(gw))["wb_delivery_lag_seconds"] >= 30
