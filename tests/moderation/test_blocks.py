"""A member blocks another: neither may start a conversation or send, history stays."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.config import Settings
from tests.support.members import ALICE, BOB, CAROL, GRACE
from tests.support.moderation import Harness, harness


@pytest.fixture
async def gw(settings: Settings) -> AsyncIterator[Harness]:
    async with harness(settings) as h:
        yield h


async def test_blocked_pair_cannot_send_either_way_but_keeps_history(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    await gw.send(cid, BOB, "before the block")
    created = await gw.json(await gw.post("/api/blocks", ALICE, {"member_id": BOB}), 201)
    assert created["block"]["member"] == {"user_id": BOB, "username": "bob"}

    for sender in (ALICE, BOB):
        response = await gw.post(f"/api/conversations/{cid}/messages", sender, {"body": "hi"})
        assert (await gw.json(response, 403))["error"]["code"] == "blocked"
    for a, b in ((ALICE, BOB), (BOB, ALICE)):
        response = await gw.post("/api/conversations", a, {"peer_id": b})
        assert (await gw.json(response, 403))["error"]["code"] == "blocked"
    for reader in (ALICE, BOB):
        page = await gw.json(await gw.get(f"/api/conversations/{cid}/messages", reader), 200)
        assert [m["body"] for m in page["messages"]] == ["before the block"]
    # Others are unaffected.
    await gw.send(await gw.conversation(ALICE, CAROL), CAROL, "still fine")


async def test_a_block_between_members_who_never_talked_stops_the_first_conversation(
    gw: Harness,
) -> None:
    await gw.json(await gw.post("/api/blocks", CAROL, {"member_id": ALICE}), 201)
    response = await gw.post("/api/conversations", ALICE, {"peer_id": CAROL})
    assert (await gw.json(response, 403))["error"]["code"] == "blocked"
    listed = await gw.json(await gw.get("/api/conversations", ALICE), 200)
    assert listed["conversations"] == []


async def test_unblocking_lets_them_talk_again(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    await gw.json(await gw.post("/api/blocks", BOB, {"member_id": ALICE}), 201)
    again = await gw.json(await gw.post("/api/blocks", BOB, {"member_id": ALICE}), 200)
    assert again["block"]["member"]["user_id"] == ALICE

    assert (await gw.delete(f"/api/blocks/{ALICE}", BOB)).status_code == 204
    assert (await gw.delete(f"/api/blocks/{ALICE}", BOB)).status_code == 204  # idempotent
    await gw.send(cid, ALICE, "talking again")
    await gw.send(cid, BOB, "yes")
    assert (await gw.json(await gw.get("/api/blocks", BOB), 200))["blocks"] == []


async def test_only_the_blocked_side_undoes_nothing(gw: Harness) -> None:
    """The blocked member cannot lift a block they did not make, nor see it listed."""
    cid = await gw.conversation(ALICE, BOB)
    await gw.post("/api/blocks", ALICE, {"member_id": BOB})
    assert (await gw.delete(f"/api/blocks/{ALICE}", BOB)).status_code == 204
    response = await gw.post(f"/api/conversations/{cid}/messages", BOB, {"body": "let me in"})
    assert (await gw.json(response, 403))["error"]["code"] == "blocked"
    assert (await gw.json(await gw.get("/api/blocks", BOB), 200))["blocks"] == []
    mine = await gw.json(await gw.get("/api/blocks", ALICE), 200)
    assert [b["member"]["user_id"] for b in mine["blocks"]] == [BOB]


async def test_block_input_is_checked(gw: Harness) -> None:
    self_block = await gw.json(await gw.post("/api/blocks", ALICE, {"member_id": ALICE}), 400)
    assert self_block["error"]["code"] == "cannot_message_self"
    unknown = await gw.json(await gw.post("/api/blocks", ALICE, {"member_id": 999}), 404)
    assert unknown["error"]["code"] == "member_not_found"
    await gw.json(await gw.post("/api/blocks", ALICE, {"member_id": "2"}), 400)
    anonymous = await gw.client.post("/api/blocks", json={"member_id": BOB})
    assert anonymous.status_code == 401
    foreign = await gw.client.post(
        "/api/blocks",
        json={"member_id": BOB},
        headers={**gw.headers(ALICE), "Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403


async def test_visibility_is_decided_before_blocks(gw: Harness) -> None:
    """Someone who cannot see a member learns nothing about whether they are blocked."""
    await gw.post("/api/blocks", GRACE, {"member_id": ALICE})
    response = await gw.post("/api/conversations", ALICE, {"peer_id": GRACE})
    assert (await gw.json(response, 404))["error"]["code"] == "member_not_found"


async def test_members_one_cannot_see_look_unknown_to_blocks_and_intents(gw: Harness) -> None:
    """Otherwise blocking or announcing ids one by one would list the whole directory."""
    for member_id in (GRACE, 999):  # alice cannot see grace; 999 does not exist
        blocked = await gw.post("/api/blocks", ALICE, {"member_id": member_id})
        intent = await gw.post(
            "/api/intents", ALICE, {"peer_id": member_id, "origin": {"type": "profile", "ref": "x"}}
        )
        for response in (blocked, intent):
            assert (await gw.json(response, 404))["error"]["code"] == "member_not_found"
