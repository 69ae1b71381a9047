"""The export streams page by page from a snapshot: messages arriving meanwhile neither
appear half-way nor shift pages, and an export cut short is recorded as such."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import pytest

from gateway.config import Settings
from gateway.messaging.models import Member
from gateway.moderation import export
from gateway.store import moderation
from gateway.timestamps import Window
from tests.support.members import ADMIN, ALICE, BOB, CAROL
from tests.support.moderation import Harness, harness

ADMIN_MEMBER = Member(ADMIN, "hank", is_admin=True)


@pytest.fixture
async def gw(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    # Tiny pages and a flush after each, so a short history spans many reads and chunks.
    monkeypatch.setattr(export, "PAGE_ROWS", 3)
    monkeypatch.setattr(export, "FLUSH_CHARS", 1)
    async with harness(settings) as h:
        yield h


def request(fmt: str = "ndjson") -> export.ExportRequest:
    return export.ExportRequest(ALICE, "full", fmt, Window(None, None), "test")  # type: ignore[arg-type]


async def test_messages_sent_during_an_export_are_not_in_it(gw: Harness) -> None:
    with_bob = await gw.conversation(ALICE, BOB)
    with_carol = await gw.conversation(ALICE, CAROL)
    before = [await gw.send(with_bob, BOB, f"b{i}") for i in range(7)]
    before += [await gw.send(with_carol, CAROL, f"c{i}") for i in range(4)]

    job = await export.begin_export(gw.services, ADMIN_MEMBER, request())
    chunks = job.chunks()
    received = [await anext(chunks)]  # the manifest and the first page
    during = [await gw.send(with_bob, ALICE, f"during {i}") for i in range(5)]
    during.append(await gw.send(with_carol, ALICE, "during carol"))
    received += [chunk async for chunk in chunks]

    assert len(received) > 3  # it really was streamed in pieces
    records = [json.loads(line) for line in b"".join(received).decode().splitlines()]
    exported = [r["id"] for r in records if r["type"] == "message"]
    assert exported == before  # complete, in order, no duplicates, nothing from later
    assert not set(during) & set(exported)
    assert records[0]["snapshot"]["max_message_id"] == max(before)
    assert records[-1]["messages"] == len(before)


async def test_an_abandoned_export_is_audited_as_aborted(gw: Harness) -> None:
    cid = await gw.conversation(ALICE, BOB)
    for i in range(10):
        await gw.send(cid, BOB, f"m{i}")
    job = await export.begin_export(gw.services, ADMIN_MEMBER, request("csv"))
    chunks = job.chunks()
    first = await anext(chunks)
    await chunks.aclose()  # what the server does when the moderator's browser goes away

    entry = None
    for _ in range(50):  # the outcome is recorded on a task of its own
        async with gw.services.store.reading() as conn:
            entry = await moderation.get_audit(conn, job.audit_id)
        if entry is not None and entry.outcome is not None:
            break
        await asyncio.sleep(0.02)
    assert entry is not None
    assert entry.outcome == "aborted"
    assert entry.row_count is not None
    assert entry.row_count < 11
    assert entry.sha256 == hashlib.sha256(first).hexdigest()
