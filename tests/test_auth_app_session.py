"""WhiteBalloon's own session cookie (`wb_session_id`): a row of app.db's `sessions`."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from quart.testing import QuartClient

from gateway import mint
from gateway.app import create_app
from gateway.auth import SIGN_IN_PENDING
from gateway.config import Settings
from gateway.store.stand_in import create_directory, create_session
from tests.support.members import ALICE, BOB, CAROL, COOKIE, MEMBERS, SECRET, starlette_cookie

APP_COOKIE = "wb_session_id"


@pytest.fixture(params=["app session only", "both credential kinds"])
async def client(
    request: pytest.FixtureRequest, app_db: Path, tmp_path: Path
) -> AsyncIterator[QuartClient]:
    settings = Settings(
        app_db=app_db,
        messaging_db=tmp_path / "messaging.db",
        auth_cache_seconds=0,
        session_secrets=(SECRET,) if request.param == "both credential kinds" else None,
    )
    app = create_app(settings)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def me(client: QuartClient, **cookies: str) -> tuple[int, dict[str, object]]:
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    response = await client.get("/api/me", headers={"Cookie": header} if header else {})
    return response.status_code, await response.get_json()


async def test_an_approved_session_signs_the_member_in(client: QuartClient, app_db: Path) -> None:
    session_id = await create_session(app_db, ALICE)
    status, body = await me(client, wb_session_id=session_id)
    assert (status, body["username"]) == (200, "alice")


@pytest.mark.parametrize("case", ["unknown", "expired", "deleted user", "overlong", "logged out"])
async def test_anything_but_a_live_session_is_401(
    client: QuartClient, app_db: Path, case: str
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    session_id = await create_session(app_db, BOB, expires_at=past if case == "expired" else None)
    with sqlite3.connect(app_db) as db:
        if case == "deleted user":
            db.execute("DELETE FROM users WHERE id = ?", (BOB,))
        if case == "logged out":
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
    value = {"unknown": "0" * 32, "overlong": session_id * 10}.get(case, session_id)
    status, body = await me(client, wb_session_id=value)
    assert status == 401
    assert body["error"]["code"] == "unauthenticated"  # type: ignore[index]


async def test_a_pending_sign_in_says_it_is_not_finished(client: QuartClient, app_db: Path) -> None:
    session_id = await create_session(app_db, ALICE, approved=False)
    status, body = await me(client, wb_session_id=session_id)
    assert status == 401
    assert body["error"] == {"code": "unauthenticated", "message": SIGN_IN_PENDING}
    with sqlite3.connect(app_db) as db:  # a peer approves it: the same cookie now works
        db.execute("UPDATE sessions SET is_fully_authenticated = 1 WHERE id = ?", (session_id,))
    assert (await me(client, wb_session_id=session_id))[0] == 200


async def test_signed_cookies_work_only_when_a_secret_is_configured(
    client: QuartClient, request: pytest.FixtureRequest
) -> None:
    status, _ = await me(client, **{COOKIE: starlette_cookie({"user_id": ALICE})})
    both = "both" in request.node.callspec.id
    assert status == (200 if both else 401)


async def test_a_stale_app_session_beside_a_valid_signed_cookie(
    client: QuartClient, request: pytest.FixtureRequest
) -> None:
    signed = starlette_cookie({"user_id": BOB})
    status, _ = await me(client, **{APP_COOKIE: "f" * 32, COOKIE: signed})
    assert status == (200 if "both" in request.node.callspec.id else 401)


def test_mint_signs_a_member_in_to_a_test_app_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_db = tmp_path / "app.db"
    asyncio.run(create_directory(app_db, MEMBERS))
    assert mint.main(["--user-id", str(CAROL), "--sign-in", str(app_db)]) == 0
    session_id = capsys.readouterr().out.strip()

    async def username() -> str:
        settings = Settings(app_db=app_db, messaging_db=tmp_path / "messaging.db")
        async with create_app(settings).test_app() as test_app:
            response = await test_app.test_client().get(
                "/api/me", headers={"Cookie": f"{APP_COOKIE}={session_id}"}
            )
            return str((await response.get_json())["username"])

    assert asyncio.run(username()) == "carol"
    assert mint.main(["--user-id", "3", "--sign-in", str(tmp_path / "missing.db")]) == 2
