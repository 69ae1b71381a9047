"""The moderator export: who may run which scope, what each scope contains, the manifest and
audit entry, and the three formats, each verified by parsing the downloaded file."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Settings
from tests.support.members import ADMIN, ALICE, BOB, CAROL, MOD, NOT_MOD
from tests.support.moderation import Harness, harness

TRICKY = 'a "quoted", comma\nnew line and ünïcödé ✓'


@pytest.fixture
async def gw(settings: Settings) -> AsyncIterator[Harness]:
    async with harness(settings) as h:
        yield h


@pytest.fixture
async def history(gw: Harness) -> dict[str, Any]:
    """Alice talks with bob (reported by bob) and carol (not reported); bob also talks with
    carol, which is no part of alice's history."""
    with_bob = await gw.conversation(ALICE, BOB, origin="request")
    with_carol = await gw.conversation(CAROL, ALICE, origin="profile")
    bob_carol = await gw.conversation(BOB, CAROL)
    ids = {
        "bob": [
            await gw.send(with_bob, ALICE, "hi bob"),
            await gw.send(with_bob, BOB, TRICKY),
            await gw.send(with_bob, ALICE, "go away"),
        ],
        "carol": [
            await gw.send(with_carol, CAROL, "hello alice"),
            await gw.send(with_carol, ALICE, "private words"),
        ],
    }
    await gw.send(bob_carol, BOB, "not alice's business")
    await gw.json(await gw.report(with_bob, BOB, ids["bob"][2]), 201)
    return {"with_bob": with_bob, "with_carol": with_carol, "ids": ids}


