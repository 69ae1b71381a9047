"""The one cast of members every in-process test uses, and cookies minted for them the way
the main app mints them, by Starlette's real SessionMiddleware."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.store.stand_in import DirectoryEntry

SECRET = "main-app-secret"
COOKIE = "wb_session"

ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE, HANK = 1, 2, 3, 4, 5, 6, 7, 8
MOD, NOT_MOD, MOD_YES = 9, 11, 12
ADMIN = HANK  # the admin of the moderation tests: public, so everyone sees them
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
    # Moderators by the main app's `messaging_moderator` attribute (only "1", "true" and
    # "yes" count, in any case and spacing); private, so they change nobody's member list.
    DirectoryEntry(MOD, "mod", attributes=(("messaging_moderator", "1"),)),
    DirectoryEntry(NOT_MOD, "notmod", attributes=(("messaging_moderator", "no"),)),
    DirectoryEntry(MOD_YES, "modyes", attributes=(("messaging_moderator", " Yes "),)),
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


def as_member(cookie: str, **headers: str) -> dict[str, str]:
    """Request headers of a signed-in member's browser."""
    return {"Cookie": f"{COOKIE}={cookie}", **headers}
