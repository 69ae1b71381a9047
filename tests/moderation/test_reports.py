"""Members report conversations and messages; moderators review and resolve them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import Settings
from tests.support.members import ADMIN, ALICE, BOB, CAROL, DAVE, MOD, MOD_YES, NOT_MOD
from tests.support.moderation import Harness, harness


@pytest.fixture
async def gw(settings: Settings) -> AsyncIterator[Harness]:
    async with harness(settings) as h:
        yield h


async def test_participant_reports_a_message_and_moderators_see_it_with_context(
    gw: Harness,
) -> None:
    cid = await gw.conversation(ALICE, BOB)
    ids = [await gw.send(cid, BOB if i % 2 else ALICE, f"line {i}") for i in range(14)]
    reported = ids[7]  # sent by bob
    body = await gw.json(await gw.report(cid, ALICE, reported, note="  threats  "), 201)
    assert body["report"]["message_id"] == reported
    assert body["report"]["note"] == "threats"
    assert "status" not in body["report"]  # the reporter does not see moderator handling

    later = await gw.send(cid, BOB, "said after the report")
    queue = await gw.json(await gw.get("/api/moderation/reports", MOD), 200)
    [report] = queue["reports"]
    assert report["reporter"] == {"user_id": ALICE, "username": "alice"}
    assert report["reported"] == {"user_id": BOB, "username": "bob"}
    assert report["category"] == "harassment"
    assert report["status"] == "open"
    assert report["message"]["body"] == "line 7"
    # Five before and five after, and nothing said after the report was filed.
    assert [m["id"] for m in report["context"]] == ids[2:13]
    assert later not in [m["id"] for m in report["context"]]


async def test_a_conversation_report_shows_the_last_messages_before_it(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    ids = [await gw.send(cid, BOB, f"spam {i}") for i in range(12)]
    await gw.json(await gw.report(cid, ALICE, None, category="spam"), 201)
    await gw.send(cid, BOB, "after")
    [report] = (await gw.json(await gw.get("/api/moderation/reports", ADMIN), 200))["reports"]
    assert report["message"] is None
    assert [m["id"] for m in report["context"]] == ids[2:]


async def test_reporting_twice_files_one_report(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    mid = await gw.send(cid, BOB, "hello")
    first = await gw.json(await gw.report(cid, ALICE, mid), 201)
    again = await gw.json(await gw.report(cid, ALICE, mid), 200)
    assert again["report"]["id"] == first["report"]["id"]
    queue = await gw.json(await gw.get("/api/moderation/reports", MOD), 200)
    assert len(queue["reports"]) == 1


async def test_only_participants_may_report_and_only_the_peers_messages(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    other = await gw.conversation(CAROL, BOB)
    bobs = await gw.send(cid, BOB, "hi")
    alices = await gw.send(cid, ALICE, "hello")
    elsewhere = await gw.send(other, BOB, "elsewhere")

    outsider = await gw.json(await gw.report(cid, CAROL, bobs), 404)
    assert outsider["error"]["code"] == "conversation_not_found"
    wrong = await gw.json(await gw.report(cid, ALICE, elsewhere), 404)
    assert wrong["error"]["code"] == "message_not_found"
    own = await gw.json(await gw.report(cid, ALICE, alices), 400)
    assert own["error"]["code"] == "invalid_request"
    bad = await gw.json(await gw.report(cid, ALICE, bobs, category="rude"), 400)
    assert "category" in bad["error"]["message"]
    await gw.json(await gw.report(cid, ALICE, bobs, note="x" * 1001), 400)
    await gw.json(await gw.report(cid, ALICE, bobs, note="x" * 1000), 201)
    anonymous = await gw.client.post("/api/reports", json={"conversation_id": cid})
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("user_id", "status"),
    [(ALICE, 403), (NOT_MOD, 403), (MOD, 200), (MOD_YES, 200), (ADMIN, 200)],
)
async def test_only_moderators_and_admins_see_the_queue(
    gw: Harness, user_id: int, status: int
) -> None:
    cid = await gw.conversation(ALICE, BOB)
    await gw.report(cid, BOB, await gw.send(cid, ALICE, "hi"))
    body = await gw.json(await gw.get("/api/moderation/reports", user_id), status)
    if status == 403:
        assert body["error"]["code"] == "forbidden"
        assert "reports" not in body
    else:
        assert len(body["reports"]) == 1
    me = await gw.get("/api/moderation/me", user_id)
    assert me.status_code == status


async def test_moderator_resolves_a_report_once(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    rid = (await gw.json(await gw.report(cid, ALICE, None), 201))["report"]["id"]
    path = f"/api/moderation/reports/{rid}/resolve"

    refused = await gw.json(await gw.post(path, ALICE, {"resolution": "mine now"}), 403)
    assert refused["error"]["code"] == "forbidden"
    await gw.json(await gw.post(path, MOD, {"resolution": "   "}), 400)
    done = await gw.json(await gw.post(path, MOD, {"resolution": "warned bob"}), 200)
    assert done["report"]["status"] == "resolved"
    assert done["report"]["resolved_by"] == MOD
    assert done["report"]["resolution"] == "warned bob"
    again = await gw.json(await gw.post(path, ADMIN, {"resolution": "again"}), 409)
    assert again["error"]["code"] == "report_already_resolved"
    missing = await gw.post("/api/moderation/reports/999/resolve", MOD, {"resolution": "x"})
    assert (await gw.json(missing, 404))["error"]["code"] == "report_not_found"

    open_now = await gw.json(await gw.get("/api/moderation/reports", MOD), 200)
    assert open_now["reports"] == []
    resolved = await gw.json(await gw.get("/api/moderation/reports", MOD, status="resolved"), 200)
    assert [r["id"] for r in resolved["reports"]] == [rid]
    await gw.json(await gw.get("/api/moderation/reports", MOD, status="closed"), 400)


async def test_viewing_and_resolving_are_audited_for_admins_only(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    rid = (await gw.json(await gw.report(cid, ALICE, None), 201))["report"]["id"]
    await gw.json(await gw.get("/api/moderation/reports", MOD), 200)
    await gw.post(f"/api/moderation/reports/{rid}/resolve", MOD, {"resolution": "ok"})

    denied = await gw.json(await gw.get("/api/moderation/audit", MOD), 403)
    assert denied["error"]["code"] == "forbidden"
    entries = (await gw.json(await gw.get("/api/moderation/audit", ADMIN), 200))["entries"]
    resolved, viewed = entries  # newest first
    assert viewed["action"] == "reports_viewed"
    assert viewed["actor_id"] == MOD
    assert viewed["details"]["report_ids"] == [rid]
    assert resolved["action"] == "report_resolved"
    assert resolved["member_id"] == BOB
    assert resolved["details"] == {"report_id": rid, "resolution": "ok"}


async def test_the_queues_page_in_their_own_order(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    ids = []
    for n in range(3):
        message_id = await gw.send(cid, BOB, f"rude {n}")
        ids.append((await gw.json(await gw.report(cid, ALICE, message_id), 201))["report"]["id"])

    async def page(**params: Any) -> list[int]:
        body = await gw.json(await gw.get("/api/moderation/reports", MOD, **params), 200)
        return [r["id"] for r in body["reports"]]

    # The open queue runs oldest first and continues after the last one seen.
    assert await page(limit=2) == ids[:2]
    assert await page(limit=2, after=ids[1]) == ids[2:]
    for report_id in ids:
        await gw.post(f"/api/moderation/reports/{report_id}/resolve", MOD, {"resolution": "ok"})
    # The resolved history runs newest first and continues before the last one seen.
    assert await page(status="resolved", limit=2) == ids[::-1][:2]
    assert await page(status="resolved", limit=2, before=ids[1]) == ids[:1]


async def test_the_queue_summary_moves_without_auditing_anything(gw: Harness) -> None:
    empty = await gw.json(await gw.get("/api/moderation/reports/summary", MOD), 200)
    assert empty == {"open": 0, "open_safety": 0, "newest_open_id": None}
    cid = await gw.conversation(ALICE, BOB)
    message_id = await gw.send(cid, BOB, "hello")
    report = await gw.json(await gw.report(cid, ALICE, message_id, category="safety"), 201)
    summary = await gw.json(await gw.get("/api/moderation/reports/summary", MOD), 200)
    assert summary == {"open": 1, "open_safety": 1, "newest_open_id": report["report"]["id"]}
    audit = await gw.json(await gw.get("/api/moderation/audit", ADMIN), 200)
    assert audit["entries"] == []  # polling the summary shows no reported content
    refused = await gw.get("/api/moderation/reports/summary", ALICE)
    assert refused.status_code == 403


async def test_moderators_find_members_by_username(gw: Harness) -> None:
    found = await gw.json(await gw.get("/api/moderation/members", MOD, username="dave"), 200)
    assert found == {"member": {"user_id": DAVE, "username": "dave"}}
    missing = await gw.get("/api/moderation/members", MOD, username="nobody")
    assert (await gw.json(missing, 404))["error"]["code"] == "member_not_found"
    assert (await gw.get("/api/moderation/members", ALICE, username="dave")).status_code == 403
