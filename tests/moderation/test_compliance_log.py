"""The append-only compliance log, and introduction intents."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.config import Database, Settings
from tests.support.members import ADMIN, ALICE, BOB, MOD
from tests.support.moderation import Harness, harness
from tests.support.stores import direct


@pytest.fixture
async def gw(settings: Settings) -> AsyncIterator[Harness]:
    async with harness(settings) as h:
        yield h


async def test_log_records_each_compliance_event_in_order(gw: Harness) -> None:
    response = await gw.post(
        "/api/conversations", ALICE, {"peer_id": BOB, "origin": {"type": "request", "ref": "r9"}}
    )
    cid = (await gw.json(response, 201))["conversation"]["id"]
    await gw.conversation(BOB, ALICE)  # the existing conversation: nothing new to log
    rid = (await gw.json(await gw.report(cid, BOB, None, category="spam"), 201))["report"]["id"]
    await gw.post(f"/api/moderation/reports/{rid}/resolve", MOD, {"resolution": "no action"})
    await gw.post("/api/blocks", BOB, {"member_id": ALICE})
    await gw.post("/api/blocks", BOB, {"member_id": ALICE})  # already blocked: not logged again
    await gw.delete(f"/api/blocks/{ALICE}", BOB)
    await gw.delete(f"/api/blocks/{ALICE}", BOB)
    export = await gw.export(MOD, member_id=ALICE, reason="routine check", scope="metadata")
    await export.get_data()

    entries = (await gw.json(await gw.get("/api/moderation/log", ADMIN), 200))["entries"]
    entries.reverse()  # the API lists newest first
    summary = [(e["kind"], e["actor_id"], e["subject_id"]) for e in entries]
    assert summary == [
        ("conversation_created", ALICE, BOB),
        ("report_filed", BOB, ALICE),
        ("report_resolved", MOD, ALICE),
        ("block", BOB, ALICE),
        ("unblock", BOB, ALICE),
        ("export", MOD, ALICE),
    ]
    assert entries[0]["details"] == {"origin": {"type": "request", "ref": "r9"}}
    assert entries[0]["conversation_id"] == cid
    assert entries[1]["report_id"] == rid
    assert entries[1]["details"]["category"] == "spam"
    assert entries[2]["details"] == {"resolution": "no action"}


@pytest.mark.parametrize("user_id", [ALICE, MOD])
async def test_only_admins_read_the_log(gw: Harness, user_id: int) -> None:
    body = await gw.json(await gw.get("/api/moderation/log", user_id), 403)
    assert body["error"]["code"] == "forbidden"


async def test_the_logs_refuse_updates_and_deletes(gw: Harness, messaging_db: Database) -> None:
    cid = await gw.conversation(ALICE, BOB)
    await gw.json(await gw.report(cid, BOB, None), 201)
    export = await gw.export(MOD, member_id=ALICE, reason="check", scope="metadata")
    await export.get_data()

    with direct(messaging_db) as (conn, refused):
        for statement in (
            "UPDATE compliance_log SET actor_id = 99",
            "DELETE FROM compliance_log",
            "DELETE FROM audit_log",
            "UPDATE audit_log SET sha256 = 'forged'",
            "UPDATE audit_log SET details = '{}' WHERE action = 'export'",
        ):
            with pytest.raises(refused, match="append-only"):
                conn.execute(statement)
        kinds = [row[0] for row in conn.execute("SELECT kind FROM compliance_log ORDER BY id")]
    assert kinds == ["conversation_created", "report_filed", "export"]


async def test_intents_are_recorded_for_existing_peers(gw: Harness) -> None:
    payload = {"peer_id": BOB, "origin": {"type": "profile", "ref": "profile/bob"}}
    body = await gw.json(await gw.post("/api/intents", ALICE, payload), 201)
    assert body["intent"]["peer_id"] == BOB
    assert body["intent"]["origin"] == {"type": "profile", "ref": "profile/bob"}

    for bad, status in (
        ({"peer_id": ALICE, "origin": {"type": "profile"}}, 400),
        ({"peer_id": 999, "origin": {"type": "profile"}}, 404),
        ({"peer_id": BOB, "origin": {"type": "billboard"}}, 400),
        ({"peer_id": BOB}, 400),
        ({"peer_id": BOB, "origin": {"type": "request", "ref": "x" * 201}}, 400),
    ):
        assert (await gw.post("/api/intents", ALICE, bad)).status_code == status, bad
    anonymous = await gw.client.post("/api/intents", json=payload)
    assert anonymous.status_code == 401
