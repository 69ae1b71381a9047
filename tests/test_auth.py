"""Signed session cookies from the main app: what is accepted, what is refused."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from base64 import b64encode
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner
from quart.testing import QuartClient

from gateway import mint
from gateway.app import create_app
from gateway.auth import read_session, sign_session
from gateway.config import Settings
from gateway.store.stand_in import sqlalchemy_time
from tests.support.members import ALICE, BOB, COOKIE, SECRET, as_member, starlette_cookie


class SignerFromThePast(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 15 * 24 * 3600


async def status_for(client: QuartClient, cookie: str) -> tuple[int, str | None]:
    response = await client.get("/api/me", headers=as_member(cookie))
    body = await response.get_json()
    return response.status_code, body.get("error", {}).get("code")


async def test_cookie_minted_by_starlette_session_middleware_is_accepted(
    client: QuartClient,
) -> None:
    response = await client.get("/api/me", headers=as_member(starlette_cookie({"user_id": BOB})))
    assert response.status_code == 200
    assert (await response.get_json())["username"] == "bob"


async def test_gateway_helper_signs_exactly_like_starlette(client: QuartClient) -> None:
    response = await client.get(
        "/api/me", headers=as_member(sign_session(SECRET, {"user_id": BOB}))
    )
    assert response.status_code == 200


def tampered(cookie: str) -> str:
    _, timestamp, signature = cookie.split(".")
    forged = b64encode(b'{"user_id": 5}').decode()
    return ".".join([forged, timestamp, signature])


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param(tampered(starlette_cookie({"user_id": ALICE})), id="tampered"),
        pytest.param(starlette_cookie({"user_id": ALICE}, secret="not-ours"), id="wrong-secret"),
        pytest.param(
            SignerFromThePast(SECRET).sign(b64encode(b'{"user_id": 1}')).decode(), id="expired"
        ),
        pytest.param(starlette_cookie({"user_id": "1"}), id="user-id-not-int"),
        pytest.param(starlette_cookie({"user_id": True}), id="user-id-bool"),
        pytest.param(starlette_cookie({"csrf": "x"}), id="no-user-id"),
        pytest.param(starlette_cookie({"user_id": 4242}), id="unknown-user"),
        pytest.param(TimestampSigner(SECRET).sign(b64encode(b"[1, 2]")).decode(), id="not-a-dict"),
    ],
)
async def test_anything_but_a_valid_session_is_401(client: QuartClient, cookie: str) -> None:
    assert await status_for(client, cookie) == (401, "unauthenticated")


async def test_missing_cookie_is_401(client: QuartClient) -> None:
    response = await client.get("/api/conversations")
    assert response.status_code == 401
    assert (await response.get_json())["error"]["code"] == "unauthenticated"


async def test_every_configured_secret_verifies_for_rotation(app_db: Path, tmp_path: Path) -> None:
    app = create_app(
        Settings(session_secrets=("new", SECRET), app_db=app_db, messaging_db=tmp_path / "m.db")
    )
    async with app.test_app() as test_app:
        client = test_app.test_client()
        assert (await status_for(client, starlette_cookie({"user_id": ALICE})))[0] == 200
        assert (await status_for(client, starlette_cookie({"user_id": ALICE}, "new")))[0] == 200
        assert (await status_for(client, starlette_cookie({"user_id": ALICE}, "old")))[0] == 401


def add_session(app_db: Path, session_id: str, user_id: int, expires: datetime, full: int) -> None:
    with sqlite3.connect(app_db) as db:
        db.execute(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, is_fully_authenticated) "
            "VALUES (?, ?, datetime('now'), ?, ?)",
            (session_id, user_id, sqlalchemy_time(expires), full),
        )


@pytest.fixture
async def uncached_client(app_db: Path, tmp_path: Path) -> QuartClient:
    app = create_app(
        Settings(
            session_secrets=(SECRET,),
            app_db=app_db,
            messaging_db=tmp_path / "m.db",
            auth_cache_seconds=0.3,
        )
    )
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def test_a_session_id_must_name_a_live_fully_authenticated_session(
    uncached_client: QuartClient, app_db: Path
) -> None:
    now = datetime.utcnow()
    add_session(app_db, "live", ALICE, now + timedelta(days=1), 1)
    add_session(app_db, "expired", ALICE, now - timedelta(seconds=1), 1)
    add_session(app_db, "half", ALICE, now + timedelta(days=1), 0)
    add_session(app_db, "bobs", BOB, now + timedelta(days=1), 1)

    def cookie(session_id: str) -> str:
        return starlette_cookie({"user_id": ALICE, "session_id": session_id})

    assert await status_for(uncached_client, cookie("live")) == (200, None)
    assert await status_for(uncached_client, cookie("expired")) == (401, "unauthenticated")
    assert await status_for(uncached_client, cookie("half")) == (401, "unauthenticated")
    assert await status_for(uncached_client, cookie("bobs")) == (401, "unauthenticated")
    assert await status_for(uncached_client, cookie("never-existed")) == (401, "unauthenticated")


async def test_logging_out_of_the_main_app_ends_messaging_within_the_cache_time(
    uncached_client: QuartClient, app_db: Path
) -> None:
    add_session(app_db, "s1", ALICE, datetime.utcnow() + timedelta(days=1), 1)
    cookie = starlette_cookie({"user_id": ALICE, "session_id": "s1"})
    assert (await status_for(uncached_client, cookie))[0] == 200
    with sqlite3.connect(app_db) as db:
        db.execute("DELETE FROM sessions WHERE id = 's1'")
    await asyncio.sleep(0.35)
    assert await status_for(uncached_client, cookie) == (401, "unauthenticated")


async def test_demo_routes_do_not_exist_with_a_real_directory(client: QuartClient) -> None:
    for path in ("/demo/login?user=alice", "/demo/members", "/demo/logout"):
        assert (await client.get(path)).status_code == 404


async def test_demo_mode_seeds_members_and_signs_them_in(tmp_path: Path) -> None:
    app = create_app(Settings(messaging_db=tmp_path / "data" / "messaging.db"))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        members = await (await client.get("/demo/members")).get_json()
        assert "alice" in [m["username"] for m in members["members"]]
        login = await client.get("/demo/login?user=bob")
        assert login.status_code == 302
        assert login.headers["Location"] == "../"  # relative: lands under any prefix
        cookie = login.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
        me = await client.get("/api/me", headers={"Cookie": f"{COOKIE}={cookie}"})
        assert (await me.get_json())["username"] == "bob"
        assert (await client.get("/demo/login?user=mallory")).status_code == 404
    # The demo secret is kept, so sessions survive a restart and are shared by workers.
    app = create_app(Settings(messaging_db=tmp_path / "data" / "messaging.db"))
    async with app.test_app() as test_app:
        me = await test_app.test_client().get("/api/me", headers={"Cookie": f"{COOKIE}={cookie}"})
        assert me.status_code == 200


def test_mint_cli_prints_a_cookie_the_gateway_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    assert mint.main(["--user-id", "3", "--session-id", "s-9", "--secret", SECRET]) == 0
    cookie = capsys.readouterr().out.strip()
    assert read_session(cookie, (SECRET,), max_age=60) == {"user_id": 3, "session_id": "s-9"}


def test_mint_cli_needs_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert mint.main(["--user-id", "3"]) == 2
    assert "WB_SESSION_SECRET" in capsys.readouterr().err


async def test_a_session_expiry_with_an_offset_is_compared_in_utc(
    uncached_client: QuartClient, app_db: Path
) -> None:
    # 01:00 at +02:00 is 23:00 UTC the day before: an hour ago, though it reads as the future.
    now = datetime.now(UTC)
    expired = (now - timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
    with sqlite3.connect(app_db) as db:
        db.execute(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, is_fully_authenticated) "
            "VALUES ('tz', ?, datetime('now'), ?, 1)",
            (ALICE, expired.isoformat(sep=" ")),
        )
    cookie = starlette_cookie({"user_id": ALICE, "session_id": "tz"})
    assert await status_for(uncached_client, cookie) == (401, "unauthenticated")


def test_mint_cli_signs_with_the_first_non_empty_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WB_SESSION_SECRET", " , first, second")
    assert mint.main(["--user-id", "3"]) == 0
    cookie = capsys.readouterr().out.strip()
    assert read_session(cookie, ("first",), max_age=60) == {"user_id": 3}
