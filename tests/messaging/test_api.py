"""The member-facing JSON API, in-process through Quart's test client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from quart.testing import QuartClient

from gateway.app import create_app
from gateway.config import Settings
from tests.support.api import new_conversation, send, start
from tests.support.members import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    FRANK,
    GRACE,
    HANK,
    SECRET,
    as_member,
)


async def test_me_describes_the_signed_in_member(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    response = await client.get("/api/me", headers=as_member(cookies[HANK]))
    assert response.status_code == 200
    assert await response.get_json() == {"user_id": HANK, "username": "hank", "is_admin": True}


async def test_members_lists_only_mutually_visible_members(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    async def names(user_id: int, q: str = "") -> list[str]:
        response = await client.get(f"/api/members?q={q}", headers=as_member(cookies[user_id]))
        return [m["username"] for m in (await response.get_json())["members"]]

    assert await names(ALICE) == ["bob", "carol", "dave", "hank"]
    assert await names(BOB) == ["alice", "carol", "hank"]
    assert await names(DAVE) == ["alice", "hank"]
    assert await names(GRACE) == ["hank"]
    assert await names(ERIN) == ["hank"]
    assert await names(ALICE, "CA") == ["carol"]
    assert await names(ALICE, "%") == []


@pytest.mark.parametrize(
    ("me", "peer", "status", "code"),
    [
        (ALICE, BOB, 201, None),  # both public
        (ALICE, DAVE, 201, None),  # alice invited dave; dave sees public alice
        (DAVE, ALICE, 201, None),  # the same pair, started from the other side
        (HANK, GRACE, 201, None),  # an admin sees private grace; grace sees public hank
        (BOB, DAVE, 404, "member_not_found"),  # bob does not see dave: as if unknown
        (DAVE, BOB, 403, "not_visible"),  # dave sees bob, bob does not see dave
        (ERIN, ALICE, 403, "not_visible"),  # a private admin sees alice, alice not her
        (ERIN, FRANK, 403, "not_visible"),  # erin invited frank; frank does not see her
        (ALICE, 999, 404, "member_not_found"),
        (ALICE, ALICE, 400, "cannot_message_self"),
    ],
)
async def test_starting_a_conversation_follows_the_directory_rules(
    client: QuartClient, cookies: dict[int, str], me: int, peer: int, status: int, code: str | None
) -> None:
    response = await start(client, cookies[me], peer)
    assert response.status_code == status
    body = await response.get_json()
    if code is None:
        assert body["conversation"]["peer"]["user_id"] == peer
    else:
        assert body["error"]["code"] == code


async def test_one_conversation_per_pair_even_when_both_start_at_once(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    responses = await asyncio.gather(
        *(start(client, cookies[ALICE], BOB) for _ in range(5)),
        *(start(client, cookies[BOB], ALICE) for _ in range(5)),
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 9 + [201]
    ids = {(await r.get_json())["conversation"]["id"] for r in responses}
    assert len(ids) == 1
    inbox = await client.get("/api/conversations", headers=as_member(cookies[BOB]))
    assert len((await inbox.get_json())["conversations"]) == 1


async def test_origin_is_recorded_with_the_conversation(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    created = await start(client, cookies[ALICE], BOB, type="request", ref="123")
    conversation_id = (await created.get_json())["conversation"]["id"]
    # Starting it again from elsewhere does not rewrite how it began.
    await start(client, cookies[BOB], ALICE, type="profile", ref="1")
    response = await client.get(
        f"/api/conversations/{conversation_id}", headers=as_member(cookies[BOB])
    )
    conversation = (await response.get_json())["conversation"]
    assert conversation["origin"] == {"type": "request", "ref": "123"}
    assert conversation["created_by"] == ALICE


async def test_rejects_an_unknown_origin_type(client: QuartClient, cookies: dict[int, str]) -> None:
    response = await start(client, cookies[ALICE], BOB, type="advert", ref=None)
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "invalid_request"


async def test_messages_are_trimmed_stored_and_listed_in_order(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await new_conversation(client, cookies[ALICE], BOB)
    first = await send(client, cookies[ALICE], conversation_id, "  hello bob \n")
    assert first.status_code == 201
    message = (await first.get_json())["message"]
    assert message["body"] == "hello bob"
    assert message["sender_id"] == ALICE
    assert message["created_at"].endswith("Z")
    await send(client, cookies[BOB], conversation_id, "hi alice")
    listing = await client.get(
        f"/api/conversations/{conversation_id}/messages", headers=as_member(cookies[BOB])
    )
    payload = await listing.get_json()
    assert [m["body"] for m in payload["messages"]] == ["hello bob", "hi alice"]
    assert payload["has_more"] is False


@pytest.mark.parametrize("body", ["", "   \n ", "x" * 4001])
async def test_rejects_empty_or_overlong_bodies(
    client: QuartClient, cookies: dict[int, str], body: str
) -> None:
    conversation_id = await new_conversation(client, cookies[ALICE], BOB)
    response = await send(client, cookies[ALICE], conversation_id, body)
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "invalid_body"


async def test_accepts_exactly_4000_characters(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await new_conversation(client, cookies[ALICE], BOB)
    # Four-byte characters, sent as raw UTF-8 the way browsers send JSON: still under 16 KiB.
    response = await client.post(
        f"/api/conversations/{conversation_id}/messages",
        data=json.dumps({"body": "😀" * 4000}, ensure_ascii=False).encode(),
        headers=as_member(cookies[ALICE], **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 201
    assert len((await response.get_json())["message"]["body"]) == 4000


async def test_request_body_over_16_kib_is_413(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await new_conversation(client, cookies[ALICE], BOB)
    response = await send(client, cookies[ALICE], conversation_id, "x" * 17_000)
    assert response.status_code == 413
    assert (await response.get_json())["error"]["code"] == "payload_too_large"


async def test_a_retry_with_the_same_client_id_stores_nothing_new(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await new_conversation(client, cookies[ALICE], BOB)
    first = await send(client, cookies[ALICE], conversation_id, "once", client_id="c-1")
    again = await send(client, cookies[ALICE], conversation_id, "once", client_id="c-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert (await again.get_json())["message"] == (await first.get_json())["message"]
    # Another sender may use the same client_id: it is scoped to the sender.
    other = await send(client, cookies[BOB], conversation_id, "mine", client_id="c-1")
    assert other.status_code == 201
    listing = await client.get(
        f"/api/conversations/{conversation_id}/messages", headers=as_member(cookies[ALICE])
    )
    assert [m["body"] for m in (await listing.get_json())["messages"]] == ["once", "mine"]


async def test_concurrent_retries_store_one_message(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await new_conversation(client, cookies[ALICE], BOB)
    responses = await asyncio.gather(
        *(send(client, cookies[ALICE], conversation_id, "hi", client_id="same") for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({(await r.get_json())["message"]["id"] for r in responses}) == 1


async def test_reusing_a_client_id_in_another_conversation_is_a_conflict(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    with_bob = await new_conversation(client, cookies[ALICE], BOB)
    with_carol = await new_conversation(client, cookies[ALICE], CAROL)
    await send(client, cookies[ALICE], with_bob, "hi", client_id="k")
    response = await send(client, cookies[ALICE], with_carol, "hi", client_id="k")
    assert response.status_code == 409


async def test_non_participants_cannot_tell_a_conversation_exists(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await new_conversation(client, cookies[ALICE], BOB)
    await send(client, cookies[ALICE], conversation_id, "hi")  # the members are now cached
    paths = [
        ("GET", f"/api/conversations/{conversation_id}", None),
        ("GET", f"/api/conversations/{conversation_id}/messages", None),
        ("POST", f"/api/conversations/{conversation_id}/messages", {"body": "psst"}),
        ("POST", f"/api/conversations/{conversation_id}/read", {"message_id": 1}),
    ]
    for method, path, payload in paths:
        intruder = await client.open(
            path, method=method, json=payload, headers=as_member(cookies[CAROL])
        )
        missing = await client.open(
            path.replace(str(conversation_id), "9999"),
            method=method,
            json=payload,
            headers=as_member(cookies[ALICE]),
        )
        assert intruder.status_code == missing.status_code == 404
        assert await intruder.get_json() == await missing.get_json()


async def test_sending_is_rechecked_against_visibility_within_the_cache_bound(
    app_db: Any, tmp_path: Any, cookies: dict[int, str]
) -> None:
    """Who sees whom is cached per worker for at most WB_AUTH_CACHE_SECONDS (WhiteBalloon
    sends no signal when its directory changes); after that, every send sees the change."""
    import sqlite3

    settings = Settings(
        session_secrets=(SECRET,),
        app_db=app_db,
        messaging_db=tmp_path / "fresh.db",
        auth_cache_seconds=0.3,
    )
    async with create_app(settings).test_app() as test_app:
        client = test_app.test_client()
        conversation_id = await new_conversation(client, cookies[ALICE], BOB)
        assert (await send(client, cookies[ALICE], conversation_id, "hi")).status_code == 201
        with sqlite3.connect(app_db) as db:  # the main app makes bob private
            db.execute("UPDATE users SET sync_scope = 'private' WHERE id = ?", (BOB,))
        await asyncio.sleep(0.35)
        response = await send(client, cookies[ALICE], conversation_id, "still there?")
        assert response.status_code == 403
        assert (await response.get_json())["error"]["code"] == "not_visible"


async def test_pages_of_history_walk_backwards_and_forwards(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    conversation_id = await new_conversation(client, cookies[ALICE], BOB)
    for n in range(7):
        await send(client, cookies[ALICE], conversation_id, f"m{n}")
    url = f"/api/conversations/{conversation_id}/messages"
    newest = await (await client.get(f"{url}?limit=3", headers=as_member(cookies[BOB]))).get_json()
    assert [m["body"] for m in newest["messages"]] == ["m4", "m5", "m6"]
    assert newest["has_more"] is True
    older = await (
        await client.get(
            f"{url}?limit=3&before={newest['messages'][0]['id']}", headers=as_member(cookies[BOB])
        )
    ).get_json()
    assert [m["body"] for m in older["messages"]] == ["m1", "m2", "m3"]
    oldest = await (
        await client.get(
            f"{url}?limit=3&before={older['messages'][0]['id']}", headers=as_member(cookies[BOB])
        )
    ).get_json()
    assert [m["body"] for m in oldest["messages"]] == ["m0"]
    assert oldest["has_more"] is False
    after = await (
        await client.get(
            f"{url}?limit=2&after={oldest['messages'][0]['id']}", headers=as_member(cookies[BOB])
        )
    ).get_json()
    assert [m["body"] for m in after["messages"]] == ["m1", "m2"]
    assert after["has_more"] is True
    too_big = await client.get(f"{url}?limit=201", headers=as_member(cookies[BOB]))
    assert too_big.status_code == 400


async def test_inbox_orders_by_activity_and_counts_unread_until_read(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    with_bob = await new_conversation(client, cookies[ALICE], BOB)
    with_carol = await new_conversation(client, cookies[ALICE], CAROL)
    await send(client, cookies[BOB], with_bob, "one")
    last = await (await send(client, cookies[BOB], with_bob, "two")).get_json()
    await send(client, cookies[CAROL], with_carol, "hey")
    await send(client, cookies[ALICE], with_carol, "my own message is never unread")

    async def inbox() -> list[dict[str, Any]]:
        response = await client.get("/api/conversations", headers=as_member(cookies[ALICE]))
        return list((await response.get_json())["conversations"])

    conversations = await inbox()
    assert [c["peer"]["username"] for c in conversations] == ["carol", "bob"]
    assert [c["unread_count"] for c in conversations] == [1, 2]
    assert conversations[1]["last_message"]["body"] == "two"

    read = await client.post(
        f"/api/conversations/{with_bob}/read",
        json={"message_id": last["message"]["id"]},
        headers=as_member(cookies[ALICE]),
    )
    assert (await read.get_json())["read"]["unread_count"] == 0
    assert [c["unread_count"] for c in await inbox()] == [1, 0]
    # The pointer never moves backwards.
    await client.post(
        f"/api/conversations/{with_bob}/read",
        json={"message_id": 1},
        headers=as_member(cookies[ALICE]),
    )
    assert [c["unread_count"] for c in await inbox()] == [1, 0]


async def test_read_pointer_must_name_a_message_of_the_conversation(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    with_bob = await new_conversation(client, cookies[ALICE], BOB)
    with_carol = await new_conversation(client, cookies[ALICE], CAROL)
    other = await (await send(client, cookies[CAROL], with_carol, "hey")).get_json()
    response = await client.post(
        f"/api/conversations/{with_bob}/read",
        json={"message_id": other["message"]["id"]},
        headers=as_member(cookies[ALICE]),
    )
    assert response.status_code == 404
    assert (await response.get_json())["error"]["code"] == "message_not_found"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        ({"Origin": "http://localhost"}, 201),  # the test client's own host
        ({"Sec-Fetch-Site": "same-origin"}, 201),
        ({}, 201),  # not a browser: no ambient cookie to abuse
    ],
)
async def test_cross_site_writes_are_refused(
    client: QuartClient, cookies: dict[int, str], headers: dict[str, str], status: int
) -> None:
    response = await client.post(
        "/api/conversations",
        json={"peer_id": BOB},
        headers=as_member(cookies[ALICE], **headers),
    )
    assert response.status_code == status
    if status == 403:
        assert (await response.get_json())["error"] == {
            "code": "cross_origin",
            "message": "Cross-site requests may not change anything.",
        }


async def test_malformed_requests_get_the_json_error_shape(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    response = await client.post(
        "/api/conversations", data="not json", headers=as_member(cookies[ALICE])
    )
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "invalid_request"
    missing = await client.get("/api/nothing-here", headers=as_member(cookies[ALICE]))
    assert missing.status_code == 404
    assert (await missing.get_json())["error"]["code"] == "not_found"


async def test_healthz_answers_without_a_session(client: QuartClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok"}  # liveness, not message volume


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/api/conversations/99999999999999999999", None),
        ("GET", "/api/conversations/1/messages?before=99999999999999999999", None),
        ("POST", "/api/conversations", {"peer_id": 99999999999999999999}),
        (
            "POST",
            "/api/conversations",
            {"peer_id": 2, "origin": {"type": "inbox", "ref": "\ud800"}},
        ),
    ],
)
async def test_out_of_range_or_malformed_input_is_a_client_error(
    client: QuartClient, cookies: dict[int, str], method: str, path: str, payload: Any
) -> None:
    await start(client, cookies[ALICE], BOB)
    response = await client.open(
        path, method=method, json=payload, headers=as_member(cookies[ALICE])
    )
    assert response.status_code in (400, 404)
    assert (await response.get_json())["error"]["code"] in ("invalid_request", "not_found")


async def test_json_nested_deeper_than_the_parser_goes_is_a_400(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    response = await client.post(
        "/api/conversations",
        data="[" * 8000 + "]" * 8000,
        headers=as_member(cookies[ALICE], **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 400


async def test_other_sites_cannot_trigger_api_reads_either(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    # A link on another site could otherwise start an audited export in a moderator's name.
    for site in ("cross-site", "same-site"):
        response = await client.get(
            "/api/conversations", headers=as_member(cookies[ALICE], **{"Sec-Fetch-Site": site})
        )
        assert response.status_code == 403
        assert (await response.get_json())["error"]["code"] == "cross_origin"
    own_page = await client.get(
        "/api/conversations", headers=as_member(cookies[ALICE], **{"Sec-Fetch-Site": "same-origin"})
    )
    assert own_page.status_code == 200
