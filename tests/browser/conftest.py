"""Fixtures for the browser tests: the system Chromium driven by Playwright, a real gateway
under Hypercorn in demo mode per test, signed-in browser contexts and API clients, and
axe-core for the accessibility scans."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.demo import DEMO_MEMBERS
from tests.support.localserver import LocalGateway

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The demo directory the gateway seeds in demo mode: username -> user id.
DEMO = {member.username: member.user_id for member in DEMO_MEMBERS}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every wait in these tests is bounded; a broken client fails fast instead of hanging.
TIMEOUT_MS = 10_000


def find_chromium() -> str | None:
    for candidate in (
        os.environ.get("WB_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
        "/usr/bin/chromium",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = find_chromium()
    if executable is None:
        reason = "no Chromium found (install Debian's `chromium` package or set WB_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests, not skip them")
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    sync_api.expect.set_options(timeout=TIMEOUT_MS)  # assertions wait as long as actions
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def start_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> LocalGateway:
    # Demo mode: the seeded members and /demo/login exist only without WB_APP_DB.
    monkeypatch.delenv("WB_APP_DB", raising=False)
    return LocalGateway(tmp_path / "gateway", workers=1, env=env).start()


@pytest.fixture
def gateway_env() -> dict[str, str]:
    """Extra gateway settings; a test overrides it with @pytest.mark.parametrize."""
    return {}


@pytest.fixture
def gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway_env: dict[str, str]
) -> Iterator[LocalGateway]:
    gw = start_gateway(tmp_path, monkeypatch, **gateway_env)
    try:
        yield gw
    finally:
        gw.stop()


class Member:
    """One signed-in member: a browser page on the gateway and an API client beside it."""

    def __init__(self, gw: LocalGateway, context: Any, name: str) -> None:
        self.name = name
        self.user_id = DEMO[name]
        self.context = context
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # The page runs under a strict CSP; anything it refuses is a client bug.
        self.page.on(
            "console",
            lambda message: (
                self.errors.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        self.api = httpx.Client(
            base_url=gw.base_url,
            cookies={"wb_session": gw.cookie_for(self.user_id)},
            headers={"Origin": gw.base_url},
            timeout=10,
        )

    def open(self, path: str = "/") -> Member:
        self.page.goto(self.page_url(path))
        self.page.locator("#app").wait_for(state="visible")
        return self

    def page_url(self, path: str) -> str:
        return str(self.api.base_url).rstrip("/") + path

    def conversation_with(self, peer: str) -> dict[str, Any]:
        response = self.api.post(
            "/api/conversations", json={"peer_id": DEMO[peer], "origin": {"type": "inbox"}}
        )
        assert response.status_code in (200, 201), response.text
        return response.json()["conversation"]

    def send(self, conversation_id: int, body: str) -> dict[str, Any]:
        response = self.api.post(
            f"/api/conversations/{conversation_id}/messages", json={"body": body}
        )
        assert response.status_code == 201, response.text
        return response.json()["message"]

    def close(self) -> None:
        self.api.close()
        self.context.close()


@pytest.fixture
def sign_in(browser: Any, gateway: LocalGateway) -> Iterator[Callable[..., Member]]:
    """sign_in("alice") -> a Member whose browser context carries alice's session cookie."""
    members: list[Member] = []

    def make(name: str, *, init_script: str | None = None, **context_options: Any) -> Member:
        context = browser.new_context(
            **{"viewport": {"width": 1100, "height": 720}, **context_options}
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.add_cookies(
            [
                {
                    "name": "wb_session",
                    "value": gateway.cookie_for(DEMO[name]),
                    "url": gateway.base_url,
                }
            ]
        )
        if init_script:
            context.add_init_script(init_script)
        member = Member(gateway, context, name)
        members.append(member)
        return member

    yield make
    for member in members:
        member.close()
    for member in members:
        assert member.errors == [], f"uncaught errors in {member.name}'s page: {member.errors}"


def open_thread(member: Member, peer: str) -> None:
    """Open the conversation with `peer` from the inbox and wait until its messages loaded."""
    from playwright.sync_api import expect

    member.page.locator("#conversation-list a", has_text=peer).click()
    expect(member.page.locator("#thread-title")).to_have_text(peer)
    expect(member.page.locator("#thread-body")).not_to_have_attribute("aria-busy", "true")


def wait_live(page: Any, timeout: float = TIMEOUT_MS) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=timeout)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def axe_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """axe-core from the npm registry, installed once per test session into a cache dir."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("npm is needed to install axe-core; CI must run the accessibility scan")
        pytest.skip("npm is not installed: can't install axe-core for the accessibility scan")
    cache = tmp_path_factory.mktemp("axe-core")
    result = subprocess.run(
        [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "axe-core@4"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if result.returncode != 0 or not script.exists():
        message = f"npm could not install axe-core: {result.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return script
