"""The gateway as deployed: behind nginx at /messages/ (deploy/nginx/whiteballoon.conf, as
shipped), beside a WhiteBalloon stand-in at / that writes app.db the way the real app does.

The gateway is started with only WB_APP_DB and WB_MESSAGING_DB: members are who
WhiteBalloon's own `wb_session_id` cookie says, signed in through WhiteBalloon's pages and
approved there. Chromium goes through nginx for everything; the httpx tests check what the
configuration's comments promise (the Host header, the unbuffered stream, /metrics hidden,
the WB_ROOT_PATH variant).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import TIMEOUT_MS
from tests.support.localserver import LocalGateway
from tests.support.nginx import Nginx, free_port, require_nginx
from tests.support.whiteballoon import SESSION_COOKIE, WhiteBalloon

# Every test here is end to end; those that drive Chromium are also marked `browser`.
pytestmark = pytest.mark.e2e

# How soon logging out of WhiteBalloon must end an open stream (the contract's 5 s).
SIGN_OUT_SECONDS = 5.0


@dataclass
class Site:
    """WhiteBalloon at /, the gateway at /messages/, both behind one nginx."""

    wb: WhiteBalloon
    gateway: LocalGateway
    nginx: Nginx
    ids: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.nginx.url(path)

    def logs(self) -> str:
        return (
            f"--- gateway log ---\n{self.gateway.log_text()[-4000:]}\n"
            f"--- nginx error log ---\n{self.nginx.log_text()[-4000:]}"
        )


@contextmanager
def site(
    tmp_path: Path,
    *,
    pass_host: bool = True,
    root_path: bool = False,
    allow_public_origin: bool = False,
) -> Iterator[Site]:
    require_nginx()  # skip (or, in CI, fail) before starting anything
    with WhiteBalloon(tmp_path / "whiteballoon") as wb:
        # The cast, registered as the real app registers them: the first member is an admin;
        # alice and bob were invited by hank (private until an admin makes them public, so
        # they see each other); dave was invited by alice and stays private.
        hank = wb.register("hank")
        alice = wb.register("alice", invited_by=hank)
        bob = wb.register("bob", invited_by=hank)
        dave = wb.register("dave", invited_by=alice)
        wb.db.set_sync_scope(alice, "public")
        wb.db.set_sync_scope(bob, "public")
        nginx_port = free_port()
        env = {
            "WB_APP_DB": str(wb.db_path),
            "WB_MESSAGING_DB": str(tmp_path / "gateway" / "messaging.db"),
        }
        if allow_public_origin:
            env["WB_ALLOWED_ORIGINS"] = f"http://127.0.0.1:{nginx_port}"
        if root_path:
            env["WB_ROOT_PATH"] = "/messages"
        with (
            LocalGateway(tmp_path / "gateway", env=env, session_secret=None) as gateway,
            Nginx(
                tmp_path / "nginx",
                whiteballoon_port=wb.port,
                gateway_port=gateway.port,
                pass_host=pass_host,
                root_path=root_path,
                port=nginx_port,
            ) as nginx,
        ):
            wait_for_the_chain(nginx, gateway)
            yield Site(wb, gateway, nginx, {"hank": hank, "alice": alice, "bob": bob, "dave": dave})


def wait_for_the_chain(nginx: Nginx, gateway: LocalGateway, timeout: float = 15.0) -> None:
    """Until nginx reaches the gateway (both just started, on a possibly busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(nginx.url("/messages/healthz"), timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"nginx never reached the gateway:\n{nginx.log_text()[-3000:]}\n"
                f"the gateway's log:\n{gateway.log_text()}"
            )
        time.sleep(0.1)


# ---- the browser --------------------------------------------------------------------------

# Requests a navigation or the client itself cancels on purpose: the live stream and a long
# poll when the page goes away (reload, leaving for WhiteBalloon's pages).
_CANCELLED_ON_PURPOSE = re.compile(r"/messages/api/(stream|events)")


class Watched:
    """A browser context signed in to WhiteBalloon, and everything that went wrong in it:
    console errors, uncaught exceptions, failed requests and error responses."""

    def __init__(self, browser: Any, s: Site, username: str) -> None:
        self.site = s
        self.username = username
        self.context = browser.new_context(viewport={"width": 1100, "height": 720})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.problems: list[str] = []
        self.expected_statuses: set[int] = set()
        self.page = self.new_page()

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        return page

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure and _CANCELLED_ON_PURPOSE.search(request.url):
            return
        self.problems.append(f"request failed: {request.method} {request.url} {failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and response.status not in self.expected_statuses:
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )

    def sign_in(self, *, approve: bool = True) -> Watched:
        """WhiteBalloon's sign-in: the form, the pending page, then someone approves."""
        page = self.page
        page.goto(self.site.url("/login"))
        page.get_by_label("Username").fill(self.username)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/login/pending$"))
        if approve:
            assert self.site.wb.approve(self.username, approver=self.site.ids["hank"]) == 1
        return self

    def open_messages(self, page: Any = None) -> Any:
        page = page or self.page
        page.goto(self.site.url("/messages/"))
        page.locator("#app").wait_for(state="visible")
        return page

    def session_id(self) -> str:
        cookies = [c for c in self.context.cookies() if c["name"] == SESSION_COOKIE]
        assert len(cookies) == 1, cookies
        return str(cookies[0]["value"])

    def assert_no_problems(self) -> None:
        assert self.problems == [], f"{self.username}: {self.problems}\n{self.site.logs()}"


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Site]:
    with site(tmp_path) as s:
        yield s


