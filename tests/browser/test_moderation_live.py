"""The moderator page's live queue in a real Chromium: it polls the (unaudited) summary, loads
the (audited) queue once per change, counts open reports in the title, puts safety reports
first, and notifies of each new report when the moderator opted in (permission granted or
denied by the browser)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import test_moderation_page as page_tests
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.test_moderation_page import ADMIN, ALICE, BOB, MOD, api
from tests.support.localserver import LocalGateway

pytestmark = pytest.mark.browser

# The same gateway (a main-app directory with a moderator and an admin) and reported thread.
gateway = page_tests.gateway
reported = page_tests.reported

POLL_MS = 150
SUMMARY = "**/api/moderation/reports/summary"

# Records notifications and permission requests, and lets a test say whether the page is in
# front, which a headless browser can't show by itself (as in test_member_experience.py).
PROBE = f"""
window.WB_MODERATION_OPTIONS = {{ pollMs: {POLL_MS} }};
(() => {{
  window.__front = {{ visible: true, focused: true }};
  window.__notes = [];
  window.__asked = 0;
  Object.defineProperty(Document.prototype, "visibilityState", {{
    configurable: true, get() {{ return window.__front.visible ? "visible" : "hidden"; }} }});
  Document.prototype.hasFocus = function () {{ return window.__front.focused; }};
  const Real = window.Notification;
  if (!Real) return;
  class Recorded extends Real {{
    constructor(title, options) {{
      super(title, options);
      window.__notes.push({{ title, body: options?.body, tag: options?.tag,
        requireInteraction: Boolean(options?.requireInteraction), note: this }});
    }}
    static requestPermission(...args) {{
      window.__asked += 1;
      return Real.requestPermission(...args);
    }}
  }}
  window.Notification = Recorded;
}})();
"""


def open_live(browser: Any, gw: LocalGateway, *, grant: bool) -> tuple[Any, Any, list[str]]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    if grant:
        context.grant_permissions(["notifications"], origin=gw.base_url)
    context.add_cookies([{"name": "wb_session", "value": gw.cookie_for(MOD), "url": gw.base_url}])
    context.add_init_script(PROBE)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(gw.url("/moderation"))
    page.get_by_text("Signed in as mod (moderator).").wait_for()
    return context, page, problems


def file_report(
    gw: LocalGateway, reporter: int, conversation_id: int, body: str, category: str
) -> int:
    """`reporter`'s peer sends `body`; `reporter` reports it. Returns the report's id.
    (A member may file 5 reports in a short time: spread them over alice and bob.)"""
    peer = BOB if reporter == ALICE else ALICE
    with api(gw, peer) as sender, api(gw, reporter) as client:
        sent = sender.post(f"/api/conversations/{conversation_id}/messages", json={"body": body})
        message_id = sent.json()["message"]["id"]
        filed = client.post(
            "/api/reports",
            json={
                "conversation_id": conversation_id,
                "message_id": message_id,
                "category": category,
                "note": f"about: {body}",
            },
        )
        assert filed.status_code == 201, filed.text
        return int(filed.json()["report"]["id"])


def queue_views(gw: LocalGateway) -> int:
    """How often the moderator's page loaded (and the audit log recorded) a reports queue."""
    with api(gw, ADMIN) as admin:
        entries = admin.get("/api/moderation/audit", params={"limit": 200}).json()["entries"]
    return sum(1 for e in entries if e["action"] == "reports_viewed" and e["actor_id"] == MOD)


def wait_polls(page: Any, counter: list[int], n: int = 4) -> None:
    """Let the page poll the summary `n` more times."""
    target = counter[0] + n
    deadline = TIMEOUT_MS / 1000
    start = page.evaluate("performance.now()")
    while counter[0] < target:
        page.wait_for_timeout(POLL_MS / 2)
        if (page.evaluate("performance.now()") - start) / 1000 > deadline:
            raise AssertionError(f"the page polled {counter[0]} times, expected {target}")


def count_summaries(page: Any) -> list[int]:
    counter = [0]

    def seen(request: Any) -> None:
        if request.url.endswith("/api/moderation/reports/summary"):
            counter[0] += 1

    page.on("request", seen)
    return counter


