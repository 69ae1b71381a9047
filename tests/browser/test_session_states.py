"""Signed in, signed out, half signed in, and told so by the stream, in a real Chromium:
what `api/instance` decides (demo members or a link to WhiteBalloon's sign-in), a pending
sign-in's own message, the SSE `closed` event's reasons, and the deep link to a member who
can't be messaged back."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from gateway.store.stand_in import DirectoryEntry, create_directory, create_session
from tests.browser.conftest import TIMEOUT_MS, open_thread, wait_live
from tests.support.localserver import LocalGateway

pytestmark = pytest.mark.browser

ALICE, BOB, PAT = 1, 2, 3
SIGNED_OUT_BY_STREAM = "Your WhiteBalloon session has ended."


def in_thread(coroutine: Any) -> Any:
    # Playwright's sync API runs an event loop in this thread; run async set-up in another.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# ---- outside demo mode: a WhiteBalloon directory with real sessions ----------------------


class WhiteBalloon:
    """A gateway reading a stand-in WhiteBalloon app.db, and browser pages on it."""

    def __init__(self, gw: LocalGateway, app_db: Path, browser: Any) -> None:
        self.gw = gw
        self.app_db = app_db
        self.browser = browser
        self.contexts: list[Any] = []

    def session(self, user_id: int, *, approved: bool = True) -> str:
        return str(in_thread(create_session(self.app_db, user_id, approved=approved)))

    def end_session(self, session_id: str) -> None:
        """As WhiteBalloon's logout does: the sessions row goes."""
        with sqlite3.connect(self.app_db, timeout=10) as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def page(self, session_id: str | None = None, **options: Any) -> tuple[Any, Watch]:
        context = self.browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        if session_id:
            context.add_cookies(
                [{"name": "wb_session_id", "value": session_id, "url": self.gw.base_url}]
            )
        page = context.new_page()
        return page, Watch(page)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