@pytest.fixture
def members(browser: Any, deployed: Site) -> Iterator[Any]:
    opened: list[Watched] = []

    def make(username: str) -> Watched:
        member = Watched(browser, deployed, username)
        opened.append(member)
        return member

    yield make
    for member in opened:
        member.context.close()


def expect(target: Any) -> Any:
    """Playwright's `expect`, imported only by the browser tests (the httpx ones run without
    Playwright)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def wait_live(page: Any) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


@pytest.mark.browser
def test_inbox_link_opens_the_client_under_the_prefix_without_a_failed_request(
    deployed: Site, members: Any
) -> None:
    alice = members("alice").sign_in()
    page = alice.page
    # WhiteBalloon's nav links to /messages; nginx redirects to /messages/.
    page.goto(deployed.url("/"))
    page.get_by_role("link", name="Inbox").click()
    page.wait_for_url(deployed.url("/messages/"))
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#me-name")).to_have_text("alice")
    # The stream goes through nginx's stream location and stays live (not polling).
    wait_live(page)
    # Everything the page loaded came from under /messages/ (relative URLs).
    page.wait_for_load_state("networkidle")
    alice.assert_no_problems()
    access = deployed.nginx.access_log_text()
    assert '"GET /static/' not in access, access
    assert '"GET /api/' not in access, access
    # No demo sign-out link against a real WhiteBalloon.
    expect(page.locator("#sign-out")).to_be_hidden()


@pytest.mark.browser
def test_two_members_talk_live_and_a_reload_keeps_the_conversation(
    deployed: Site, members: Any
) -> None:
    alice = members("alice").sign_in()
    bob = members("bob").sign_in()
    alice.open_messages()
    bob.open_messages()
    wait_live(alice.page)
    wait_live(bob.page)

    # alice starts the conversation from the picker; it reaches bob live.
    alice.page.get_by_role("button", name="New message").click()
    alice.page.locator("#picker-search").fill("bob")
    alice.page.locator("#picker-results .member-name", has_text="bob").click()
    expect(alice.page.locator("#thread-title")).to_have_text("bob")
    alice.page.locator("#composer-input").fill("Hi Bob, the ladder is yours on Sunday.")
    alice.page.keyboard.press("Enter")
    expect(alice.page.locator("#message-list .mine.sent .text")).to_have_text(
        ["Hi Bob, the ladder is yours on Sunday."]
    )
    bob.page.locator("#conversation-list a", has_text="alice").click()
    expect(bob.page.locator("#thread-title")).to_have_text("alice")
    expect(bob.page.locator("#message-list .theirs .text")).to_have_text(
        ["Hi Bob, the ladder is yours on Sunday."]
    )
    bob.page.locator("#composer-input").fill("Thanks! I'll come by at ten.")
    bob.page.get_by_role("button", name="Send").click()
    expect(alice.page.locator("#message-list .theirs .text")).to_have_text(
        ["Thanks! I'll come by at ten."]
    )

    # A reload keeps the open conversation: its URL is under the prefix.
    expect(bob.page).to_have_url(re.compile(re.escape(deployed.url("/messages/")) + r"#/c/\d+$"))
    conversation_url = bob.page.url
    bob.page.reload()
    expect(bob.page.locator("#thread-title")).to_have_text("alice")
    expect(bob.page).to_have_url(conversation_url)
    expect(bob.page.locator("#message-list .text")).to_have_text(
        ["Hi Bob, the ladder is yours on Sunday.", "Thanks! I'll come by at ten."]
    )
    wait_live(bob.page)
    # And it is still live after the reload.
    alice.page.locator("#composer-input").fill("See you then.")
    alice.page.keyboard.press("Enter")
    expect(bob.page.locator("#message-list .theirs .text").last).to_have_text("See you then.")
    alice.assert_no_problems()
    bob.assert_no_problems()


@pytest.mark.browser
def test_the_admin_works_the_moderation_page_under_the_prefix(deployed: Site, members: Any) -> None:
    hank = members("hank").sign_in()
    hank.page.goto(deployed.url("/messages/moderation"))
    expect(hank.page.get_by_text("Signed in as hank (admin).")).to_be_visible()
    expect(hank.page.locator("#tools")).to_be_visible()
    expect(hank.page.locator("#reports-empty")).to_be_visible()  # the queue loaded, empty
    hank.page.wait_for_load_state("networkidle")
    hank.assert_no_problems()

    alice = members("alice").sign_in()
    alice.expected_statuses.add(403)  # the API refuses her; the page says so
    alice.page.goto(deployed.url("/messages/moderation"))
    expect(alice.page.locator("#refused")).to_contain_text("Not allowed")
    expect(alice.page.locator("#tools")).to_be_hidden()


@pytest.mark.browser
def test_the_members_page_message_button_lands_in_the_conversation(
    deployed: Site, members: Any
) -> None:
    alice = members("alice").sign_in()
    page = alice.page
    page.goto(deployed.url("/members"))
    # WhiteBalloon's own button: a plain form posting `username` to /messages/direct.
    page.locator('.member-card[data-username="bob"]').get_by_role("button", name="Message").click()
    expect(page).to_have_url(re.compile(re.escape(deployed.url("/messages/")) + r"#/c/\d+$"))
    expect(page.locator("#thread-title")).to_have_text("bob")
    first = page.url
    page.locator("#composer-input").fill("Sent from the members page.")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list .mine.sent .text")).to_have_text(
        ["Sent from the members page."]
    )
    # The same button again opens the same conversation.
    page.goto(deployed.url("/members"))
    page.locator('.member-card[data-username="bob"]').get_by_role("button", name="Message").click()
    expect(page).to_have_url(first)
    expect(page.locator("#message-list .text")).to_have_text(["Sent from the members page."])
    page.wait_for_load_state("networkidle")
    alice.assert_no_problems()


@pytest.mark.browser
def test_signing_out_of_whiteballoon_ends_the_open_stream(deployed: Site, members: Any) -> None:
    bob = members("bob").sign_in()
    messages = bob.open_messages()
    wait_live(messages)
    bob.assert_no_problems()
    # From here on the gateway answers 401 to whatever the client still asks.
    bob.expected_statuses.add(401)

    home = bob.new_page()
    home.goto(deployed.url("/"))
    with home.expect_navigation():
        home.get_by_role("button", name="Sign out").click()
    signed_out_at = time.monotonic()
    assert deployed.wb.db.sessions_of("bob") == [], "WhiteBalloon must delete the session"

    expect(messages.get_by_role("heading", name="You're signed out")).to_be_visible(
        timeout=SIGN_OUT_SECONDS * 1000
    )
    took = time.monotonic() - signed_out_at
    assert took <= SIGN_OUT_SECONDS, f"the stream outlived the session by {took:.1f}s"
    expect(messages.locator("#app")).to_be_hidden()
    # The way back in is WhiteBalloon's sign-in page, on the same site.
    expect(messages.locator("#sign-in")).to_have_attribute("href", deployed.url("/login"))
    other = [p for p in bob.problems if "401" not in p]
    assert other == [], f"{other}\n{deployed.logs()}"


@pytest.mark.browser
def test_a_sign_in_waiting_for_approval_is_told_so(deployed: Site, members: Any) -> None:
    alice = members("alice").sign_in(approve=False)
    alice.expected_statuses.add(401)
    alice.page.goto(deployed.url("/messages/"))
    expect(alice.page.get_by_role("heading", name="You're signed out")).to_be_visible()
    expect(alice.page.locator("#signed-out-message")).to_contain_text("isn't finished")

    # Approved in WhiteBalloon, the same cookie now works.
    deployed.wb.approve("alice")
    alice.open_messages()
    expect(alice.page.locator("#me-name")).to_have_text("alice")


# ---- the proxy configuration, without a browser ---------------------------------------------


@contextmanager
def signed_in(s: Site, username: str, *, approve: bool = True) -> Iterator[httpx.Client]:
    """A client that signed in through WhiteBalloon's form, via nginx (approved there unless
    `approve` is false)."""
    with httpx.Client(base_url=s.url(""), timeout=10) as client:
        response = client.post("/login", data={"username": username})
        assert response.status_code == 303, response.text
        assert client.cookies.get(SESSION_COOKIE)
        if approve:
            s.wb.approve(username)
        yield client


def same_origin(s: Site) -> dict[str, str]:
    return {"Origin": s.nginx.origin, "Sec-Fetch-Site": "same-origin"}


def start_conversation(s: Site, client: httpx.Client, peer: str) -> httpx.Response:
    return client.post(
        "/messages/api/conversations",
        json={"peer_id": s.ids[peer], "origin": {"type": "inbox"}},
        headers=same_origin(s),
    )


@pytest.mark.parametrize(
    ("pass_host", "allow_public_origin", "allowed"),
    [
        pytest.param(True, False, True, id="shipped-conf"),
        pytest.param(False, False, False, id="no-host-header"),
        pytest.param(False, True, True, id="no-host-header-but-allowed-origin"),
    ],
)
def test_writes_need_the_browsers_host_or_an_allowed_origin(
    tmp_path: Path, pass_host: bool, allow_public_origin: bool, allowed: bool
) -> None:
    with (
        site(tmp_path, pass_host=pass_host, allow_public_origin=allow_public_origin) as s,
        signed_in(s, "alice") as alice,
    ):
        # Reads are not affected either way.
        me = alice.get("/messages/api/me")
        assert me.status_code == 200, me.text + s.nginx.log_text()
        assert me.json()["username"] == "alice"

        response = start_conversation(s, alice, "bob")
        legacy = alice.post("/messages/direct", data={"username": "bob"}, headers=same_origin(s))
        if allowed:
            assert response.status_code in (200, 201), response.text
            assert legacy.status_code == 303, legacy.text
            conversation_id = response.json()["conversation"]["id"]
            assert legacy.headers["location"] == f"./#/c/{conversation_id}"
        else:
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "cross_origin"
            assert legacy.status_code == 403, legacy.text


class Stream:
    """A member's event stream read line by line, frames with exactly the lines sent."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next_event(self, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        frame: dict[str, Any] = {}
        while time.monotonic() < deadline:
            line = next(self._lines)  # bounded by the client's read timeout
            if line == "":
                if "event" in frame:
                    return frame
                frame = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                frame[name] = value.removeprefix(" ")
        raise TimeoutError(f"no event within {within}s")


