"""A stream ends, with a final `closed` event, within seconds of its session ending."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart.testing import QuartClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.store.stand_in import create_session
from tests.support.members import ALICE, BOB, COOKIE, starlette_cookie
from tests.support.sse import open_stream

CHECK_SECONDS = 0.5


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[QuartClient]:
    # Heartbeats far apart: a stream that must stay silent for a second would hear them.
    settings = dataclasses.replace(
        settings, session_check_seconds=CHECK_SECONDS, heartbeat_seconds=15.0
    )
    async with create_app(settings).test_app() as test_app:
        yield test_app.test_client()


@pytest.mark.parametrize("ending", ["logout", "expiry pulled in", "approval revoked"])
async def test_ending_a_whiteballoon_session_closes_its_open_stream(
    client: QuartClient, app_db: Path, ending: str
) -> None:
    session_id = await create_session(app_db, ALICE)
    other = await create_session(app_db, BOB)  # someone else's stream stays open
    headers = {"Cookie": f"wb_session_id={session_id}"}
    async with (
        open_stream(client, None, headers=headers) as mine,
        open_stream(client, None, headers={"Cookie": f"wb_session_id={other}"}) as theirs,
    ):
        assert (await mine.next_event()).event == "hello"
        assert (await theirs.next_event()).event == "hello"
        with sqlite3.connect(app_db) as db:
            statement = {
                "logout": "DELETE FROM sessions WHERE id = ?",
                "expiry pulled in": "UPDATE sessions SET expires_at = '2000-01-01 00:00:00.000000'"
                " WHERE id = ?",
                "approval revoked": "UPDATE sessions SET is_fully_authenticated = 0 WHERE id = ?",
            }[ending]
            db.execute(statement, (session_id,))
        started = time.monotonic()
        final = await mine.next_event(timeout=5)
        assert (final.event, final.data, final.id) == ("closed", {"reason": "signed_out"}, None)
        assert time.monotonic() - started < 5
        assert await theirs.silent_for(2 * CHECK_SECONDS)  # still open, nothing to say
    refused = await client.get("/api/events", headers=headers)
    assert refused.status_code == 401


async def test_a_deleted_member_loses_a_signed_cookie_stream(
    client: QuartClient, app_db: Path
) -> None:
    cookie = starlette_cookie({"user_id": BOB})
    async with open_stream(client, None, headers={"Cookie": f"{COOKIE}={cookie}"}) as stream:
        assert (await stream.next_event()).event == "hello"
        with sqlite3.connect(app_db) as db:
            db.execute("DELETE FROM users WHERE id = ?", (BOB,))
        final = await stream.next_event(timeout=5)
        assert (final.event, final.data) == ("closed", {"reason": "signed_out"})
