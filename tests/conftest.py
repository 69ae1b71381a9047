"""Shared fixtures: a main-app directory that covers every visibility case, the app under
Quart's test harness (start-up and shutdown hooks run), and cookies minted the way the
main app mints them, by Starlette's real SessionMiddleware."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart
from quart.testing import QuartClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.app import create_app
from gateway.config import Settings
from gateway.store import DirectoryEntry, create_directory

SECRET = "main-app-secret"
COOKIE = "wb_session"

ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE, HANK = 1, 2, 3, 4, 5, 6, 7, 8
# Mutually visible: alice, bob, carol (all public); alice and dave (she invited him and she is
# public); hank (a public admin) and everyone. Not mutual: bob and dave (bob does not see
# private dave); erin (a private admin) and anyone but hank, because only admins and her
# invitees see her, and frank, whom she invited, does not (invitation is one-way); grace and
# anyone but hank.
MEMBERS = (
    DirectoryEntry(ALICE, "alice", sync_scope="public"),
    DirectoryEntry(BOB, "bob", sync_scope="public"),
    DirectoryEntry(CAROL, "carol", sync_scope="public"),
    DirectoryEntry(DAVE, "dave", invited_by=ALICE),
    DirectoryEntry(ERIN, "erin", is_admin=True),
    DirectoryEntry(FRANK, "frank", invited_by=ERIN),
    DirectoryEntry(GRACE, "grace"),
    DirectoryEntry(HANK, "hank", is_admin=True, sync_scope="public"),
)


def starlette_cookie(session: dict[str, Any], secret: str = SECRET, max_age: int = 1209600) -> str:
    """The cookie value FastAPI's stock session middleware sets for `session`."""

    async def sign_in(request: Request) -> PlainTextResponse:
        request.session.update(session)
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/", sign_in)],
        middleware=[
            Middleware(SessionMiddleware, secret_key=secret, session_cookie=COOKIE, max_age=max_age)
        ],
    )

    async def request() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get("/")
        return response.cookies[COOKIE]

    # Its own loop in its own thread, so sync and async tests can both mint cookies.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, request()).result()


@pytest.fixture(scope="session")
def cookies() -> dict[int, str]:
    return {member.user_id: starlette_cookie({"user_id": member.user_id}) for member in MEMBERS}


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WB_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def app_db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    await create_directory(path, MEMBERS)
    return path


@pytest.fixture
def settings(tmp_path: Path, app_db: Path) -> Settings:
    return Settings(
        session_secrets=(SECRET,),
        app_db=app_db,
        messaging_db=tmp_path / "messaging.db",
        heartbeat_seconds=0.5,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    quart_app = create_app(settings)
    async with quart_app.test_app() as test_app:
        yield test_app.app


@pytest.fixture
def client(app: Quart) -> QuartClient:
    return app.test_client()


def as_member(cookie: str, **headers: str) -> dict[str, str]:
    """Request headers of a signed-in member's browser."""
    return {"Cookie": f"{COOKIE}={cookie}", **headers}