@contextmanager
def stream(client: httpx.Client, path: str = "/messages/api/stream") -> Iterator[Stream]:
    with client.stream("GET", path, timeout=httpx.Timeout(10, read=3)) as response:
        assert response.status_code == 200, response.read()
        yield Stream(response)


def test_the_stream_is_live_through_nginx_and_ends_at_sign_out(tmp_path: Path) -> None:
    with site(tmp_path) as s, signed_in(s, "alice") as alice, signed_in(s, "bob") as bob:
        conversation = start_conversation(s, alice, "bob").json()["conversation"]
        with stream(bob) as events:
            assert events.response.headers["content-type"].startswith("text/event-stream")
            # Unbuffered: the first event arrives at once, not when a buffer fills.
            hello = events.next_event(within=2)
            assert hello["event"] == "hello"
            sent = alice.post(
                f"/messages/api/conversations/{conversation['id']}/messages",
                json={"body": "through nginx"},
                headers=same_origin(s),
            )
            assert sent.status_code == 201, sent.text
            while (event := events.next_event(within=2))["event"] != "message":
                pass
            assert json.loads(event["data"])["body"] == "through nginx"

            # bob signs out of WhiteBalloon; his open stream ends with `closed`.
            old_session = bob.cookies[SESSION_COOKIE]
            assert bob.post("/logout").status_code == 303
            started = time.monotonic()
            while (event := events.next_event(within=SIGN_OUT_SECONDS + 1))["event"] != "closed":
                pass
            assert time.monotonic() - started <= SIGN_OUT_SECONDS
            assert json.loads(event["data"]) == {"reason": "signed_out"}
            assert "id" not in event, "a closed event must not move the client's cursor"
        # Polling with the ended session is refused too: the gateway itself said it ended.
        polled = httpx.get(
            s.url("/messages/api/events"), cookies={SESSION_COOKIE: old_session}, timeout=10
        )
        assert polled.status_code == 401, polled.text


