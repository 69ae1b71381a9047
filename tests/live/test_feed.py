"""Live delivery in-process: the SSE stream and the polling fallback share one event log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from quart import Quart
from quart.testing import QuartClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.services import Services
from tests.support.api import send, start
from tests.support.members import ALICE, BOB, CAROL, as_member
from tests.support.sse import open_stream


async def conversation_with(client: QuartClient, cookies: dict[int, str], a: int, b: int) -> int:
    response = await start(client, cookies[a], b)
    return int((await response.get_json())["conversation"]["id"])


async def poll(client: QuartClient, cookie: str, query: str) -> dict[str, Any]:
    response = await client.get(f"/api/events?{query}", headers=as_member(cookie))
    assert response.status_code == 200
    return dict(await response.get_json())


async def test_stream_opens_with_retry_and_hello_at_the_current_cursor(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    await conversation_with(client, cookies, ALICE, BOB)
    async with open_stream(client, cookies[ALICE]) as stream:
        hello = await stream.next_event()
        assert stream.raw.startswith(b"retry: ")
        assert stream.connection.headers is not None
        assert stream.connection.headers["Content-Type"].startswith("text/event-stream")
        assert stream.connection.headers["Cache-Control"] == "no-cache"
        assert stream.connection.headers["X-Accel-Buffering"] == "no"
    assert hello.event == "hello"
    assert hello.id == hello.data["cursor"] == (await poll(client, cookies[ALICE], ""))["cursor"]


async def test_a_message_reaches_the_peer_and_the_senders_other_streams(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation_with(client, cookies, ALICE, BOB)
    async with (
        open_stream(client, cookies[BOB]) as bob,
        open_stream(client, cookies[ALICE]) as alice_phone,
        open_stream(client, cookies[CAROL]) as carol,
    ):
        for stream in (bob, alice_phone, carol):
            await stream.next_event()  # hello
        sent = await (await send(client, cookies[ALICE], conversation_id, "hi bob")).get_json()
        for stream in (bob, alice_phone):
            event = await stream.next_event()
            assert event.event == "message"
            assert event.data == sent["message"]
        assert await carol.silent_for(0.3)


async def test_new_conversations_are_announced_to_both_members(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    async with open_stream(client, cookies[BOB]) as bob:
        await bob.next_event()
        conversation_id = await conversation_with(client, cookies, ALICE, BOB)
        event = await bob.next_event()
    assert event.event == "conversation"
    assert event.data["id"] == conversation_id
    assert event.data["peer"] == {"user_id": ALICE, "username": "alice"}


async def test_read_pointer_moves_are_sent_to_the_readers_own_streams(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation_with(client, cookies, ALICE, BOB)
    sent = await (await send(client, cookies[BOB], conversation_id, "read me")).get_json()
    async with (
        open_stream(client, cookies[ALICE]) as alice_tablet,
        open_stream(client, cookies[BOB]) as bob,
    ):
        await alice_tablet.next_event()
        await bob.next_event()
        await client.post(
            f"/api/conversations/{conversation_id}/read",
            json={"message_id": sent["message"]["id"]},
            headers=as_member(cookies[ALICE]),
        )
        event = await alice_tablet.next_event()
        assert event.event == "read"
        assert event.data == {
            "conversation_id": conversation_id,
            "message_id": sent["message"]["id"],
            "unread_count": 0,
        }
        assert await bob.silent_for(0.3)  # read receipts are private


async def test_resuming_with_last_event_id_replays_the_gap_then_goes_live(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation_with(client, cookies, ALICE, BOB)
    async with open_stream(client, cookies[BOB]) as bob:
        await bob.next_event()
        await send(client, cookies[ALICE], conversation_id, "one")
        last_seen = (await bob.next_event()).id
    # Bob's connection drops; two messages are sent while he is away.
    for body in ("two", "three"):
        await send(client, cookies[ALICE], conversation_id, body)
    async with open_stream(client, cookies[BOB], last_event_id=last_seen) as bob:
        hello = await bob.next_event()
        assert hello.data["cursor"] == last_seen
        replayed = [await bob.next_event(), await bob.next_event()]
        await send(client, cookies[ALICE], conversation_id, "four")
        live = await bob.next_event()
        assert await bob.silent_for(0.3)
    assert [e.data["body"] for e in [*replayed, live]] == ["two", "three", "four"]
    ids = [int(e.id or 0) for e in [*replayed, live]]
    assert ids == sorted(set(ids))
    assert ids[0] > int(last_seen or 0)


async def test_replay_and_live_neither_lose_nor_repeat_under_concurrent_sends(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation_with(client, cookies, ALICE, BOB)
    bodies = [f"m{n}" for n in range(60)]

    async def sender() -> None:
        for body in bodies:
            await send(client, cookies[ALICE], conversation_id, body)

    task = asyncio.create_task(sender())
    received: list[str] = []
    cursor = "0"
    # Reconnect repeatedly while messages keep arriving.
    while len(received) < len(bodies):
        async with open_stream(client, cookies[BOB], last_event_id=cursor) as bob:
            await bob.next_event()
            for _ in range(7):
                try:
                    event = await bob.next_event(timeout=2)
                except TimeoutError:
                    break
                if event.event == "message":
                    received.append(event.data["body"])
                cursor = event.id or cursor
                if len(received) == len(bodies):
                    break
    await task
    assert received == bodies


async def test_unknown_cursor_gets_a_reset(client: QuartClient, cookies: dict[int, str]) -> None:
    async with open_stream(client, cookies[BOB], last_event_id="99999") as bob:
        hello = await bob.next_event()
        reset = await bob.next_event()
    assert reset.event == "reset"
    assert reset.data["reason"] == "unknown_cursor"
    assert reset.id == hello.id == reset.data["cursor"]
    polled = await poll(client, cookies[BOB], "after=not-a-number")
    assert [e["type"] for e in polled["events"]] == ["reset"]


async def test_heartbeats_keep_an_idle_stream_open(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    async with open_stream(client, cookies[BOB]) as bob:
        await bob.next_event()
        await bob.wait_for_bytes(b"\n: heartbeat\n", timeout=2)  # settings: every 0.5 s


async def test_polling_returns_the_same_ids_and_payloads_as_the_stream(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    start_cursor = (await poll(client, cookies[BOB], ""))["cursor"]
    conversation_id = await conversation_with(client, cookies, ALICE, BOB)
    async with open_stream(client, cookies[BOB], last_event_id=start_cursor) as bob:
        await bob.next_event()
        await send(client, cookies[ALICE], conversation_id, "same everywhere")
        streamed = [await bob.next_event(), await bob.next_event()]
    polled = await poll(client, cookies[BOB], f"after={start_cursor}")
    assert [(e["id"], e["type"], e["data"]) for e in polled["events"]] == [
        (e.id, e.event, e.data) for e in streamed
    ]
    assert polled["cursor"] == streamed[-1].id
    # Continuing from the returned cursor yields nothing already seen.
    assert (await poll(client, cookies[BOB], f"after={polled['cursor']}"))["events"] == []


async def test_long_poll_returns_as_soon_as_an_event_arrives(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation_with(client, cookies, ALICE, BOB)
    cursor = (await poll(client, cookies[BOB], ""))["cursor"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = asyncio.create_task(poll(client, cookies[BOB], f"after={cursor}&wait=10"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await send(client, cookies[ALICE], conversation_id, "wake up")
    result = await asyncio.wait_for(waiting, 5)
    assert loop.time() - started < 2
    assert [e["data"]["body"] for e in result["events"]] == ["wake up"]


async def test_long_poll_gives_up_after_wait_seconds(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    cursor = (await poll(client, cookies[BOB], ""))["cursor"]
    result = await asyncio.wait_for(poll(client, cookies[BOB], f"after={cursor}&wait=0.3"), 5)
    assert result == {"events": [], "cursor": cursor}
    too_long = await client.get(
        f"/api/events?after={cursor}&wait=26", headers=as_member(cookies[BOB])
    )
    assert too_long.status_code == 400


async def test_streams_require_a_session(client: QuartClient) -> None:
    assert (await client.get("/api/stream")).status_code == 401
    assert (await client.get("/api/events")).status_code == 401


async def test_a_cursor_older_than_the_kept_events_gets_a_reset(
    app: Quart, client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation_with(client, cookies, ALICE, BOB)
    old_cursor = (await poll(client, cookies[BOB], ""))["cursor"]
    await send(client, cookies[ALICE], conversation_id, "soon forgotten")
    await send(client, cookies[ALICE], conversation_id, "kept")
    services: Services = app.extensions["whiteballoon"]
    # A month and a day later, the events of both sends fall out of the log...
    later = datetime.now(UTC) + timedelta(days=31)
    assert await services.retention.prune(now=later) >= 2
    await send(client, cookies[ALICE], conversation_id, "new")
    # ...so a client still at the old cursor must refetch instead of silently missing them.
    polled = await poll(client, cookies[BOB], f"after={old_cursor}")
    assert [e["type"] for e in polled["events"]] == ["reset"]
    assert polled["events"][0]["data"]["reason"] == "cursor_too_old"
    # The messages themselves are all still there.
    history = await client.get(
        f"/api/conversations/{conversation_id}/messages", headers=as_member(cookies[BOB])
    )
    assert [m["body"] for m in (await history.get_json())["messages"]] == [
        "soon forgotten",
        "kept",
        "new",
    ]


async def test_without_the_doorbell_the_relay_still_finds_other_writers_events(
    client: QuartClient, cookies: dict[int, str], settings: Settings
) -> None:
    # A second app on the same database, in this process: it cannot bind this pid's doorbell,
    # so the first app learns of its commits only by polling the event log (every 20 ms).
    other = create_app(settings)
    async with other.test_app() as other_app:
        conversation_id = await conversation_with(other_app.test_client(), cookies, ALICE, BOB)
        async with open_stream(client, cookies[BOB]) as bob:
            await bob.next_event()
            await send(other_app.test_client(), cookies[ALICE], conversation_id, "via the log")
            event = await bob.next_event(timeout=5)
    assert event.data["body"] == "via the log"


async def test_a_stale_cursor_gets_a_reset_even_when_every_event_was_pruned(
    app: Quart, client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await conversation_with(client, cookies, ALICE, BOB)
    old_cursor = (await poll(client, cookies[BOB], ""))["cursor"]
    await send(client, cookies[ALICE], conversation_id, "gone from the log")
    services: Services = app.extensions["whiteballoon"]
    await services.retention.prune(now=datetime.now(UTC) + timedelta(days=31))
    polled = await poll(client, cookies[BOB], f"after={old_cursor}")
    assert [e["type"] for e in polled["events"]] == ["reset"]
    async with open_stream(client, cookies[BOB], last_event_id=old_cursor) as bob:
        hello = await bob.next_event()
        reset = await bob.next_event()
    assert hello.data == {"cursor": polled["cursor"]}  # hello carries the cursor, nothing else
    assert reset.data == {"cursor": polled["cursor"], "reason": "cursor_too_old"}
