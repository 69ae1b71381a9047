"""Per-member rate limits (issue 10, item 5): the token-bucket arithmetic and its settings,
then what a member sees through the app: 429 `rate_limited` with `Retry-After`, nothing
written, refill, one bucket per member and action, free retries, and buckets shared by every
app (worker) on one messaging.db."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.exceptions import ConfigError
from gateway.rate_limits import (
    Bucket,
    RateLimit,
    parse_rate_limit,
    retry_after_header,
    take,
    wait_text,
)
from tests.support.members import ALICE, BOB, CAROL, DAVE, as_member

# The bucket arithmetic, with the clock as a parameter.


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("60/1m", RateLimit(60, 60.0, 60)),
        ("30/60s", RateLimit(30, 60.0, 30)),
        ("20/1h burst 5", RateLimit(20, 3600.0, 5)),
        ("20/d", RateLimit(20, 86400.0, 20)),
        (" 6 / 1M  BURST 20 ", RateLimit(6, 60.0, 20)),
        ("1/0.5s", RateLimit(1, 0.5, 1)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_limits_parse_from_a_compact_format(raw: str, expected: RateLimit | None) -> None:
    assert parse_rate_limit(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "30", "30/", "30/60", "0/1m", "5/0s", "1/1m burst 0", "1/1y", "-1/1m", "x/1m"]
)
def test_malformed_limits_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=r"must be|between|PERIOD"):
        parse_rate_limit(raw)


@pytest.mark.parametrize("raw", ["60/1m", "20/1h burst 5", "2/1m burst 10", "20/1d burst 5"])
def test_limits_print_as_they_are_written(raw: str) -> None:
    assert str(parse_rate_limit(raw)) == raw


def test_every_limit_is_a_setting_refused_loudly_when_malformed() -> None:
    defaults = Settings.from_env({})
    assert str(defaults.rate_sends) == "60/1m burst 120"
    assert str(defaults.rate_conversations) == "20/1h burst 5"
    assert str(defaults.rate_intents) == "6/1m burst 20"
    assert str(defaults.rate_reports) == "20/1d burst 5"
    assert str(defaults.rate_blocks) == "2/1m burst 10"
    off = Settings.from_env({f"WB_RATE_{n}": "off" for n in ("SENDS", "CONVERSATIONS")})
    assert off.rate_sends is None
    assert off.rate_conversations is None
    with pytest.raises(ConfigError, match="WB_RATE_REPORTS='lots' is invalid"):
        Settings.from_env({"WB_RATE_REPORTS": "lots"})
    assert "WB_RATE_BLOCKS (default: 2/1m burst 10)" in Settings.describe()


def test_a_new_bucket_is_full_and_each_action_takes_one_token() -> None:
    limit = RateLimit(2, 10.0, 3)  # one token every 5 s, three held
    bucket = None
    for _ in range(3):
        decision = take(limit, bucket, 1000.0)
        assert decision.allowed
        assert decision.retry_after == 0
        bucket = decision.bucket
    assert bucket == Bucket(0.0, 1000.0)
    refused = take(limit, bucket, 1000.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(5.0)
    assert refused.bucket == bucket  # a refusal costs nothing


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    limit = RateLimit(2, 10.0, 3)
    empty = Bucket(0.0, 1000.0)
    assert not take(limit, empty, 1004.9).allowed
    assert take(limit, empty, 1004.9).retry_after == pytest.approx(0.1)
    after = take(limit, empty, 1005.0)  # exactly one token's worth
    assert after.allowed
    assert after.bucket.tokens == pytest.approx(0.0)
    idle = take(limit, empty, 1_000_000.0)  # a long absence fills the bucket, no more
    assert idle.allowed
    assert idle.bucket.tokens == pytest.approx(2.0)
    lowered = take(RateLimit(1, 1.0, 1), Bucket(50.0, 1000.0), 1000.0)  # the limit was lowered
    assert lowered.bucket.tokens == 0.0


def test_a_clock_that_steps_back_adds_nothing() -> None:
    limit = RateLimit(1, 10.0, 1)
    bucket = Bucket(0.5, 1000.0)  # written by a host whose clock is 3 s ahead
    decision = take(limit, bucket, 997.0)
    assert not decision.allowed
    assert decision.bucket.updated_at == 1000.0
    assert decision.retry_after == pytest.approx(5.0 + 3.0)
    assert take(limit, bucket, 1005.0).allowed


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.2, 2), (59.5, 60), (4320.0, 4320)]
)
def test_retry_after_is_whole_seconds_at_least_one(seconds: float, header: int) -> None:
    assert retry_after_header(seconds) == header


def test_waits_read_as_people_say_them() -> None:
    assert wait_text(1) == "1 second"
    assert wait_text(45) == "45 seconds"
    assert wait_text(1200) == "20 minutes"
    assert wait_text(4320) == "72 minutes"
    assert wait_text(7200) == "2 hours"
    assert wait_text(9000) == "2 hours 30 minutes"


# Through the app.

LIMITS = ("sends", "conversations", "intents", "reports", "blocks")


def limited(settings: Settings, **limits: str) -> Settings:
    """`settings` with each of `limits` (e.g. sends="3/1h") and every other limit off."""
    return dataclasses.replace(
        settings,
        **{f"rate_{name}": parse_rate_limit(limits.get(name, "off")) for name in LIMITS},
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Quart]:
    app = create_app(settings)
    async with app.test_app() as test_app:
        yield test_app.app


@asynccontextmanager
async def client_with(settings: Settings, **limits: str) -> AsyncIterator[QuartClient]:
    async with running(limited(settings, **limits)) as app:
        yield app.test_client()


async def post(client: QuartClient, cookie: str, path: str, payload: dict[str, Any]) -> Any:
    return await client.post(path, json=payload, headers=as_member(cookie))


async def start(client: QuartClient, cookie: str, peer: int) -> Any:
    return await post(client, cookie, "/api/conversations", {"peer_id": peer})


async def send(
    client: QuartClient, cookie: str, conversation_id: int, body: str, client_id: str | None = None
) -> Any:
    payload: dict[str, Any] = {"body": body}
    if client_id is not None:
        payload["client_id"] = client_id
    return await post(client, cookie, f"/api/conversations/{conversation_id}/messages", payload)


async def conversation(client: QuartClient, cookie: str, peer: int) -> int:
    response = await start(client, cookie, peer)
    assert response.status_code in (200, 201), await response.get_json()
    return int((await response.get_json())["conversation"]["id"])


async def refused(response: Any) -> tuple[int, str]:
    """(Retry-After, message) of a rate-limit refusal."""
    body = await response.get_json()
    assert response.status_code == 429, body
    assert body["error"]["code"] == "rate_limited"
    retry_after = response.headers["Retry-After"]
    assert re.fullmatch(r"[1-9]\d*", retry_after), retry_after
    return int(retry_after), body["error"]["message"]


def count(settings: Settings, table: str, where: str = "1") -> int:
    with sqlite3.connect(settings.messaging_db) as db:
        return int(db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


async def test_a_burst_beyond_the_limit_is_refused_and_nothing_is_written(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with client_with(settings, sends="3/1h") as client:
        cid = await conversation(client, cookies[ALICE], BOB)
        for n in range(3):
            assert (await send(client, cookies[ALICE], cid, f"m{n}")).status_code == 201
        messages, events = count(settings, "messages"), count(settings, "events")
        buckets = sqlite3.connect(settings.messaging_db).execute("SELECT * FROM rate_buckets")
        before = buckets.fetchall()

        retry_after, message = await refused(await send(client, cookies[ALICE], cid, "m3"))

        assert 1195 <= retry_after <= 1200  # one token every 20 minutes
        assert message == (
            "You are sending messages faster than WhiteBalloon allows. "
            "You can send again in 20 minutes."
        )
        assert count(settings, "messages") == messages == 3
        assert count(settings, "events") == events
        after = sqlite3.connect(settings.messaging_db).execute("SELECT * FROM rate_buckets")
        assert after.fetchall() == before  # the refusal took nothing either


async def test_tokens_come_back_with_time(settings: Settings, cookies: dict[int, str]) -> None:
    async with client_with(settings, sends="1/1s") as client:
        cid = await conversation(client, cookies[ALICE], BOB)
        assert (await send(client, cookies[ALICE], cid, "one")).status_code == 201
        retry_after, _ = await refused(await send(client, cookies[ALICE], cid, "two"))
        assert retry_after == 1
        await asyncio.sleep(1.05)
        assert (await send(client, cookies[ALICE], cid, "two")).status_code == 201


async def test_limits_are_per_member(settings: Settings, cookies: dict[int, str]) -> None:
    async with client_with(settings, sends="1/1h") as client:
        cid = await conversation(client, cookies[ALICE], BOB)
        assert (await send(client, cookies[ALICE], cid, "hi bob")).status_code == 201
        await refused(await send(client, cookies[ALICE], cid, "are you there?"))
        assert (await send(client, cookies[BOB], cid, "hi alice")).status_code == 201
        other = await conversation(client, cookies[CAROL], ALICE)
        assert (await send(client, cookies[CAROL], other, "hello")).status_code == 201


async def test_a_retry_of_a_stored_client_id_is_neither_counted_nor_refused(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with client_with(settings, sends="1/1h") as client:
        cid = await conversation(client, cookies[ALICE], BOB)
        first = await send(client, cookies[ALICE], cid, "hello", client_id="c-1")
        assert first.status_code == 201
        stored = (await first.get_json())["message"]
        for _ in range(3):  # the response was lost; the client retries with an empty bucket
            retry = await send(client, cookies[ALICE], cid, "hello", client_id="c-1")
            assert retry.status_code == 200
            assert (await retry.get_json())["message"] == stored
        await refused(await send(client, cookies[ALICE], cid, "new", client_id="c-2"))
        assert count(settings, "messages") == 1


async def test_only_a_first_contact_counts_as_a_new_conversation(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with client_with(settings, conversations="1/1h") as client:
        assert (await start(client, cookies[ALICE], BOB)).status_code == 201
        assert (await start(client, cookies[ALICE], BOB)).status_code == 200  # reopened: free
        retry_after, message = await refused(await start(client, cookies[ALICE], CAROL))
        assert retry_after > 3500
        assert "You can start another in 60 minutes." in message
        assert count(settings, "conversations") == 1
        assert count(settings, "compliance_log", "kind = 'conversation_created'") == 1
        # The peer may still answer: carol starting with alice is carol's first contact.
        assert (await start(client, cookies[CAROL], ALICE)).status_code == 201
        assert (await start(client, cookies[ALICE], CAROL)).status_code == 200


async def test_intents_are_limited(settings: Settings, cookies: dict[int, str]) -> None:
    payload = {"peer_id": BOB, "origin": {"type": "profile", "ref": "p1"}}
    async with client_with(settings, intents="2/1m") as client:
        for _ in range(2):
            assert (await post(client, cookies[ALICE], "/api/intents", payload)).status_code == 201
        retry_after, _ = await refused(await post(client, cookies[ALICE], "/api/intents", payload))
        assert retry_after == 30
        assert count(settings, "intents") == 2


async def test_reports_are_limited_but_repeating_an_open_one_is_free(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with client_with(settings, reports="1/1d") as client:
        with_bob = await conversation(client, cookies[ALICE], BOB)
        with_carol = await conversation(client, cookies[ALICE], CAROL)

        def report(cid: int) -> dict[str, Any]:
            return {"conversation_id": cid, "message_id": None, "category": "spam"}

        path = "/api/reports"
        assert (await post(client, cookies[ALICE], path, report(with_bob))).status_code == 201
        assert (await post(client, cookies[ALICE], path, report(with_bob))).status_code == 200
        _, message = await refused(await post(client, cookies[ALICE], path, report(with_carol)))
        assert "You can report again in 24 hours." in message
        assert count(settings, "reports") == 1
        assert count(settings, "compliance_log", "kind = 'report_filed'") == 1


async def test_blocks_and_unblocks_share_one_limit_and_repeats_are_free(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with client_with(settings, blocks="2/1h") as client:
        headers = as_member(cookies[ALICE])
        assert (
            await post(client, cookies[ALICE], "/api/blocks", {"member_id": BOB})
        ).status_code == 201
        assert (await client.delete(f"/api/blocks/{BOB}", headers=headers)).status_code == 204
        await refused(await post(client, cookies[ALICE], "/api/blocks", {"member_id": BOB}))
        assert count(settings, "blocks") == 0
        # Changing nothing is answered, not refused: unblocking someone not blocked.
        assert (await client.delete(f"/api/blocks/{CAROL}", headers=headers)).status_code == 204
        assert count(settings, "compliance_log", "kind IN ('block', 'unblock')") == 2


async def test_a_blocked_member_repeating_a_block_is_answered(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with client_with(settings, blocks="1/1h") as client:
        block_bob = {"member_id": BOB}
        assert (await post(client, cookies[ALICE], "/api/blocks", block_bob)).status_code == 201
        assert (await post(client, cookies[ALICE], "/api/blocks", block_bob)).status_code == 200
        headers = as_member(cookies[ALICE])
        await refused(await client.delete(f"/api/blocks/{BOB}", headers=headers))
        assert count(settings, "blocks") == 1


async def test_limits_hold_across_apps_sharing_one_database(
    settings: Settings, cookies: dict[int, str]
) -> None:
    # Two workers (or hosts) on one messaging.db: a member cannot double the limit by
    # landing on the other one.
    shared = limited(settings, sends="2/1h")
    async with running(shared) as first_app, running(shared) as second_app:
        first, second = first_app.test_client(), second_app.test_client()
        cid = await conversation(first, cookies[ALICE], BOB)
        assert (await send(first, cookies[ALICE], cid, "one")).status_code == 201
        assert (await send(second, cookies[ALICE], cid, "two")).status_code == 201
        await refused(await send(second, cookies[ALICE], cid, "three"))
        await refused(await send(first, cookies[ALICE], cid, "three"))
        assert count(settings, "messages") == 2
        # Refusals are counted by the worker that answered them.
        assert await refusals(first) == {**NONE_REFUSED, "sends": 1}
        assert await refusals(second) == {**NONE_REFUSED, "sends": 1}


async def test_refusals_in_a_shared_batch_leave_the_others_written(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with client_with(settings, sends="5/1h") as client:
        cid = await conversation(client, cookies[ALICE], BOB)
        other = await conversation(client, cookies[CAROL], BOB)
        responses = await asyncio.gather(
            *(send(client, cookies[ALICE], cid, f"alice {n}") for n in range(12)),
            *(send(client, cookies[CAROL], other, f"carol {n}") for n in range(5)),
        )
        alice, carol = responses[:12], responses[12:]
        assert sorted(r.status_code for r in alice) == [201] * 5 + [429] * 7
        assert [r.status_code for r in carol] == [201] * 5
        assert count(settings, "messages", f"sender_id = {ALICE}") == 5
        assert count(settings, "messages", f"sender_id = {CAROL}") == 5


async def test_off_writes_no_buckets(settings: Settings, cookies: dict[int, str]) -> None:
    async with client_with(settings) as client:  # every limit off
        cid = await conversation(client, cookies[ALICE], DAVE)
        for n in range(30):
            assert (await send(client, cookies[ALICE], cid, f"m{n}")).status_code == 201
        assert count(settings, "rate_buckets") == 0


async def test_the_default_limits_let_people_be_people(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with running(settings) as app:  # the defaults, as shipped
        client = app.test_client()
        cid = await conversation(client, cookies[ALICE], BOB)
        started = time.monotonic()
        for n in range(120):  # a long burst, e.g. a list pasted line by line
            assert (await send(client, cookies[ALICE], cid, f"line {n}")).status_code == 201
        if time.monotonic() - started < 1:  # the bucket is empty now, unless it refilled
            await refused(await send(client, cookies[ALICE], cid, "one more"))
        for peer in (CAROL, DAVE):
            assert (await start(client, cookies[ALICE], peer)).status_code == 201


NONE_REFUSED = dict.fromkeys(LIMITS, 0)
_REFUSED = re.compile(r'^wb_rate_limited_total\{worker="\d+",action="(\w+)"\} (\d+)$', re.M)


async def refusals(client: QuartClient) -> dict[str, int]:
    text = await (await client.get("/metrics")).get_data(as_text=True)
    assert "# TYPE wb_rate_limited_total counter" in text
    return {action: int(n) for action, n in _REFUSED.findall(text)}


async def test_metrics_count_refusals_per_action(
    settings: Settings, cookies: dict[int, str]
) -> None:
    async with client_with(settings, sends="1/1h", conversations="1/1h") as client:
        assert await refusals(client) == NONE_REFUSED
        cid = await conversation(client, cookies[ALICE], BOB)
        await send(client, cookies[ALICE], cid, "one")
        for _ in range(2):
            await refused(await send(client, cookies[ALICE], cid, "two"))
        await refused(await start(client, cookies[ALICE], CAROL))
        assert await refusals(client) == {**NONE_REFUSED, "sends": 2, "conversations": 1}
