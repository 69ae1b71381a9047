"""The client works under any path prefix (https://host/messages/ behind a proxy): every URL
it uses is relative to the page. Checked twice: the static files contain no root-absolute
URL at all, and a real Chromium served the gateway under /messages/ (by a stand-in proxy
that strips the prefix, as nginx's `proxy_pass http://gateway/;` does) never asks for
anything outside it, through sign-in, the deep link, live delivery, polling, a reload, the
moderator page and demo sign-out."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from tests.browser.conftest import open_thread, wait_live
from tests.support.localserver import LocalGateway

PREFIX = "/messages"

# A quote (or CSS url( ) directly followed by one slash and the start of a path: "/api/me",
# '/static/x', `/#/c/${id}`, href="/demo/logout", url(/x). Not "//" (comments, protocol-
# relative) and not a regular expression's closing slash ("…"/.exec).
ROOT_ABSOLUTE = re.compile(r"""(?:["'`]|url\(\s*)/(?=[A-Za-z0-9_#?$"'`{-])""")


def static_files() -> list[Any]:
    root = resources.files("gateway") / "static"
    return sorted(
        (f for f in root.iterdir() if f.name.endswith((".js", ".html", ".css", ".svg"))),
        key=lambda f: f.name,
    )


def test_static_files_use_no_root_absolute_urls() -> None:
    files = static_files()
    assert {"index.html", "moderation.html", "app.js", "api.js", "live.js"} <= {
        f.name for f in files
    }
    found = [
        f"{f.name}:{number}: {line.strip()}"
        for f in files
        for number, line in enumerate(f.read_text().splitlines(), 1)
        if ROOT_ABSOLUTE.search(line)
    ]
    assert found == [], "root-absolute URLs break the gateway under a prefix:\n" + "\n".join(found)


def test_the_check_itself_catches_root_absolute_urls() -> None:
    for bad in ('get("/api/me")', "src='/static/app.js'", "`/#/c/${id}`", 'href="/"', "url(/x)"):
        assert ROOT_ABSOLUTE.search(bad), bad
    for good in ('get("api/me")', "// a comment", 'x = /"([^"]+)"/.exec(y)', '"./#/"'):
        assert not ROOT_ABSOLUTE.search(good), good


def serve_under_prefix(context: Any, gw: LocalGateway) -> list[str]:
    """Route every request of `context` like a proxy serving the gateway at PREFIX: requests
    under it reach the gateway with the prefix stripped; anything else is refused and listed."""
    outside: list[str] = []
    base = gw.base_url

    def proxy(route: Route) -> None:
        url = route.request.url
        if url.startswith(base + PREFIX + "/"):
            route.continue_(url=base + url[len(base + PREFIX) :])
        else:
            outside.append(f"{route.request.method} {url}")
            route.abort()

    context.route("**/*", proxy)
    return outside


@pytest.mark.browser
def test_every_request_stays_under_the_prefix(sign_in: Any, gateway: LocalGateway) -> None:
    base = gateway.base_url + PREFIX
    alice = sign_in("alice")
    bob = sign_in("bob")
    outside = serve_under_prefix(alice.context, gateway)
    page = alice.page

    # The deep link: the history entry it leaves keeps the prefix.
    alice.open(f"{PREFIX}/?with=bob&origin=profile:2")
    expect(page.locator("#thread-title")).to_have_text("bob")
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/#/c/\d+$"))
    conversation_id = int(page.url.rsplit("/", 1)[1])
    found = alice.api.get(f"/api/conversations/{conversation_id}").json()["conversation"]
    assert found["origin"] == {"type": "profile", "ref": "2"}
    wait_live(page)

    # Sending, and live delivery over the stream.
    page.locator("#composer-input").fill("through the prefix")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list .mine.sent .text")).to_have_text(["through the prefix"])
    bob.send(conversation_id, "and back, live")
    expect(page.locator("#message-list .theirs .text")).to_have_text(["and back, live"])

    # Out to the inbox and into the thread by its link: hash routes stay on the page.
    page.evaluate("location.hash = '#/'")
    expect(page.locator("#thread-placeholder")).to_be_visible()
    expect(page).to_have_url(f"{base}/#/")
    open_thread(alice, "bob")
    expect(page).to_have_url(f"{base}/#/c/{conversation_id}")

    # A reload of the thread's URL opens it again.
    page.reload()
    expect(page.locator("#thread-title")).to_have_text("bob")
    expect(page.locator("#message-list li.message")).to_have_count(2)

    # Demo mode's "Switch member" link stays under the prefix too.
    expect(page.locator("#sign-out")).to_be_visible()
    assert page.locator("#sign-out").evaluate("a => a.href") == f"{base}/demo/logout"
    assert outside == [], f"requests left {PREFIX}/: {outside}"


@pytest.mark.browser
def test_polling_stays_under_the_prefix(sign_in: Any, gateway: LocalGateway) -> None:
    alice = sign_in(
        "alice", init_script="window.WB_LIVE_OPTIONS = {reconnectDelaysMs: [100, 200]};"
    )
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    outside = serve_under_prefix(alice.context, gateway)
    polls: list[str] = []
    alice.page.on("request", lambda r: polls.append(r.url) if "/api/events?" in r.url else None)
    alice.page.route("**/api/stream*", lambda route: route.abort())  # page routes come first
    alice.open(f"{PREFIX}/")
    expect(alice.page.locator("#connection")).to_have_attribute("data-state", "polling")
    open_thread(alice, "bob")
    bob.send(conversation["id"], "by polling, under the prefix")
    expect(alice.page.locator("#message-list .text")).to_have_text(["by polling, under the prefix"])
    assert polls
    assert all(url.startswith(gateway.base_url + PREFIX + "/api/events?") for url in polls)
    assert outside == [], f"requests left {PREFIX}/: {outside}"


@pytest.mark.browser
def test_signed_out_demo_page_and_moderation_under_the_prefix(
    browser: Any, gateway: LocalGateway
) -> None:
    base = gateway.base_url + PREFIX
    context = browser.new_context()
    try:
        outside = serve_under_prefix(context, gateway)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{base}/")
        expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
        carol = page.get_by_role("link", name="carol")
        expect(carol).to_be_visible()
        assert carol.evaluate("a => a.href") == f"{base}/demo/login?user=carol"
        # The moderator page, signed out: its own requests and its sign-in link stay inside.
        page.goto(f"{base}/moderation")
        expect(page.locator("#refused")).to_contain_text("not signed in")
        link = page.get_by_role("link", name="Sign in to WhiteBalloon")
        assert link.evaluate("a => a.href") == f"{base}/"
        # Signed in as an admin (erin, in the demo), the queue loads through the prefix.
        context.add_cookies(
            [{"name": "wb_session", "value": gateway.cookie_for(5), "url": gateway.base_url}]
        )
        page.goto(f"{base}/moderation")
        expect(page.get_by_text("Signed in as erin (admin).")).to_be_visible()
        expect(page.get_by_text("No reports here.")).to_be_visible()
        assert outside == [], f"requests left {PREFIX}/: {outside}"
        assert problems == []
    finally:
        context.close()