def ndjson(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


async def download(gw: Harness, user_id: int, **params: Any) -> tuple[Any, bytes]:
    params.setdefault("member_id", ALICE)
    params.setdefault("reason", "case #42: harassment report")
    response = await gw.export(user_id, **params)
    return response, await response.get_data()


@pytest.mark.parametrize(
    ("user_id", "scope", "status"),
    [
        (ALICE, "metadata", 403),
        (NOT_MOD, "reported", 403),
        (MOD, "metadata", 200),
        (MOD, "reported", 200),
        (MOD, "full", 403),
        (ADMIN, "metadata", 200),
        (ADMIN, "reported", 200),
        (ADMIN, "full", 200),
    ],
)
async def test_scopes_by_role(
    gw: Harness, history: dict[str, Any], user_id: int, scope: str, status: int
) -> None:
    response, data = await download(gw, user_id, scope=scope)
    assert response.status_code == status
    audit = await gw.json(await gw.get("/api/moderation/audit", ADMIN), 200)
    exports = [e for e in audit["entries"] if e["action"] == "export"]
    if status == 403:
        assert json.loads(data)["error"]["code"] == "forbidden"
        assert exports == []  # a refused export leaves no trace of content and no entry
    else:
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert [e["actor_id"] for e in exports] == [user_id]


async def test_export_requires_reason_and_valid_parameters(
    gw: Harness, history: dict[str, Any]
) -> None:
    for params in (
        {"reason": ""},
        {"reason": "   "},
        {"reason": "x" * 501},
        {"scope": "everything"},
        {"format": "xml"},
        {"member_id": "alice"},
        {"since": "yesterday"},
        {"since": "2026-02-01", "until": "2026-01-01"},
    ):
        response, data = await download(gw, MOD, **params)
        assert response.status_code == 400, params
        assert json.loads(data)["error"]["code"] == "invalid_request"
    missing = await gw.get("/api/moderation/export", MOD, reason="r")
    assert missing.status_code == 400
    anonymous = await gw.client.get("/api/moderation/export?member_id=1&reason=r")
    assert anonymous.status_code == 401


async def test_metadata_scope_has_every_message_but_no_bodies(
    gw: Harness, history: dict[str, Any]
) -> None:
    response, data = await download(gw, MOD, scope="metadata")
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    records = ndjson(data)
    messages = [r for r in records if r["type"] == "message"]
    assert [m["id"] for m in messages] == history["ids"]["bob"] + history["ids"]["carol"]
    assert all(m["body"] is None for m in messages)
    tricky = next(m for m in messages if m["id"] == history["ids"]["bob"][1])
    assert tricky["sender_id"] == BOB
    assert tricky["recipient_id"] == ALICE
    assert tricky["body_length"] == len(TRICKY)
    assert tricky["body_sha256"] == hashlib.sha256(TRICKY.encode()).hexdigest()
    conversations = [r for r in records if r["type"] == "conversation"]
    assert [c["id"] for c in conversations] == [history["with_bob"], history["with_carol"]]
    assert conversations[0]["origin"] == {"type": "request", "ref": "r1"}
    assert not any(c["bodies_included"] for c in conversations)


async def test_reported_scope_shows_bodies_only_where_a_report_was_filed(
    gw: Harness, history: dict[str, Any]
) -> None:
    _, data = await download(gw, MOD)  # reported is the default scope
    records = ndjson(data)
    bodies = {r["id"]: r["body"] for r in records if r["type"] == "message"}
    assert [bodies[i] for i in history["ids"]["bob"]] == ["hi bob", TRICKY, "go away"]
    assert [bodies[i] for i in history["ids"]["carol"]] == [None, None]
    assert records[0]["bodies_included_for"] == [history["with_bob"]]
    # Carol's own export: she was never involved in a report, so nothing is shown.
    _, carols = await download(gw, MOD, member_id=CAROL)
    assert all(r["body"] is None for r in ndjson(carols) if r["type"] == "message")


async def test_full_scope_has_every_body_of_the_member_and_nobody_elses(
    gw: Harness, history: dict[str, Any]
) -> None:
    _, data = await download(gw, ADMIN, scope="full")
    messages = [r for r in ndjson(data) if r["type"] == "message"]
    assert [m["body"] for m in messages] == [
        "hi bob",
        TRICKY,
        "go away",
        "hello alice",
        "private words",
    ]
    assert "not alice's business" not in data.decode()


async def test_manifest_trailer_and_audit_entry_describe_the_file(
    gw: Harness, history: dict[str, Any]
) -> None:
    response, data = await download(
        gw, MOD, scope="metadata", since="2000-01-01", until="2999-01-01T00:00:00Z"
    )
    records = ndjson(data)
    manifest, end = records[0], records[-1]
    export_id = int(response.headers["X-Export-Id"])
    assert manifest["type"] == "manifest"
    assert manifest["export_id"] == export_id
    assert manifest["generated_by"] == {"user_id": MOD, "username": "mod", "role": "moderator"}
    assert manifest["member"] == {"user_id": ALICE, "username": "alice"}
    assert manifest["scope"] == "metadata"
    assert manifest["format"] == "ndjson"
    assert manifest["reason"] == "case #42: harassment report"
    assert manifest["window"] == {
        "since": "2000-01-01T00:00:00.000Z",
        "until": "2999-01-01T00:00:00.000Z",
    }
    assert end == {
        "type": "end",
        "export_id": export_id,
        "rows": 7,
        "conversations": 2,
        "messages": 5,
    }
    assert str(export_id) in response.headers["Content-Disposition"]

    [entry] = [
        e
        for e in (await gw.json(await gw.get("/api/moderation/audit", ADMIN), 200))["entries"]
        if e["action"] == "export"
    ]
    assert entry["id"] == export_id
    assert entry["actor_id"] == MOD
    assert entry["member_id"] == ALICE
    assert entry["details"]["reason"] == manifest["reason"]
    assert entry["details"]["window"] == manifest["window"]
    assert entry["outcome"] == "completed"
    assert entry["row_count"] == 7
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["created_at"] == manifest["generated_at"]
    # The moderator who ran it may check the hash; another moderator may not.
    mine = await gw.json(await gw.get(f"/api/moderation/exports/{export_id}", MOD), 200)
    assert mine["export"]["sha256"] == entry["sha256"]
    await gw.json(await gw.get(f"/api/moderation/exports/{export_id}", ALICE), 403)
    await gw.json(await gw.get("/api/moderation/exports/9999", MOD), 404)


async def test_window_limits_messages_by_time(gw: Harness, history: dict[str, Any]) -> None:
    _, everything = await download(gw, ADMIN, scope="full")
    times = [r["created_at"] for r in ndjson(everything) if r["type"] == "message"]
    cut = times[2]
    _, data = await download(gw, ADMIN, scope="full", since=cut)
    kept = [r for r in ndjson(data) if r["type"] == "message"]
    assert kept
    assert all(r["created_at"] >= cut for r in kept)
    assert len(kept) == sum(t >= cut for t in times)
    _, none = await download(gw, ADMIN, scope="full", until="2000-01-01")
    assert ndjson(none)[-1]["messages"] == 0


async def test_csv_export_parses_back_to_the_same_history(
    gw: Harness, history: dict[str, Any]
) -> None:
    response, data = await download(gw, ADMIN, scope="full", format="csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    assert [r["record"] for r in rows] == ["manifest", "conversation"] + ["message"] * 3 + [
        "conversation"
    ] + ["message"] * 2 + ["end"]
    manifest = json.loads(rows[0]["details"])
    assert manifest["format"] == "csv"
    assert manifest["export_id"] == int(response.headers["X-Export-Id"])
    tricky = rows[3]
    assert tricky["body"] == TRICKY
    assert tricky["body_sha256"] == hashlib.sha256(TRICKY.encode()).hexdigest()
    assert (tricky["sender_id"], tricky["recipient_id"]) == (str(BOB), str(ALICE))
    assert json.loads(rows[-1]["details"])["rows"] == 7


async def test_csv_metadata_leaves_bodies_empty(gw: Harness, history: dict[str, Any]) -> None:
    _, data = await download(gw, MOD, scope="metadata", format="csv")
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    messages = [r for r in rows if r["record"] == "message"]
    assert len(messages) == 5
    assert all(r["body"] == "" and len(r["body_sha256"]) == 64 for r in messages)


async def test_json_export_is_one_document(gw: Harness, history: dict[str, Any]) -> None:
    response, data = await download(gw, MOD, format="json")
    assert response.headers["Content-Type"].startswith("application/json")
    document = json.loads(data)
    assert list(document) == ["manifest", "conversations", "end"]
    assert document["manifest"]["scope"] == "reported"
    bob, carol = document["conversations"]
    assert [m["body"] for m in bob["messages"]] == ["hi bob", TRICKY, "go away"]
    assert [m["body"] for m in carol["messages"]] == [None, None]
    assert document["end"]["messages"] == 5


async def test_empty_history_is_still_a_valid_file(gw: Harness) -> None:
    for fmt in ("ndjson", "csv", "json"):
        response, data = await download(gw, MOD, member_id=CAROL, format=fmt)
        assert response.status_code == 200
        if fmt == "json":
            assert json.loads(data)["conversations"] == []
        elif fmt == "ndjson":
            assert [r["type"] for r in ndjson(data)] == ["manifest", "end"]
        else:
            assert len(list(csv.reader(io.StringIO(data.decode())))) == 3


async def test_every_export_is_in_the_compliance_log(gw: Harness, history: dict[str, Any]) -> None:
    response, _ = await download(gw, MOD, scope="metadata", format="csv")
    log = (await gw.json(await gw.get("/api/moderation/log", ADMIN), 200))["entries"]
    assert log[0]["kind"] == "export"
    assert log[0]["actor_id"] == MOD
    assert log[0]["subject_id"] == ALICE
    assert log[0]["details"]["audit_id"] == int(response.headers["X-Export-Id"])
    assert log[0]["details"]["reason"] == "case #42: harassment report"


async def test_head_of_an_export_runs_nothing_and_audits_nothing(gw: Harness) -> None:
    before = await gw.json(await gw.get("/api/moderation/audit", ADMIN), 200)
    response = await gw.client.head(
        "/api/moderation/export",
        headers=gw.headers(MOD),
        query_string={"member_id": ALICE, "reason": "case 7", "scope": "metadata"},
    )
    assert response.status_code == 200
    assert await response.get_data() == b""
    after = await gw.json(await gw.get("/api/moderation/audit", ADMIN), 200)
    assert after["entries"] == before["entries"]
    forbidden = await gw.client.head(
        "/api/moderation/export",
        headers=gw.headers(MOD),
        query_string={"member_id": ALICE, "reason": "case 7", "scope": "full"},
    )
    assert forbidden.status_code == 403


async def test_an_export_for_an_id_nobody_ever_had_is_404(gw: Harness) -> None:
    response = await gw.export(MOD, member_id=424242, reason="typo?", scope="metadata")
    assert (await gw.json(response, 404))["error"]["code"] == "member_not_found"
    audit = await gw.json(await gw.get("/api/moderation/audit", ADMIN), 200)
    assert audit["entries"] == []  # nothing exported, nothing audited


async def test_a_member_who_left_the_main_app_stays_exportable(gw: Harness, app_db: Path) -> None:
    """Departed members are gone from app.db but not from their conversations: a moderator
    can still export what they wrote (a report may come after they left)."""
    with_carol = await gw.conversation(BOB, CAROL)
    await gw.send(with_carol, BOB, "something to look at later")
    with sqlite3.connect(app_db) as db:  # bob leaves WhiteBalloon
        db.execute("DELETE FROM user_attributes WHERE user_id = ?", (BOB,))
        db.execute("DELETE FROM sessions WHERE user_id = ?", (BOB,))
        db.execute("DELETE FROM users WHERE id = ?", (BOB,))
    response, data = await download(gw, ADMIN, member_id=BOB, scope="full")
    assert response.status_code == 200
    bodies = [row.get("body") for row in ndjson(data) if row.get("type") == "message"]
    assert bodies == ["something to look at later"]