def test_pending_sign_in_metrics_and_the_trailing_slash(tmp_path: Path) -> None:
    with site(tmp_path) as s, signed_in(s, "alice", approve=False) as alice:
        pending = alice.get("/messages/api/me")
        assert pending.status_code == 401, pending.text
        assert pending.json()["error"]["code"] == "unauthenticated"
        assert "isn't finished" in pending.json()["error"]["message"]

        instance = httpx.get(s.url("/messages/api/instance"), timeout=10)
        assert instance.status_code == 200, instance.text
        assert instance.json() == {"demo_mode": False, "sign_in_url": "/login"}

        # /messages is WhiteBalloon's Inbox link; nginx sends it to the gateway's page.
        bare = httpx.get(s.url("/messages"), timeout=10)
        assert bare.status_code == 301
        assert bare.headers["location"] == "/messages/"
        page = httpx.get(s.url("/messages/"), timeout=10)
        assert page.status_code == 200
        assert "static/app.js" in page.text
        # Metrics are for operators: refused by nginx, served by the gateway directly.
        assert httpx.get(s.url("/messages/metrics"), timeout=10).status_code == 403
        assert httpx.get(s.url("/messages/metrics?x=1"), timeout=10).status_code == 403
        assert httpx.get(s.gateway.url("/metrics"), timeout=10).status_code == 200


