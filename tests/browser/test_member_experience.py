"""Issue 12 in a real Chromium: the phone inbox fits its screen, right-to-left text, honest
connection state and quick reconnects, the outbox that resends, accessibility (axe-core),
report buttons, times and date separators, the unread divider, and notifications."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.axe import assert_no_violations
from tests.browser.conftest import DEMO, open_thread, wait_live
from tests.support.localserver import LocalGateway

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
LONG = (
    "Could you bring the long extension ladder, the blue tarpaulin and the box of spare "
    "screws from the shed when you come over on Sunday morning before the market opens?"
)
UNBROKEN = "https://example.org/" + "a-very-long-path-segment-without-spaces" * 4


def state(page: Page) -> Any:
    return page.locator("#connection")


# ---- 1. the phone inbox fits its screen --------------------------------------------------


def test_phone_inbox_with_long_previews_does_not_scroll_sideways(sign_in: Any) -> None:
    alice = sign_in("alice", **PHONE)
    for peer, body in (("bob", LONG), ("carol", UNBROKEN), ("erin", LONG + " " + UNBROKEN)):
        member = sign_in(peer)
        member.send(member.conversation_with("alice")["id"], body)
    alice.open()
    page = alice.page
    expect(page.locator("#conversation-list li")).to_have_count(3)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the inbox is {width}px wide in a 390px screen"
    for locator in (
        page.get_by_role("button", name="New message"),
        page.locator("#conversation-list .badge").first,
        page.locator("#conversation-list .conversation-time").first,
    ):
        box = locator.bounding_box()
        assert box is not None
        assert box["x"] >= 0, f"off-screen: {box}"
        assert box["x"] + box["width"] <= 390, f"off-screen: {box}"
    # Previews are cut to one line with an ellipsis, not wrapped or overflowing.
    preview = page.locator("#conversation-list .conversation-preview").first
    assert preview.evaluate("el => el.scrollWidth > el.clientWidth")
    # The signed-in member's name is shown on phones too.
    expect(page.locator("#me-name")).to_be_visible()
    # The open thread fits as well.
    open_thread(alice, "erin")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the thread is {width}px wide in a 390px screen"


# ---- 2. right-to-left text ---------------------------------------------------------------

HEBREW = "שלום, האם הסולם עדיין פנוי?"
ARABIC = "مرحبا، هل السلم متاح؟"


def direction(locator: Any) -> str:
    return str(locator.evaluate("el => getComputedStyle(el).direction"))


def test_right_to_left_text_is_laid_out_right_to_left(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    bob.send(conversation["id"], "Hello in English first")
    bob.send(conversation["id"], HEBREW)
    alice.open()
    page = alice.page
    preview = page.locator("#conversation-list .conversation-preview").first
    expect(preview).to_contain_text(HEBREW)
    assert direction(preview) == "rtl"
    open_thread(alice, "bob")
    bubbles = page.locator("#message-list .text")
    expect(bubbles).to_have_text(["Hello in English first", HEBREW])
    assert direction(bubbles.nth(0)) == "ltr"
    assert direction(bubbles.nth(1)) == "rtl"
    box = page.locator("#composer-input")
    box.fill(ARABIC)
    assert direction(box) == "rtl"
    page.keyboard.press("Enter")
    expect(page.locator("#message-list .mine.sent .text")).to_have_text([ARABIC])
    assert direction(page.locator("#message-list .mine.sent .text")) == "rtl"
    # One's own RTL preview keeps "You: " in front and the text right to left.
    expect(preview).to_have_text(f"You: {ARABIC}")
    assert direction(preview.locator("bdi")) == "rtl"


# ---- 3. connection state ------------------------------------------------------------------


OUTBOX_OF_ALICE = f"localStorage.getItem('wb-outbox:{DEMO['alice']}')"


def stored_bodies(member: Any, conversation_id: int) -> list[str]:
    response = member.api.get(f"/api/conversations/{conversation_id}/messages")
    return [m["body"] for m in response.json()["messages"]]


def restart_on_the_same_port(gw: LocalGateway, down_seconds: float) -> float:
    """Stop the gateway, wait, start it again where the page expects it; when it is healthy."""
    port = gw.port
    gw.stop()
    time.sleep(down_seconds)
    gw.start(port=port)
    return time.monotonic()


def test_browser_offline_shows_offline_and_online_reconnects_at_once(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    wait_live(page)
    alice.context.set_offline(True)
    expect(state(page)).to_have_attribute("data-state", "offline", timeout=2_000)
    expect(page.locator("#connection-label")).to_have_text("Offline")
    # A message written offline waits in the outbox, saying why.
    page.locator("#composer-input").fill("written on the train")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list li.waiting .status")).to_have_text(
        "Not sent yet: you're offline. It will be sent when you're back online."
    )
    time.sleep(1)
    expect(state(page)).to_have_attribute("data-state", "offline")
    assert stored_bodies(bob, conversation["id"]) == []

    back = time.monotonic()
    alice.context.set_offline(False)
    wait_live(page, timeout=3_000)  # at once, not after a scheduled attempt
    assert time.monotonic() - back < 3
    expect(page.locator("#message-list li.mine.sent .text")).to_have_text(["written on the train"])
    assert stored_bodies(bob, conversation["id"]) == ["written on the train"]


def test_server_outage_shows_reconnecting_and_resends_the_outbox_when_back(
    sign_in: Any, gateway: LocalGateway
) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    bob.send(conversation["id"], "are you there?")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    wait_live(page)
    states: list[str] = []
    page.expose_function("recordState", lambda s: states.append(s))
    page.evaluate(
        """() => new MutationObserver(() =>
             window.recordState(document.getElementById('connection').dataset.state))
           .observe(document.getElementById('connection'), {attributes: true})"""
    )

    port = gateway.port
    gateway.stop()
    expect(state(page)).to_have_attribute("data-state", "reconnecting", timeout=3_000)
    expect(page.locator("#connection-label")).to_have_text("Reconnecting…")
    for body in ("first, while the server is down", "second", "third"):
        page.locator("#composer-input").fill(body)
        page.keyboard.press("Enter")
    waiting = page.locator("#message-list li.waiting")
    expect(waiting).to_have_count(3)
    expect(waiting.first.locator(".status")).to_contain_text("can't reach the server")
    # Kept on the device, for this member only.
    saved = page.evaluate(OUTBOX_OF_ALICE)
    assert saved
    assert "first, while the server is down" in saved

    gateway.port = port
    healthy_at = restart_on_the_same_port(gateway, down_seconds=8)
    # Attempts are capped at a few seconds: back to Live soon after the server is.
    wait_live(page, timeout=8_000)
    assert time.monotonic() - healthy_at < 7, "reconnecting took too long"
    assert "live" not in states[: states.index("reconnecting") + 1][1:], states
    # Sent as soon as the page is Live again, not at the outbox's next retry.
    expect(page.locator("#message-list li.mine.sent .text")).to_have_text(
        ["first, while the server is down", "second", "third"], timeout=2_000
    )
    assert stored_bodies(bob, conversation["id"]) == [
        "are you there?",
        "first, while the server is down",
        "second",
        "third",
    ]
    assert page.evaluate(OUTBOX_OF_ALICE) is None


def test_reconnect_waits_are_capped_and_jittered(sign_in: Any) -> None:
    alice = sign_in("alice").open()
    waits = alice.page.evaluate(
        """async () => {
             const { backoff, DEFAULTS } = await import('./static/live.js');
             const out = [];
             for (let n = 0; n < 200; n++) {
               out.push(backoff(DEFAULTS.pollErrorDelaysMs, n % 8, DEFAULTS));
               out.push(backoff([60000], 0, DEFAULTS));
             }
             return out;
           }"""
    )
    assert max(waits) <= 4000, "no wait for the server is longer than a few seconds"
    assert len(set(waits)) > 50, "waits are jittered, so tabs don't return all at once"


# ---- 4. the outbox ---------------------------------------------------------------------------

MESSAGES_ROUTE = "**/api/conversations/*/messages"


def test_outbox_survives_a_reload_and_resends_in_order_with_the_same_client_ids(
    sign_in: Any,
) -> None:
    alice = sign_in("alice")
    conversation = alice.conversation_with("bob")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    posts: list[dict[str, Any]] = []

    def refuse(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        posts.append(json.loads(route.request.post_data or "{}"))
        route.abort()

    page.route(MESSAGES_ROUTE, refuse)
    for body in ("one", "two", "three"):
        page.locator("#composer-input").fill(body)
        page.keyboard.press("Enter")
    expect(page.locator("#message-list li.waiting")).to_have_count(3)
    saved = json.loads(page.evaluate(OUTBOX_OF_ALICE))
    first_ids = {item["body"]: item["clientId"] for item in saved}
    assert [item["body"] for item in saved] == ["one", "two", "three"]
    assert posts[0]["client_id"] == first_ids["one"]

    page.reload()  # the URL names the conversation: it opens with its unsent messages
    page.locator("#app").wait_for(state="visible")
    expect(page.locator("#message-list li.waiting .text")).to_have_text(["one", "two", "three"])
    # Listen before the route goes: the outbox's own retry timer may send at any moment.
    sent: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: (
            sent.append(json.loads(r.post_data or "{}"))
            if r.method == "POST" and r.url.endswith("/messages")
            else None
        ),
    )
    page.unroute(MESSAGES_ROUTE)
    # Back online: the outbox goes at once, in order, with the client_ids it had.
    alice.context.set_offline(True)
    alice.context.set_offline(False)
    expect(page.locator("#message-list li.mine.sent .text")).to_have_text(["one", "two", "three"])
    assert stored_bodies(alice, conversation["id"]) == ["one", "two", "three"]
    assert {p["body"]: p["client_id"] for p in sent} == first_ids
    assert page.evaluate(OUTBOX_OF_ALICE) is None


def test_a_failed_send_says_why(sign_in: Any) -> None:
    alice = sign_in("alice")
    conversation = alice.conversation_with("bob")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    post_times: list[float] = []

    def rate_limited_once(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        post_times.append(time.monotonic())
        if len(post_times) > 1:
            route.continue_()
            return
        route.fulfill(
            status=429,
            headers={"Retry-After": "2"},
            content_type="application/json",
            body=json.dumps(
                {"error": {"code": "rate_limited", "message": "Slow down: try again in 2 s."}}
            ),
        )

    page.route(MESSAGES_ROUTE, rate_limited_once)
    page.locator("#composer-input").fill("slow down")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list li.waiting .status")).to_have_text(
        "Not sent yet: too many messages at once. Trying again in 2 s."
    )
    expect(page.locator("#message-list li.mine.sent .text")).to_have_text(["slow down"])
    assert post_times[1] - post_times[0] >= 1.8, "resent before Retry-After"
    page.unroute(MESSAGES_ROUTE)

    # Refused for good: the reason, Retry and Delete; later messages still go.
    page.route(
        MESSAGES_ROUTE,
        lambda route: (
            route.fulfill(
                status=400,
                content_type="application/json",
                body=json.dumps(
                    {
                        "error": {
                            "code": "invalid_body",
                            "message": "A message is 1 to 4,000 characters.",
                        }
                    }
                ),
            )
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.locator("#composer-input").fill("refused")
    page.keyboard.press("Enter")
    failed = page.locator("#message-list li.failed")
    expect(failed.locator(".status")).to_have_text("Not sent: A message is 1 to 4,000 characters.")
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    page.unroute(MESSAGES_ROUTE)
    page.locator("#composer-input").fill("after the refusal")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list li.mine.sent .text")).to_have_text(
        ["slow down", "after the refusal"]
    )
    failed.get_by_role("button", name="Delete").click()
    expect(page.locator("#message-list li.failed")).to_have_count(0)
    assert stored_bodies(alice, conversation["id"]) == ["slow down", "after the refusal"]


def test_signing_out_clears_the_stored_outbox(sign_in: Any) -> None:
    alice = sign_in("alice")
    alice.conversation_with("bob")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    page.route(
        MESSAGES_ROUTE,
        lambda route: route.abort() if route.request.method == "POST" else route.continue_(),
    )
    page.locator("#composer-input").fill("private words")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list li.waiting")).to_have_count(1)
    assert page.evaluate(OUTBOX_OF_ALICE)
    page.get_by_role("link", name="Switch member").click()
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('wb-outbox'))") == []


# ---- 5. accessibility: axe-core on the main page states -----------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_violations_on_the_main_page_states(
    sign_in: Any, browser: Any, gateway: LocalGateway, axe_script: Path, scheme: str
) -> None:
    # The page's CSP forbids inline scripts, axe's included: only the test may bypass it.
    context = browser.new_context(bypass_csp=True, color_scheme=scheme)
    try:
        signed_out = context.new_page()
        signed_out.goto(gateway.base_url + "/")
        expect(signed_out.get_by_role("heading", name="You're signed out")).to_be_visible()
        expect(signed_out.locator("#demo-members a")).not_to_have_count(0)
        assert_no_violations(signed_out, axe_script, "the signed-out page")
    finally:
        context.close()

    alice = sign_in("alice", bypass_csp=True, color_scheme=scheme)
    bob = sign_in("bob")
    carol = sign_in("carol")
    with_bob = bob.conversation_with("alice")["id"]
    bob.send(with_bob, "Hi Alice! Are you still up for the seed swap?")
    bob.send(with_bob, "I can bring tomato seedlings. https://example.org/swap")
    carol.send(carol.conversation_with("alice")["id"], "Unread news from carol")
    alice.conversation_with("erin")
    alice.open()
    page = alice.page
    wait_live(page)
    expect(page.locator("#conversation-list li")).to_have_count(3)
    assert_no_violations(page, axe_script, "the inbox")

    open_thread(alice, "bob")
    page.locator("#composer-input").fill("Yes! See you at 10.")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list .mine.sent")).to_have_count(1)
    page.route(
        MESSAGES_ROUTE,
        lambda route: route.abort() if route.request.method == "POST" else route.continue_(),
    )
    page.locator("#composer-input").fill("this one waits")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list li.waiting")).to_have_count(1)
    page.locator("#conversation-list a", has_text="bob").hover()  # the selected row, hovered
    assert_no_violations(page, axe_script, "an open conversation")
    page.unroute(MESSAGES_ROUTE)

    page.get_by_role("button", name="New message").click()
    expect(page.get_by_role("dialog", name="New message")).to_be_visible()
    expect(page.locator("#picker-results .member-name")).not_to_have_count(0)
    assert_no_violations(page, axe_script, "the new-message picker")
    page.keyboard.press("Escape")

    page.locator("#message-list .theirs .report-button").first.focus()
    page.locator("#message-list .theirs .report-button").first.click()
    expect(page.get_by_role("dialog", name="Report message")).to_be_visible()
    assert_no_violations(page, axe_script, "the report dialog")
    page.keyboard.press("Escape")

    page.get_by_role("button", name="Block bob").click()
    expect(page.get_by_role("dialog", name="Block bob?")).to_be_visible()
    assert_no_violations(page, axe_script, "the block dialog")
    page.locator("#block-confirm").click()
    expect(page.locator("#safety-notice")).to_be_visible()
    assert_no_violations(page, axe_script, "a blocked conversation")

    alice.context.set_offline(True)
    expect(state(page)).to_have_attribute("data-state", "offline")
    assert_no_violations(page, axe_script, "offline")
    alice.context.set_offline(False)

    page.set_viewport_size({"width": 390, "height": 844})
    assert_no_violations(page, axe_script, "a conversation on a phone")
    page.get_by_role("button", name=re.compile("Back to conversations")).click()
    expect(page.locator(".inbox")).to_be_visible()
    assert_no_violations(page, axe_script, "the inbox on a phone")


# ---- 6. report buttons --------------------------------------------------------------------


def test_report_buttons_are_one_tab_stop_with_distinct_names(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    for n in range(30):
        bob.send(conversation["id"], f"note number {n:02d} about the ladder")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    buttons = page.locator("#message-list .report-button")
    expect(buttons).to_have_count(30)
    assert page.locator("#message-list .report-button[tabindex='0']").count() == 1
    names = buttons.evaluate_all("bs => bs.map(b => b.getAttribute('aria-label'))")
    assert len(set(names)) == 30, names[:3]
    assert names[0].startswith("Report message from bob, ")
    assert "note number 00 about the ladder" in names[0]

    # Once the read pointer has moved (the thread settles), keyboard navigation starts.
    expect(page).to_have_title("Messages · WhiteBalloon")
    # From the message list: one Tab to a Report button, the next to the composer.
    page.locator("#messages").focus()
    page.keyboard.press("Tab")
    expect(buttons.last).to_be_focused()
    expect(buttons.last).to_have_css("opacity", "1")
    # Reaching the newest message hides "New messages" (its button would be the next Tab stop).
    expect(page.locator("#jump-latest")).to_be_hidden()
    page.keyboard.press("ArrowUp")
    expect(buttons.nth(28)).to_be_focused()
    page.keyboard.press("Home")
    expect(buttons.first).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#composer-input")).to_be_focused()
    # Shift+Tab comes back to the one last used.
    page.keyboard.press("Shift+Tab")
    expect(buttons.first).to_be_focused()


@pytest.mark.parametrize("screen", ["phone", "desktop"])
def test_report_buttons_are_visible_without_hovering(sign_in: Any, screen: str) -> None:
    alice = sign_in("alice", **(PHONE if screen == "phone" else {}))
    bob = sign_in("bob")
    bob.send(bob.conversation_with("alice")["id"], "a message to report")
    alice.open()
    open_thread(alice, "bob")
    alice.page.mouse.move(0, 0)  # nowhere near the message
    button = alice.page.locator("#message-list .report-button")
    expect(button).to_be_visible()
    expect(button).to_have_css("opacity", "1")
    box = button.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= alice.page.viewport_size["width"]


# ---- 7. times, date separators, the unread divider ----------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_times_on_new_minutes_and_after_gaps_and_date_separators(sign_in: Any) -> None:
    alice = sign_in("alice", timezone_id="UTC")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    cid = conversation["id"]
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    two_days = today - timedelta(days=2)
    yesterday = today - timedelta(days=1)
    plan = [  # (sender, when, shows a time?)
        ("bob", two_days.replace(hour=9, minute=0, second=5), True),
        ("bob", two_days.replace(hour=9, minute=0, second=40), False),  # same minute
        ("bob", two_days.replace(hour=9, minute=20), True),  # after a gap
        ("bob", two_days.replace(hour=9, minute=21), True),  # a new minute
        ("alice", two_days.replace(hour=9, minute=21, second=30), True),  # another sender
        ("alice", yesterday.replace(hour=10, minute=0), True),  # a new day
    ]
    messages = [
        {
            "id": n + 1,
            "conversation_id": cid,
            "sender_id": DEMO[sender],
            "body": f"message {n}",
            "created_at": iso(when),
            "client_id": None,
        }
        for n, (sender, when, _) in enumerate(plan)
    ]
    alice.page.route(
        f"**/api/conversations/{cid}/messages?*",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"messages": messages, "has_more": False}),
        ),
    )
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    items = page.locator("#message-list li.message")
    expect(items).to_have_count(len(plan))
    shown = [item.locator("time").is_visible() for item in items.all()]
    assert shown == [expected for _, _, expected in plan]
    # A separator for each day, saying which day.
    days = page.locator("#message-list li.day-start")
    expect(days).to_have_count(2)
    assert days.nth(1).get_attribute("data-day") == "Yesterday"
    assert days.nth(0).evaluate("el => getComputedStyle(el, '::before').content") != "none"


def test_opening_a_conversation_starts_at_the_new_messages(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    for n in range(20):
        bob.send(conversation["id"], f"old news {n:02d}\nwith a second line")
    latest = alice.api.get(f"/api/conversations/{conversation['id']}/messages").json()
    alice.api.post(
        f"/api/conversations/{conversation['id']}/read",
        json={"message_id": latest["messages"][-1]["id"]},
    )
    for n in range(25):
        bob.send(conversation["id"], f"fresh news {n:02d}\nwith a second line")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    divider = page.locator("#message-list .unread-divider")
    expect(divider).to_have_text("25 new messages")
    expect(divider).to_be_in_viewport()
    expect(page.locator("#message-list .text", has_text="fresh news 00")).to_be_in_viewport()
    expect(page.locator("#message-list .text", has_text="fresh news 24")).not_to_be_in_viewport()
    # Only one divider, above the first unread message.
    first_unread = page.locator("#message-list li", has=page.locator(".unread-divider"))
    expect(first_unread.locator(".text")).to_contain_text("fresh news 00")


# ---- 8. notifications and the favicon badge -----------------------------------------------

# Records notifications and permission requests; lets a test say whether the page is in
# front (visible, focused), which a headless browser can't show by itself.
NOTIFICATION_PROBE = """
(() => {
  window.__front = { visible: true, focused: true };
  window.__notes = [];
  window.__asked = 0;
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get() { return window.__front.visible ? "visible" : "hidden"; } });
  Document.prototype.hasFocus = function () { return window.__front.focused; };
  const Real = window.Notification;
  if (!Real) return;
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notes.push({ title, body: options?.body, tag: options?.tag, note: this });
    }
    static requestPermission(...args) {
      window.__asked += 1;
      return Real.requestPermission(...args);
    }
  }
  window.Notification = Recorded;
})();
"""


def notes(page: Page) -> list[dict[str, Any]]:
    return page.evaluate("window.__notes.map(({title, body, tag}) => ({title, body, tag}))")


def set_front(page: Page, *, visible: bool, focused: bool) -> None:
    page.evaluate(
        f"window.__front = {{visible: {str(visible).lower()}, focused: {str(focused).lower()}}}"
    )


def test_notifications_opt_in_show_sender_and_open_the_conversation(sign_in: Any) -> None:
    alice = sign_in("alice", init_script=NOTIFICATION_PROBE)
    alice.context.grant_permissions(["notifications"])
    bob = sign_in("bob")
    carol = sign_in("carol")
    with_bob = bob.conversation_with("alice")["id"]
    with_carol = carol.conversation_with("alice")["id"]
    alice.open()
    page = alice.page
    wait_live(page)
    bell = page.locator("#notify")
    expect(bell).to_have_attribute("aria-pressed", "false")
    # Nothing before the member asks: no permission prompt on load, no notification.
    bob.send(with_bob, "before opting in")
    set_front(page, visible=False, focused=False)
    expect(page.locator("#conversation-list li", has_text="bob")).to_contain_text(
        "before opting in"
    )
    assert notes(page) == []
    assert page.evaluate("window.__asked") == 0
    set_front(page, visible=True, focused=True)
    bell.click()
    expect(bell).to_have_attribute("aria-pressed", "true")
    expect(bell).to_contain_text("Notifications on")

    open_thread(alice, "bob")
    # In front: no notification at all.
    carol.send(with_carol, "you're looking at the page")
    expect(page.locator("#conversation-list li", has_text="carol")).to_contain_text("looking")
    # Visible but another window has the focus: the open conversation is seen, carol's is not.
    set_front(page, visible=True, focused=False)
    bob.send(with_bob, "in the open conversation")
    expect(page.locator("#message-list .text").last).to_have_text("in the open conversation")
    carol.send(with_carol, "Are you coming to the swap? " + "x" * 200)
    page.wait_for_function("() => window.__notes.length === 1")
    note = notes(page)[0]
    assert note["title"] == "carol"
    assert note["body"].startswith("Are you coming to the swap?")
    assert len(note["body"]) <= 101
    # Hidden: the open conversation notifies too.
    set_front(page, visible=False, focused=False)
    bob.send(with_bob, "while the tab is hidden")
    page.wait_for_function("() => window.__notes.length === 2")
    assert notes(page)[1]["title"] == "bob"
    # The favicon carries a dot while something is unread.
    assert page.locator("link[rel=icon]").get_attribute("href") == "static/favicon-unread.svg"

    # Clicking carol's notification opens her conversation.
    set_front(page, visible=True, focused=True)
    page.evaluate("window.__notes[0].note.dispatchEvent(new Event('click'))")
    expect(page.locator("#thread-title")).to_have_text("carol")
    # Turned off again: nothing more.
    bell.click()
    expect(bell).to_have_attribute("aria-pressed", "false")
    set_front(page, visible=False, focused=False)
    bob.send(with_bob, "after opting out")
    expect(page.locator("#conversation-list li", has_text="bob")).to_contain_text("opting out")
    assert len(notes(page)) == 2
    assert page.evaluate("window.__asked") == 0  # granted already: nothing to ask


def test_notifications_denied_by_the_browser_are_explained_not_shown(sign_in: Any) -> None:
    alice = sign_in("alice", init_script=NOTIFICATION_PROBE)
    bob = sign_in("bob")
    with_bob = bob.conversation_with("alice")["id"]
    alice.open()
    page = alice.page
    wait_live(page)
    bell = page.locator("#notify")
    bell.click()  # the browser refuses (no permission was granted to this context)
    expect(page.locator("#toast")).to_contain_text("Notifications are blocked for this site")
    expect(bell).to_have_attribute("aria-pressed", "false")
    expect(bell).to_contain_text("Notifications blocked")
    assert page.evaluate("window.__asked") == 1  # asked once, from the click
    set_front(page, visible=False, focused=False)
    bob.send(with_bob, "nobody is told")
    expect(page.locator("#conversation-list li", has_text="bob")).to_contain_text("nobody")
    assert notes(page) == []
