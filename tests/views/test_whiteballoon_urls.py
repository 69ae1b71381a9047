"""WhiteBalloon's own messaging URLs, a prefix passed through, and the small endpoints the
page and the main app ask: instance facts, why someone can't be messaged, unread counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart.testing import QuartClient

from gateway.app import create_app
from gateway.config import Settings
from tests.support.members import ALICE, BOB, DAVE, GRACE, SECRET, as_member


async def test_the_message_button_form_opens_the_conversation(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    response = await client.post(
        "/direct",
        form={"username": "bob"},
        headers=as_member(
            cookies[ALICE], Origin="http://localhost", Referer="http://localhost/people/bob"
        ),
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("./#/c/")
    conversation = await client.get(
        f"/api/conversations/{location.rsplit('/', 1)[1]}", headers=as_member(cookies[ALICE])
    )
    origin = (await conversation.get_json())["conversation"]["origin"]
    assert origin == {"type": "profile", "ref": "/people/bob"}


async def test_a_member_one_cannot_message_lands_on_the_page_that_explains(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    response = await client.post(
        "/direct", form={"username": "dave"}, headers=as_member(cookies[BOB])
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "./?with=dave&origin=profile%3A"


async def test_a_cross_site_form_is_refused(client: QuartClient, cookies: dict[int, str]) -> None:
    response = await client.post(
        "/direct",
        form={"username": "bob"},
        headers=as_member(cookies[ALICE], Origin="https://evil.example"),
    )
    assert response.status_code == 403


async def test_old_links_redirect_into_the_page(client: QuartClient) -> None:
    with_link = await client.get("/with/bob")
    assert (with_link.status_code, with_link.headers["Location"]) == (
        303,
        "../?with=bob&origin=profile%3A",
    )
    unknown_thread = await client.get("/12345")
    assert (unknown_thread.status_code, unknown_thread.headers["Location"]) == (303, "./")


async def test_instance_facts_need_no_sign_in(client: QuartClient) -> None:
    response = await client.get("/api/instance")
    assert await response.get_json() == {"demo_mode": False, "sign_in_url": "/login"}


async def test_lookup_explains_a_one_way_view_and_hides_the_unseen(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    async def lookup(me: int, name: str) -> tuple[int, dict[str, object]]:
        response = await client.get(
            f"/api/members/lookup?username={name}", headers=as_member(cookies[me])
        )
        return response.status_code, await response.get_json()

    # dave (private, invited by alice) sees bob, who is public; bob does not see dave.
    status, body = await lookup(DAVE, "bob")
    assert status == 200
    assert body["can_message"] is False
    assert body["reason"] == "they_cannot_see_you"
    assert "public" in str(body["message"])
    assert (await lookup(ALICE, "bob"))[1]["can_message"] is True
    for hidden in ("dave", "nobody"):  # bob cannot see dave: as unknown as a made-up name
        status, body = await lookup(BOB, hidden)
        assert (status, body["error"]["code"]) == (404, "member_not_found")  # type: ignore[index]
    assert (await lookup(GRACE, "grace"))[0] == 404


async def test_unread_counts_every_conversation(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    started = await client.post(
        "/api/conversations", json={"peer_id": BOB}, headers=as_member(cookies[ALICE])
    )
    conversation_id = (await started.get_json())["conversation"]["id"]
    for body in ("one", "two"):
        await client.post(
            f"/api/conversations/{conversation_id}/messages",
            json={"body": body},
            headers=as_member(cookies[ALICE]),
        )
    unread = await client.get("/api/unread", headers=as_member(cookies[BOB]))
    assert await unread.get_json() == {"unread": 2}


@pytest.fixture
async def prefixed(app_db: Path, tmp_path: Path) -> AsyncIterator[QuartClient]:
    settings = Settings(
        session_secrets=(SECRET,),
        app_db=app_db,
        messaging_db=tmp_path / "messaging.db",
        root_path="/messages",
    )
    async with create_app(settings).test_app() as test_app:
        yield test_app.test_client()


async def test_a_passed_through_prefix_serves_everything_under_it(
    prefixed: QuartClient, cookies: dict[int, str]
) -> None:
    me = await prefixed.get("/messages/api/me", headers=as_member(cookies[ALICE]))
    assert (await me.get_json())["username"] == "alice"
    page = await prefixed.get("/messages/")
    assert page.status_code == 200
    assert (await prefixed.get("/messages/static/app.js")).status_code == 200
    bare = await prefixed.get("/messages")
    assert (bare.status_code, bare.headers["Location"]) == (308, "/messages/")
    assert (await prefixed.get("/api/me", headers=as_member(cookies[ALICE]))).status_code == 404