def test_root_path_variant_passes_the_path_unchanged(tmp_path: Path) -> None:
    with (
        site(tmp_path, root_path=True) as s,
        signed_in(s, "alice") as alice,
        signed_in(s, "bob") as bob,
    ):
        page = alice.get("/messages/")
        assert page.status_code == 200, page.text
        assert "static/app.js" in page.text
        assert alice.get("/messages/static/app.js").status_code == 200
        assert alice.get("/messages/api/me").json()["username"] == "alice"
        legacy = alice.post("/messages/direct", data={"username": "bob"}, headers=same_origin(s))
        assert legacy.status_code == 303, legacy.text
        assert re.fullmatch(r"\./#/c/\d+", legacy.headers["location"])
        conversation_id = int(legacy.headers["location"].rsplit("/", 1)[1])
        with stream(bob) as events:
            assert events.next_event(within=2)["event"] == "hello"
            sent = alice.post(
                f"/messages/api/conversations/{conversation_id}/messages",
                json={"body": "with the prefix"},
                headers=same_origin(s),
            )
            assert sent.status_code == 201, sent.text
            while (event := events.next_event(within=2))["event"] != "message":
                pass
            assert json.loads(event["data"])["body"] == "with the prefix"
        assert httpx.get(s.url("/messages/metrics"), timeout=10).status_code == 403