def test_the_open_queue_updates_live_with_one_audited_load_per_change(
    browser: Any, gateway: LocalGateway, reported: dict[str, int]
) -> None:
    cid = reported["conversation_id"]
    context, page, problems = open_live(browser, gateway, grant=False)
    try:
        polls = count_summaries(page)
        expect(page.locator(".report")).to_have_count(1)
        expect(page).to_have_title("(1) WhiteBalloon moderation")
        expect(page.locator("#queue-summary")).to_have_text("1 open report.")
        wait_polls(page, polls)
        assert queue_views(gateway) == 1  # polling the summary is not a view of the queue

        safety = file_report(gateway, ALICE, cid, "I know where you live", "safety")
        expect(page.locator(".report")).to_have_count(2)
        # Safety first, marked as such, whatever its age.
        first = page.locator(".report").first
        expect(first).to_have_attribute("data-report-id", str(safety))
        expect(first).to_have_class(re.compile(r"\bsafety\b"))
        expect(first.locator(".safety-badge")).to_have_text("Safety")
        expect(page).to_have_title("(2 · 1 safety) WhiteBalloon moderation")
        expect(page.locator("#queue-summary")).to_have_text("2 open reports, 1 about safety.")
        wait_polls(page, polls)
        assert queue_views(gateway) == 2

        other = file_report(gateway, ALICE, cid, "buy my course", "spam")
        expect(page.locator(".report")).to_have_count(3)
        ids = page.locator(".report").evaluate_all("els => els.map(e => e.dataset.reportId)")
        assert ids[0] == str(safety)
        assert ids[-1] == str(other)
        expect(page).to_have_title("(3 · 1 safety) WhiteBalloon moderation")
        wait_polls(page, polls)
        assert queue_views(gateway) == 3

        # Resolved elsewhere (another moderator): the queue follows, once.
        with api(gateway, ADMIN) as admin:
            done = admin.post(
                f"/api/moderation/reports/{safety}/resolve", json={"resolution": "ok"}
            )
            assert done.status_code == 200
        expect(page.locator(".report")).to_have_count(2)
        expect(page).to_have_title("(2) WhiteBalloon moderation")
        wait_polls(page, polls)
        assert queue_views(gateway) == 4

        # Resolving here reloads the queue once, not a second time at the next poll.
        report = page.locator(f'.report[data-report-id="{other}"]')
        report.locator("input[name=resolution]").fill("removed")
        report.get_by_role("button", name="Resolve").click()
        expect(page.locator(".report")).to_have_count(1)
        expect(page).to_have_title("(1) WhiteBalloon moderation")
        wait_polls(page, polls)
        assert queue_views(gateway) == 5
        assert not problems, problems
    finally:
        context.close()


def notes(page: Any) -> list[dict[str, Any]]:
    return list(
        page.evaluate(
            "window.__notes.map(({title, body, tag, requireInteraction}) =>"
            " ({title, body, tag, requireInteraction}))"
        )
    )


def set_front(page: Any, *, visible: bool, focused: bool) -> None:
    page.evaluate(f"window.__front = {json.dumps({'visible': visible, 'focused': focused})}")


