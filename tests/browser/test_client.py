"""The browser client in a real Chromium against a real gateway: live delivery between two
members, stream cuts and the polling fallback without gaps or duplicates, safe rendering of
hostile text, the deep link, sending with retries, history, unread state, and screenshots."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import open_thread, wait_live
from tests.support.localserver import LocalGateway

pytestmark = pytest.mark.browser

SHORT_STREAMS = {"WB_STREAM_MAX_SECONDS": "2"}


def texts(page: Page) -> list[str]:
    return page.locator("#message-list li.message .text").all_inner_texts()


def badge(page: Page, peer: str) -> Any:
    return page.locator("#conversation-list li", has_text=peer).locator(".badge")


def test_signed_out_page_offers_demo_members(browser: Any, gateway: LocalGateway) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(gateway.base_url + "/")
        expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
        page.get_by_role("link", name="carol").click()
        expect(page.locator("#me-name")).to_have_text("carol")
        wait_live(page)
        page.get_by_role("link", name="Switch member").click()
        expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    finally:
        context.close()


def test_two_members_exchange_messages_live(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    alice.conversation_with("bob")
    alice.open()
    bob.open()
    wait_live(alice.page)
    wait_live(bob.page)
    open_thread(alice, "bob")
    open_thread(bob, "alice")

    alice.page.locator("#composer-input").fill("Hi Bob, is the ladder still free?")
    alice.page.keyboard.press("Enter")
    expect(bob.page.locator("#message-list .theirs .text")).to_have_text(
        ["Hi Bob, is the ladder still free?"]
    )
    bob.page.locator("#composer-input").fill("It is! Come by after six.")
    bob.page.get_by_role("button", name="Send").click()
    expect(alice.page.locator("#message-list .theirs .text")).to_have_text(
        ["It is! Come by after six."]
    )
    # Own messages are confirmed (not left pending) and styled as one's own.
    expect(alice.page.locator("#message-list .mine.sent .text")).to_have_text(
        ["Hi Bob, is the ladder still free?"]
    )
    assert texts(alice.page) == texts(bob.page)
    # The inbox previews moved with the conversation, live.
    expect(alice.page.locator("#conversation-list li", has_text="bob")).to_contain_text(
        "It is! Come by after six."
    )


def test_new_conversation_appears_live_with_unread_badge_until_read(sign_in: Any) -> None:
    alice = sign_in("alice").open()
    wait_live(alice.page)
    carol = sign_in("carol")
    conversation = carol.conversation_with("alice")
    carol.send(conversation["id"], "Are you coming to the swap?")
    carol.send(conversation["id"], "We need tables.")
    # A conversation alice never loaded shows up, most recent first, with its unread count.
    expect(badge(alice.page, "carol")).to_have_text("2")
    expect(alice.page).to_have_title("(2) Messages · WhiteBalloon")

    open_thread(alice, "carol")
    expect(badge(alice.page, "carol")).to_have_count(0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = alice.api.get(f"/api/conversations/{conversation['id']}").json()["conversation"]
        if seen["unread_count"] == 0:
            break
        time.sleep(0.1)
    assert seen["unread_count"] == 0, "opening the thread must move the read pointer"
    # While the thread is open, new messages are read at once.
    carol.send(conversation["id"], "Thanks!")
    expect(alice.page.locator("#message-list .text").last).to_have_text("Thanks!")
    expect(badge(alice.page, "carol")).to_have_count(0)


@pytest.mark.parametrize("gateway_env", [SHORT_STREAMS])
def test_server_cuts_stream_and_nothing_is_lost_or_repeated(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    streams: list[str] = []
    alice.page.on("request", lambda r: streams.append(r.url) if "/api/stream" in r.url else None)
    alice.open()
    open_thread(alice, "bob")

    sent = []
    # Streams last 2 s, so these 4 s of messages cross at least one server-side cut.
    for n in range(14):
        sent.append(bob.send(conversation["id"], f"message {n:02d}")["body"])
        time.sleep(0.3)
    expect(alice.page.locator("#message-list li.message")).to_have_count(14)
    assert texts(alice.page) == sent
    time.sleep(2.1)  # another cut and replay: still no duplicate
    assert texts(alice.page) == sent
    assert len(streams) >= 3, f"expected reconnects after server cuts, saw {streams}"
    wait_live(alice.page)


def test_unusable_stream_falls_back_to_polling_and_returns_later(sign_in: Any) -> None:
    alice = sign_in(
        "alice",
        init_script=(
            "window.WB_LIVE_OPTIONS = {reconnectDelaysMs: [200, 400], streamRetryMs: [1500]};"
        ),
    )
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    alice.page.route("**/api/stream*", lambda route: route.abort())
    alice.open()
    expect(alice.page.locator("#connection")).to_have_attribute("data-state", "polling")
    expect(alice.page.locator("#connection-label")).to_have_text("Polling")
    open_thread(alice, "bob")
    bob.send(conversation["id"], "delivered by polling")
    expect(alice.page.locator("#message-list .text")).to_have_text(["delivered by polling"])

    # The stream works again: the page notices on its next attempt and goes live.
    alice.page.unroute("**/api/stream*")
    bob.send(conversation["id"], "sent around the switch")
    wait_live(alice.page)
    bob.send(conversation["id"], "delivered live")
    expect(alice.page.locator("#message-list .text")).to_have_text(
        ["delivered by polling", "sent around the switch", "delivered live"]
    )
    time.sleep(0.5)
    assert len(texts(alice.page)) == 3


def test_silent_stream_behind_buffering_proxy_falls_back_to_polling(sign_in: Any) -> None:
    # The hello deadline is shortened from the default 4 s to keep the suite fast.
    alice = sign_in("alice", init_script="window.WB_LIVE_OPTIONS = {helloTimeoutMs: 2000};")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    held: list[Route] = []
    # A proxy that buffers: the request is accepted but not a byte comes back.
    alice.page.route("**/api/stream*", lambda route: held.append(route))
    alice.open()
    open_thread(alice, "bob")
    bob.send(conversation["id"], "did you get this?")
    expect(alice.page.locator("#connection")).to_have_attribute(
        "data-state", "polling", timeout=8_000
    )
    expect(alice.page.locator("#message-list .text")).to_have_text(["did you get this?"])
    assert held, "the stream was never attempted"


def test_unknown_cursor_reset_refetches_and_continues(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    bob.send(conversation["id"], "before the reset")
    conversation_fetches: list[str] = []
    alice.page.on(
        "request",
        lambda r: (
            conversation_fetches.append(r.url) if r.url.endswith("/api/conversations") else None
        ),
    )
    # As if the page's cursor came from another (older, bigger) database: the server does not
    # know it and answers `reset`; a client that ignored it would drop every new event.
    alice.page.route(
        re.compile(r".*/api/events$"),
        lambda route: route.fulfill(
            status=200, content_type="application/json", body='{"events":[],"cursor":"999999"}'
        ),
    )
    alice.open()
    wait_live(alice.page)
    expect(alice.page.locator("#conversation-list li")).to_have_count(1)
    assert len(conversation_fetches) >= 2, "the reset must refetch the inbox"
    open_thread(alice, "bob")
    bob.send(conversation["id"], "after the reset")
    expect(alice.page.locator("#message-list .text")).to_have_text(
        ["before the reset", "after the reset"]
    )
    expect(alice.page.locator("#conversation-list li")).to_have_count(1)


def test_html_and_script_payloads_are_shown_as_text(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    alice.open()
    open_thread(alice, "bob")
    payloads = [
        '<img src=x onerror="window.__pwned=1">',
        "<script>window.__pwned=2</script>",
        '<a href="javascript:window.__pwned=3">click me</a>',
        "<b>bold</b> & <i>italic</i> &amp; &lt;tag&gt;",
    ]
    for body in payloads:
        bob.send(conversation["id"], body)
    expect(alice.page.locator("#message-list .text")).to_have_text(payloads)
    page = alice.page
    assert page.locator("#message-list img, #message-list script, #message-list b").count() == 0
    assert page.locator("#message-list a").count() == 0  # only http(s) text becomes a link
    page.locator("#message-list .text", has_text="click me").click()
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#conversation-list li", has_text="bob")).to_contain_text(
        "<b>bold</b> & <i>italic</i>"
    )


def test_deep_link_creates_conversation_and_records_origin(sign_in: Any) -> None:
    alice = sign_in("alice").open("/?with=bob&origin=request:123")
    page = alice.page
    expect(page.locator("#thread-title")).to_have_text("bob")
    expect(page).to_have_url(re.compile(r"/#/c/\d+$"))
    conversation_id = int(page.url.rsplit("/", 1)[1])
    found = alice.api.get(f"/api/conversations/{conversation_id}").json()["conversation"]
    assert found["peer"]["username"] == "bob"
    assert found["origin"] == {"type": "request", "ref": "123"}
    assert found["created_by"] == alice.user_id
    # Following the same link again opens the same conversation, not a second one.
    alice.open("/?with=bob&origin=profile")
    expect(page.locator("#thread-title")).to_have_text("bob")
    assert int(page.url.rsplit("/", 1)[1]) == conversation_id
    assert len(alice.api.get("/api/conversations").json()["conversations"]) == 1

    # bob cannot see dave (private, invited by alice): the link explains instead of failing.
    bob = sign_in("bob").open("/?with=dave&origin=profile")
    expect(bob.page.locator("#toast")).to_have_text("You can't message dave.")
    expect(bob.page.locator("#thread-placeholder")).to_be_visible()


def test_new_conversation_picker_searches_members(sign_in: Any) -> None:
    alice = sign_in("alice").open()
    page = alice.page
    page.get_by_role("button", name="New message").click()
    dialog = page.get_by_role("dialog", name="New message")
    expect(dialog).to_be_visible()
    expect(page.locator("#picker-search")).to_be_focused()
    # alice may message the public members and dave, whom she invited; not private frank.
    expect(dialog.locator(".member-name")).to_have_text(["bob", "carol", "dave", "erin"])
    page.keyboard.type("da")
    expect(dialog.locator(".member-name")).to_have_text(["dave"])
    # Typing and pressing Enter at once picks from the new search, not the list on screen.
    page.locator("#picker-search").fill("")
    page.keyboard.type("car")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#thread-title")).to_have_text("carol")
    expect(page.locator("#composer-input")).to_be_focused()
    conversation_id = int(page.url.rsplit("/", 1)[1])
    found = alice.api.get(f"/api/conversations/{conversation_id}").json()["conversation"]
    assert found["origin"] == {"type": "inbox", "ref": None}


def test_keyboard_only_flow(sign_in: Any) -> None:
    alice = sign_in("alice")
    alice.conversation_with("bob")
    alice.conversation_with("carol")
    alice.open()
    page = alice.page
    page.locator("#conversation-list a").first.focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#conversation-list a").nth(1)).to_be_focused()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")  # newest first: carol
    expect(page.locator("#thread-title")).to_have_text("carol")
    expect(page.locator("#composer-input")).to_be_focused()
    expect(page.locator("#conversation-list a[aria-current=page]")).to_contain_text("carol")
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list .mine.sent .text")).to_have_text(["typed without a mouse"])
    # The picker opens from the keyboard and Escape returns focus to its button.
    page.get_by_role("button", name="New message").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#picker-search")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="New message")).to_be_focused()


def test_composer_keys_counter_and_limit(sign_in: Any) -> None:
    alice = sign_in("alice")
    alice.conversation_with("bob")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    box = page.locator("#composer-input")
    expect(page.locator("#char-count")).to_have_text("0 / 4,000")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    box.press_sequentially("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    expect(page.locator("#message-list .mine.sent .text")).to_have_text(["first line\nsecond line"])
    expect(box).to_have_value("")
    box.fill("x" * 4001)
    expect(page.locator("#char-count")).to_have_text("4,001 / 4,000")
    expect(page.locator("#char-count")).to_have_class("char-count over")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    box.press("Enter")
    expect(page.locator("#message-list li.message")).to_have_count(1)
    box.fill("y" * 4000)
    box.press("Enter")
    expect(page.locator("#message-list .mine.sent")).to_have_count(2)


def test_failed_send_says_why_and_is_resent_once(sign_in: Any) -> None:
    alice = sign_in("alice")
    conversation = alice.conversation_with("bob")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    page.route(
        "**/api/conversations/*/messages",
        lambda route: route.abort() if route.request.method == "POST" else route.continue_(),
    )
    page.locator("#composer-input").fill("try me")
    page.keyboard.press("Enter")
    # Kept in the outbox with the reason, and sent by itself once the server can be reached.
    waiting = page.locator("#message-list li.waiting")
    expect(waiting).to_have_count(1)
    expect(waiting.locator(".status")).to_have_text(
        "Not sent yet: can't reach the server. It will be sent when the connection is back."
    )
    page.unroute("**/api/conversations/*/messages")
    expect(page.locator("#message-list li.sent.mine .text")).to_have_text(["try me"])
    stored = alice.api.get(f"/api/conversations/{conversation['id']}/messages").json()
    assert [m["body"] for m in stored["messages"]] == ["try me"]


def test_lost_response_does_not_duplicate(sign_in: Any) -> None:
    alice = sign_in("alice")
    conversation = alice.conversation_with("bob")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    posted: list[dict[str, Any]] = []

    def reach_server_then_drop(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        posted.append(json.loads(route.request.post_data or "{}"))
        route.fetch()  # the server stores the message...
        route.abort()  # ...but the answer never reaches the page

    page.route("**/api/conversations/*/messages", reach_server_then_drop)
    page.locator("#composer-input").fill("only once")
    page.keyboard.press("Enter")
    # The live feed brings the stored message; its client_id matches the pending bubble.
    expect(page.locator("#message-list li.mine.sent .text")).to_have_text(["only once"])
    page.unroute("**/api/conversations/*/messages")
    retry = page.locator("#message-list button.retry")
    if retry.count():  # the failure may have landed first: sending again must not duplicate
        retry.click()
    time.sleep(0.5)
    expect(page.locator("#message-list li.message")).to_have_count(1)
    stored = alice.api.get(f"/api/conversations/{conversation['id']}/messages").json()
    assert [m["body"] for m in stored["messages"]] == ["only once"]
    assert posted[0]["client_id"], "sends must carry a client_id"


@pytest.mark.parametrize("gateway_env", [{"WB_RATE_SENDS": "off"}])  # 120 sends to seed history
def test_older_history_loads_on_scroll_up(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    for n in range(120):
        bob.send(conversation["id"], f"history {n:03d}")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    expect(page.locator("#message-list li.message")).to_have_count(50)
    assert texts(page)[-1] == "history 119"
    for expected in (100, 120):
        page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
        expect(page.locator("#message-list li.message")).to_have_count(expected)
    assert texts(page) == [f"history {n:03d}" for n in range(120)]
    expect(page.locator("#history-note")).to_have_text("Start of your conversation")
    expect(page.locator("#load-older")).to_be_hidden()

    # Reading old history: a new message does not yank the reader down, it offers a jump.
    page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
    bob.send(conversation["id"], "fresh news")
    jump = page.get_by_role("button", name="New messages ↓")
    expect(jump).to_be_visible()
    assert page.locator("#messages").evaluate("el => el.scrollTop") < 50
    jump.click()
    expect(page.locator("#message-list .text").last).to_be_in_viewport()
    expect(jump).to_be_hidden()


def test_phone_width_shows_one_pane_at_a_time(sign_in: Any) -> None:
    alice = sign_in("alice", viewport={"width": 390, "height": 800}, is_mobile=True)
    alice.conversation_with("bob")
    alice.open()
    page = alice.page
    expect(page.locator(".inbox")).to_be_visible()
    expect(page.locator("#thread")).to_be_hidden()
    open_thread(alice, "bob")
    expect(page.locator(".inbox")).to_be_hidden()
    # News from elsewhere shows on the back button while the inbox is hidden.
    carol = sign_in("carol")
    carol.send(carol.conversation_with("alice")["id"], "psst")
    back = page.get_by_role("button", name="Back to conversations, 1 unread")
    expect(back).to_be_visible()
    back.click()
    expect(page.locator(".inbox")).to_be_visible()
    expect(badge(page, "carol")).to_have_text("1")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(sign_in: Any, artifacts: Path, scheme: str) -> None:
    alice = sign_in("alice", color_scheme=scheme)
    bob = sign_in("bob")
    erin = sign_in("erin")
    carol = sign_in("carol")
    with_bob = bob.conversation_with("alice")["id"]
    bob.send(with_bob, "Hi Alice! Are you still up for the seed swap on Saturday?")
    bob.send(with_bob, "I can bring tomato seedlings and a spare trowel.\nAlso some basil.")
    with_carol = carol.conversation_with("alice")["id"]
    alice.send(with_carol, "Thanks again for the soup, it was lovely.")
    carol.send(with_carol, "Any time! Let me know how your week goes.")
    latest = alice.api.get(f"/api/conversations/{with_carol}/messages").json()["messages"][-1]
    alice.api.post(f"/api/conversations/{with_carol}/read", json={"message_id": latest["id"]})
    with_erin = erin.conversation_with("alice")["id"]
    erin.send(with_erin, "Welcome to the community, Alice. Ping me if you need anything.")
    alice.open()
    wait_live(alice.page)
    expect(badge(alice.page, "erin")).to_have_text("1")
    alice.page.mouse.move(700, 600)  # no hover highlight in the pictures
    alice.page.screenshot(path=str(artifacts / f"inbox-{scheme}.png"))

    open_thread(alice, "bob")
    alice.page.locator("#composer-input").fill(
        "Yes! I'll be there at 10. Details: https://example.org/swap"
    )
    alice.page.keyboard.press("Enter")
    expect(alice.page.locator("#message-list .mine.sent")).to_have_count(1)
    bob.send(with_bob, "Perfect, see you there.")
    expect(alice.page.locator("#message-list li.message")).to_have_count(4)
    alice.page.locator("#composer-input").fill("Great")
    alice.page.mouse.move(700, 300)
    alice.page.screenshot(path=str(artifacts / f"thread-{scheme}.png"))

    alice.page.set_viewport_size({"width": 390, "height": 760})
    expect(alice.page.locator(".inbox")).to_be_hidden()
    alice.page.screenshot(path=str(artifacts / f"thread-phone-{scheme}.png"))
    for name in ("inbox", "thread", "thread-phone"):
        assert (artifacts / f"{name}-{scheme}.png").stat().st_size > 10_000