class Watch:
    """Everything a page asked for, every failed answer and every console error."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.console: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on(
            "response",
            lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console.append(str(e)))

    def asked(self, fragment: str) -> list[str]:
        return [url for url in self.requests if fragment in url]


@pytest.fixture
def whiteballoon(browser: Any, tmp_path: Path) -> Iterator[WhiteBalloon]:
    app_db = tmp_path / "app.db"
    members = [
        DirectoryEntry(ALICE, "alice", sync_scope="public"),
        DirectoryEntry(BOB, "bob", sync_scope="public"),
        DirectoryEntry(PAT, "pat", sync_scope="public"),
    ]
    in_thread(create_directory(app_db, members))
    with LocalGateway(tmp_path / "gw", workers=1, env={"WB_APP_DB": str(app_db)}) as gw:
        wb = WhiteBalloon(gw, app_db, browser)
        try:
            yield wb
        finally:
            wb.close()


def test_signed_out_outside_demo_links_to_whiteballoon(whiteballoon: WhiteBalloon) -> None:
    page, watch = whiteballoon.page()
    instance = page.request.get(whiteballoon.gw.url("/api/instance"))
    assert instance.ok, "the server's api/instance is needed here"
    sign_in_url = instance.json()["sign_in_url"]
    page.goto(whiteballoon.gw.url("/"))
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    link = page.get_by_role("link", name="Sign in to WhiteBalloon")
    expect(link).to_be_visible()
    expected = page.evaluate("url => new URL(url, location.href).href", sign_in_url)
    assert link.evaluate("a => a.href") == expected
    expect(page.locator("#demo-picker")).to_be_hidden()
    # Outside demo mode the demo is never asked about: no 404, nothing in the console but
    # the browser's note of the expected 401 from api/me.
    assert watch.asked("/demo/") == []
    assert [f for f in watch.failed if not f.startswith("401 ")] == []
    assert [m for m in watch.console if "401" not in m] == []


def test_pending_sign_in_shows_the_servers_message(whiteballoon: WhiteBalloon) -> None:
    page, watch = whiteballoon.page(whiteballoon.session(PAT, approved=False))
    page.goto(whiteballoon.gw.url("/"))
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    expect(page.locator("#signed-out-message")).to_contain_text("isn't finished")
    expect(page.get_by_role("link", name="Sign in to WhiteBalloon")).to_be_visible()
    assert watch.asked("/demo/") == []


def test_signed_in_outside_demo_never_asks_for_demo_members(whiteballoon: WhiteBalloon) -> None:
    page, watch = whiteballoon.page(whiteballoon.session(ALICE))
    page.goto(whiteballoon.gw.url("/"))
    expect(page.locator("#me-name")).to_have_text("alice")
    wait_live(page)
    expect(page.locator("#sign-out")).to_be_hidden()  # "Switch member" is the demo's
    assert watch.asked("/api/instance")
    assert watch.asked("/demo/") == []
    assert watch.failed == []
    assert watch.console == []


def test_ending_the_session_closes_the_stream_and_signs_the_page_out(
    whiteballoon: WhiteBalloon,
) -> None:
    session_id = whiteballoon.session(ALICE)
    page, watch = whiteballoon.page(session_id)
    page.goto(whiteballoon.gw.url("/"))
    wait_live(page)
    whiteballoon.end_session(session_id)
    # The server closes the stream within 5 s with `closed` / signed_out.
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible(timeout=12_000)
    expect(page.get_by_role("link", name="Sign in to WhiteBalloon")).to_be_visible()
    streams = len(watch.asked("/api/stream"))
    time.sleep(2.5)  # longer than any reconnect delay: nothing tries again
    assert len(watch.asked("/api/stream")) == streams == 1
    assert watch.asked("/api/events?after=") == []


# ---- the `closed` event's reasons, as the client handles them (demo mode) -----------------


def closing_stream(reason: str) -> Callable[[Route], None]:
    """A stream that says hello, then is closed by the server for `reason`."""

    def fulfill(route: Route) -> None:
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            body=(
                'retry: 2000\nevent: hello\ndata: {"cursor":"0"}\n\n'
                f"event: closed\ndata: {json.dumps({'reason': reason})}\n\n"
            ),
        )

    return fulfill


def stream_requests(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/api/stream" in r.url else None)
    return seen


def test_closed_signed_out_stops_and_shows_the_signed_out_screen(sign_in: Any) -> None:
    alice = sign_in("alice")
    streams = stream_requests(alice.page)
    alice.page.route("**/api/stream*", closing_stream("signed_out"))
    alice.page.goto(alice.page_url("/"))
    expect(alice.page.get_by_role("heading", name="You're signed out")).to_be_visible()
    expect(alice.page.locator("#signed-out-message")).to_contain_text(SIGNED_OUT_BY_STREAM)
    time.sleep(2.5)
    assert len(streams) == 1, f"a signed-out stream must not reconnect: {streams}"
    expect(alice.page.locator("#connection")).not_to_have_attribute("data-state", "polling")


def test_closed_evicted_falls_back_to_polling_without_reconnecting(sign_in: Any) -> None:
    # Probes of the stream would come every 0.5 s if eviction didn't turn them off.
    alice = sign_in("alice", init_script="window.WB_LIVE_OPTIONS = {streamRetryMs: [500]};")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    streams = stream_requests(alice.page)
    alice.page.route("**/api/stream*", closing_stream("evicted"))
    alice.open()
    expect(alice.page.locator("#connection")).to_have_attribute("data-state", "polling")
    open_thread(alice, "bob")
    bob.send(conversation["id"], "still delivered, by polling")
    expect(alice.page.locator("#message-list .text")).to_have_text(["still delivered, by polling"])
    time.sleep(2)
    assert len(streams) == 1, f"an evicted tab must not reopen the stream: {streams}"
    expect(alice.page.locator("#connection")).to_have_attribute("data-state", "polling")


@pytest.mark.parametrize("reason", ["shutdown", "lifetime", "something-new"])
def test_closed_for_other_reasons_reconnects_from_the_cursor(sign_in: Any, reason: str) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    bob.send(conversation["id"], "before the close")
    before_cursor = alice.api.get("/api/events").json()["cursor"]
    streams = stream_requests(alice.page)
    polls: list[str] = []
    alice.page.on(
        "request", lambda r: polls.append(r.url) if "/api/events?after=" in r.url else None
    )
    closed_once: list[bool] = []

    def first_closes(route: Route) -> None:
        if closed_once:
            route.continue_()
        else:
            closed_once.append(True)
            closing_stream(reason)(route)

    alice.page.route("**/api/stream*", first_closes)
    alice.open()
    open_thread(alice, "bob")
    wait_live(alice.page)
    bob.send(conversation["id"], "after the close")
    expect(alice.page.locator("#message-list .text")).to_have_text(
        ["before the close", "after the close"]
    )
    assert len(streams) == 2, streams
    # The second stream resumes from the page's cursor (the closed event carried no id).
    cursors = [re.search(r"last_event_id=(\d+)", url) for url in streams]
    assert [int(c.group(1)) for c in cursors if c] == [int(before_cursor)] * 2, streams
    assert polls == [], "a routine close reconnects the stream; it does not poll"


# ---- the deep link to someone who can't message back (demo mode) ---------------------------


def test_deep_link_to_a_member_who_cannot_see_you_explains_why(sign_in: Any) -> None:
    # frank is private (erin invited him): he sees bob, public, but bob doesn't see frank.
    frank = sign_in("frank")
    lookups: list[str] = []
    frank.page.on(
        "request", lambda r: lookups.append(r.url) if "/api/members/lookup" in r.url else None
    )
    frank.open("/?with=bob&origin=profile:2")
    toast = frank.page.locator("#toast")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text(re.compile("public", re.IGNORECASE))
    assert "bob" not in frank.page.locator("#thread-title").inner_text()
    assert lookups
    assert lookups[0].endswith("/api/members/lookup?username=bob")
    assert frank.api.get("/api/conversations").json()["conversations"] == []

    # Someone frank can't see at all stays the plain sentence: nothing is revealed.
    frank.open("/?with=dave")
    expect(toast).to_have_text("You can't message dave.")
    frank.open("/?with=nobody-at-all")
    expect(toast).to_have_text("You can't message nobody-at-all.")