def test_notifications_announce_each_new_report_safety_first_when_granted(
    browser: Any, gateway: LocalGateway, reported: dict[str, int]
) -> None:
    cid = reported["conversation_id"]
    context, page, problems = open_live(browser, gateway, grant=True)
    try:
        button = page.locator("#notify")
        expect(button).to_be_visible()
        expect(button).to_have_attribute("aria-pressed", "false")
        expect(page.locator(".report")).to_have_count(1)
        # Not opted in: nothing asked on load, nothing shown.
        set_front(page, visible=False, focused=False)
        file_report(gateway, ALICE, cid, "first, unannounced", "other")
        expect(page.locator(".report")).to_have_count(2)
        assert notes(page) == []
        assert page.evaluate("window.__asked") == 0

        set_front(page, visible=True, focused=True)
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(button).to_have_text("Notifications on")
        set_front(page, visible=False, focused=False)

        # Two reports arrive between two polls: one notification each, safety first.
        page.route(SUMMARY, lambda route: route.abort())
        spam = file_report(gateway, ALICE, cid, "cheap watches", "spam")
        safety = file_report(gateway, ALICE, cid, "I will hurt you", "safety")
        page.unroute(SUMMARY)
        page.wait_for_function("() => window.__notes.length === 2")
        first, second = notes(page)
        assert first["title"] == f"Safety report #{safety}: someone may be in danger"
        assert first["requireInteraction"] is True
        assert first["body"] == "alice reported bob: about: I will hurt you"
        assert second["title"] == f"New spam report #{spam}"
        assert second["requireInteraction"] is False
        expect(page.locator(".report")).to_have_count(4)
        page.wait_for_timeout(POLL_MS * 4)
        assert len(notes(page)) == 2  # once per report, not per poll

        # In front: the queue and the title say it; no notification.
        set_front(page, visible=True, focused=True)
        file_report(gateway, BOB, cid, "seen on screen", "harassment")
        expect(page.locator(".report")).to_have_count(5)
        assert len(notes(page)) == 2

        # Clicking a notification brings the report into view and focus.
        page.select_option("#report-status", "resolved")
        expect(page.locator("#reports-empty")).to_be_visible()
        page.evaluate("window.__notes[1].note.dispatchEvent(new Event('click'))")
        expect(page.locator(f'.report[data-report-id="{spam}"]')).to_be_focused()
        expect(page.locator("#report-status")).to_have_value("open")

        # The choice is remembered across a reload, without asking again.
        page.reload()
        expect(page.locator(".report")).to_have_count(5)
        expect(button).to_have_attribute("aria-pressed", "true")
        set_front(page, visible=False, focused=False)
        later = file_report(gateway, BOB, cid, "after the reload", "other")
        page.wait_for_function("() => window.__notes.length === 1")
        assert notes(page)[0]["title"] == f"New other report #{later}"
        assert page.evaluate("window.__asked") == 0

        # Turned off: nothing more.
        set_front(page, visible=True, focused=True)
        button.click()
        expect(button).to_have_attribute("aria-pressed", "false")
        set_front(page, visible=False, focused=False)
        file_report(gateway, BOB, cid, "after opting out", "other")
        expect(page.locator(".report")).to_have_count(7)
        page.wait_for_timeout(POLL_MS * 3)
        assert len(notes(page)) == 1
        assert not problems, problems
    finally:
        context.close()


def test_notifications_denied_by_the_browser_are_explained_not_shown(
    browser: Any, gateway: LocalGateway, reported: dict[str, int]
) -> None:
    cid = reported["conversation_id"]
    context, page, problems = open_live(browser, gateway, grant=False)
    try:
        button = page.locator("#notify")
        expect(page.locator(".report")).to_have_count(1)
        assert page.evaluate("window.__asked") == 0
        button.click()  # the browser refuses: no permission was granted to this context
        expect(page.locator("#notify-status")).to_contain_text(
            "Notifications are blocked for this site"
        )
        expect(button).to_have_attribute("aria-pressed", "false")
        expect(button).to_have_text("Notifications blocked")
        assert page.evaluate("window.__asked") == 1  # asked once, from the click
        set_front(page, visible=False, focused=False)
        file_report(gateway, ALICE, cid, "nobody is told", "safety")
        expect(page.locator(".report")).to_have_count(2)
        page.wait_for_timeout(POLL_MS * 3)
        assert notes(page) == []
        assert not problems, problems
    finally:
        context.close()


def test_a_summary_that_says_signed_out_stops_the_polling(
    browser: Any, gateway: LocalGateway, reported: dict[str, int]
) -> None:
    context, page, _ = open_live(browser, gateway, grant=False)
    try:
        polls = count_summaries(page)
        expect(page.locator(".report")).to_have_count(1)
        context.clear_cookies()
        expect(page.locator("#refused")).to_contain_text("no longer signed in")
        expect(page.locator("#tools")).to_be_hidden()
        expect(page).to_have_title("WhiteBalloon moderation")
        seen = polls[0]
        page.wait_for_timeout(POLL_MS * 4)
        assert polls[0] == seen
    finally:
        context.close()


def test_summary_polling_is_not_audited(gateway: LocalGateway, reported: dict[str, int]) -> None:
    with httpx.Client(
        base_url=gateway.base_url, cookies={"wb_session": gateway.cookie_for(MOD)}, timeout=10
    ) as mod:
        for _ in range(3):
            assert mod.get("/api/moderation/reports/summary").status_code == 200
    assert queue_views(gateway) == 0
