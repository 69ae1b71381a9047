"""The member client's safety tools in a real Chromium against a real gateway: reporting a
peer's message to the moderators, blocking and unblocking from the thread (and what the
blocked member sees), and the introduction intent the deep link records."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DEMO, open_thread, wait_live

pytestmark = pytest.mark.browser


def expect_focus(page: Page, element_id: str) -> None:
    """Focus within the page, even while another member's page has the window's focus."""
    page.wait_for_function("id => document.activeElement?.id === id", arg=element_id)


def open_reports(moderator: Any) -> list[dict[str, Any]]:
    response = moderator.api.get("/api/moderation/reports")
    assert response.status_code == 200, response.text
    return response.json()["reports"]


def blocks_of(member: Any) -> list[int]:
    return [b["member"]["user_id"] for b in member.api.get("/api/blocks").json()["blocks"]]


def test_reporting_a_peer_message_reaches_the_moderators(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = alice.conversation_with("bob")
    alice.send(conversation["id"], "Hi Bob, is the ladder still free?")
    spam = bob.send(conversation["id"], "Win a free phone!!! Send me your card number")
    bob.send(conversation["id"], "Also, the ladder is yours.")
    erin = sign_in("erin")  # an admin, to read the moderators' queue
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    alice.page.locator("#composer-input").fill("Thanks!")
    alice.page.keyboard.press("Enter")
    expect(page.locator("#message-list .mine.sent")).to_have_count(2)

    # Only the peer's messages can be reported, never one's own (sent or being sent).
    expect(page.locator("#message-list .theirs [data-report]")).to_have_count(2)
    expect(page.locator("#message-list .mine [data-report]")).to_have_count(0)
    mine = page.locator("#message-list .mine")
    expect(mine.get_by_role("button", name=re.compile("Report"))).to_have_count(0)

    # Keyboard only: from the message list, Tab reaches the newest Report button (the only
    # Tab stop among them); the arrow keys move to the earlier one.
    page.locator("#messages").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Report message from bob").last).to_be_focused()
    page.keyboard.press("ArrowUp")
    report_button = page.get_by_role("button", name="Report message from bob").first
    expect(report_button).to_be_focused()
    expect(report_button).to_have_css("opacity", "1")  # shown on focus, not only on hover
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Report message")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#report-quote-text")).to_have_text(spam["body"])
    expect(page.locator("#report-category")).to_be_focused()

    # A reason is required; the page says so instead of sending.
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog.locator("#report-error")).to_have_text("Choose what's wrong with this message.")
    page.locator("#report-category").select_option("safety")
    expect(dialog.locator("#report-danger")).to_be_visible()
    page.locator("#report-category").select_option("spam")
    expect(dialog.locator("#report-danger")).to_be_hidden()
    expect(dialog.locator("#report-error")).to_be_hidden()
    note = page.locator("#report-note")
    assert note.get_attribute("maxlength") == "1000"
    note.fill("x" * 1000)
    expect(dialog.locator("#report-note-count")).to_have_text("1,000 / 1,000")
    note.fill("Asks everyone for card numbers.")
    expect(dialog.locator("#report-note-count")).to_have_text("31 / 1,000")

    # A failure is shown in the dialog, which stays open with what was entered.
    page.route("**/api/reports", lambda route: route.abort())
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog.locator("#report-error")).to_contain_text("Couldn't send your report.")
    expect(dialog).to_be_visible()
    assert open_reports(erin) == []
    page.unroute("**/api/reports")

    dialog.get_by_role("button", name="Send report").click()
    expect(page.locator("#toast")).to_have_text("Thanks. Your report was sent to the moderators.")
    expect(dialog).to_be_hidden()
    expect(report_button).to_be_focused()  # back where the member was

    reports = open_reports(erin)
    assert len(reports) == 1
    report = reports[0]
    assert report["category"] == "spam"
    assert report["note"] == "Asks everyone for card numbers."
    assert report["message_id"] == spam["id"]
    assert report["conversation_id"] == conversation["id"]
    assert (report["reporter"]["username"], report["reported"]["username"]) == ("alice", "bob")
    assert report["message"]["body"] == spam["body"]

    # Reporting the same message again does not queue it twice, and the member is told.
    report_button.click()
    page.locator("#report-category").select_option("harassment")
    dialog.get_by_role("button", name="Send report").click()
    expect(page.locator("#toast")).to_have_text(
        "You've already reported this message. The moderators have it."
    )
    assert len(open_reports(erin)) == 1

    # Escape closes the dialog without sending anything.
    report_button.click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert len(open_reports(erin)) == 1


RATE_LIMITED = {"WB_RATE_REPORTS": "1/1d burst 1", "WB_RATE_BLOCKS": "1/1d burst 2"}


@pytest.mark.parametrize("gateway_env", [RATE_LIMITED])
def test_a_rate_limited_report_or_block_says_when_it_can_be_done_again(sign_in: Any) -> None:
    """A 429 on a report or a block shows the server's words (which say when: perhaps in
    hours), not an "in a moment" that would send the member back to be refused again."""
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = alice.conversation_with("bob")
    bob.send(conversation["id"], "first")
    bob.send(conversation["id"], "second")
    alice.conversation_with("carol")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    generic = re.compile("in a moment")

    # Reports: the first is filed, the second refused; the dialog stays open and says when.
    reports = page.get_by_role("button", name="Report message from bob")
    dialog = page.get_by_role("dialog", name="Report message")
    reports.first.click()
    page.locator("#report-category").select_option("spam")
    dialog.get_by_role("button", name="Send report").click()
    expect(page.locator("#toast")).to_have_text("Thanks. Your report was sent to the moderators.")
    reports.last.click()
    page.locator("#report-category").select_option("spam")
    dialog.get_by_role("button", name="Send report").click()
    error = dialog.locator("#report-error")
    expect(error).to_have_text(
        re.compile(
            r"^Couldn't send your report\. You have sent many reports in a short time; "
            r"moderators have them\. You can report again in \d+ hours\.$"
        )
    )
    expect(error).not_to_have_text(generic)
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")

    # Blocks: a block elsewhere and this one use both tokens; the unblock is refused.
    assert alice.api.post("/api/blocks", json={"member_id": DEMO["erin"]}).status_code == 201
    page.get_by_role("button", name="Block bob").click()
    page.get_by_role("dialog", name="Block bob?").get_by_role("button", name="Block bob").click()
    expect(page.locator("#safety-notice-title")).to_have_text("You blocked bob.")
    page.get_by_role("button", name="Unblock bob").click()
    toast = page.locator("#toast")
    expect(toast).to_have_text(
        re.compile(
            r"^Couldn't unblock bob\. You have blocked or unblocked many times in a short "
            r"time\. You can do so again in \d+ hours\.$"
        )
    )
    expect(page.locator("#safety-notice-title")).to_have_text("You blocked bob.")
    assert set(blocks_of(alice)) == {DEMO["erin"], bob.user_id}

    # The block dialog shows it too, and stays open.
    open_thread(alice, "carol")
    page.get_by_role("button", name="Block carol").click()
    confirm = page.get_by_role("dialog", name="Block carol?")
    confirm.get_by_role("button", name="Block carol").click()
    expect(confirm.locator("#block-error")).to_have_text(
        re.compile(r"^Couldn't block carol\. You have blocked or unblocked many times .* hours\.$")
    )
    expect(confirm).to_be_visible()
    assert DEMO["carol"] not in blocks_of(alice)


def test_blocking_from_the_thread_stops_both_sides_until_unblocked(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    bob.send(conversation["id"], "hello again")
    alice.open()
    bob.open()
    wait_live(alice.page)
    wait_live(bob.page)
    open_thread(alice, "bob")
    open_thread(bob, "alice")
    page = alice.page

    # Blocking asks first; cancelling changes nothing.
    page.get_by_role("button", name="Block bob").click()
    confirm = page.get_by_role("dialog", name="Block bob?")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("your conversation history stays")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    assert blocks_of(alice) == []
    expect(page.locator("#composer")).to_be_visible()

    page.get_by_role("button", name="Block bob").click()
    confirm.get_by_role("button", name="Block bob").click()
    expect(confirm).to_be_hidden()
    notice = page.locator("#safety-notice")
    expect(notice).to_be_visible()
    expect(notice.locator("#safety-notice-title")).to_have_text("You blocked bob.")
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.get_by_role("button", name="Unblock bob")).to_be_visible()
    expect_focus(page, "thread-block")  # the focus is not lost when the dialog closes
    expect(page.locator("#conversation-list li", has_text="bob").locator(".tag")).to_have_text(
        "Blocked"
    )
    expect(page.locator("#message-list .text")).to_have_text(["hello again"])  # history stays
    assert blocks_of(alice) == [bob.user_id]

    # bob's send is refused: a calm notice replaces his composer; no retry, no loop.
    posts: list[str] = []
    bob.page.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and "/messages" in r.url else None,
    )
    bob.page.locator("#composer-input").fill("did you get my last message?")
    bob.page.keyboard.press("Enter")
    bob_notice = bob.page.locator("#safety-notice")
    expect(bob_notice.locator("#safety-notice-title")).to_have_text(
        "You can't send messages to alice right now."
    )
    expect(bob.page.locator("#composer")).to_be_hidden()
    failed = bob.page.locator("#message-list li.failed")
    expect(failed.locator(".status")).to_have_text(
        "Not sent: you can't message each other right now."
    )
    expect(failed.get_by_role("button", name="Retry")).to_have_count(0)
    bob.page.get_by_role("button", name="Check again").click()
    expect(bob.page.locator("#toast")).to_have_text("You still can't send messages to alice.")
    expect(bob.page.locator("#composer")).to_be_hidden()
    time.sleep(0.5)  # nothing retries by itself
    assert len(posts) == 1, posts
    stored = bob.api.get(f"/api/conversations/{conversation['id']}/messages").json()
    assert [m["body"] for m in stored["messages"]] == ["hello again"]

    # The block is loaded at start, so it survives a reload.
    page.reload()  # the URL still names the conversation: it opens at start
    expect(page.locator("#thread-title")).to_have_text("bob")
    expect(notice.locator("#safety-notice-title")).to_have_text("You blocked bob.")
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.get_by_role("button", name="Unblock bob")).to_be_visible()
    expect_focus(page, "thread-title")

    # Unblocking from the notice gives the composer back, focused.
    notice.get_by_role("button", name="Unblock").click()
    expect(page.locator("#composer")).to_be_visible()
    expect(notice).to_be_hidden()
    expect_focus(page, "composer-input")
    expect(page.get_by_role("button", name="Block bob")).to_be_visible()
    expect(page.locator("#conversation-list .tag")).to_have_count(0)
    assert blocks_of(alice) == []

    page.keyboard.type("Sorry, wrong button!")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list .mine.sent .text")).to_have_text(["Sorry, wrong button!"])
    # alice's message reaching bob shows the pair can talk again: his composer returns, and
    # the message that was refused can now be retried.
    expect(bob.page.locator("#message-list .theirs .text").last).to_have_text(
        "Sorry, wrong button!"
    )
    expect(bob.page.locator("#composer")).to_be_visible()
    expect(bob_notice).to_be_hidden()
    failed.get_by_role("button", name="Retry").click()
    expect(bob.page.locator("#message-list li.failed")).to_have_count(0)
    expect(page.locator("#message-list .theirs .text").last).to_have_text(
        "did you get my last message?"
    )


def test_the_blocked_member_checks_again_after_an_unblock(sign_in: Any) -> None:
    alice = sign_in("alice")
    bob = sign_in("bob")
    conversation = alice.conversation_with("bob")
    assert alice.api.post("/api/blocks", json={"member_id": bob.user_id}).status_code == 201
    bob.open()
    open_thread(bob, "alice")
    page = bob.page
    # bob does not know (the client never learns who blocked whom) until a send is refused.
    expect(page.locator("#composer")).to_be_visible()
    expect(page.get_by_role("button", name="Block alice")).to_be_visible()
    page.locator("#composer-input").fill("hello?")
    page.keyboard.press("Enter")
    expect(page.locator("#safety-notice")).to_be_visible()

    assert alice.api.delete(f"/api/blocks/{bob.user_id}").status_code == 204
    page.get_by_role("button", name="Check again").click()
    expect(page.locator("#composer")).to_be_visible()
    expect(page.locator("#composer-input")).to_be_focused()
    page.keyboard.type("there you are")
    page.keyboard.press("Enter")
    expect(page.locator("#message-list .mine.sent .text")).to_have_text(["there you are"])
    stored = alice.api.get(f"/api/conversations/{conversation['id']}/messages").json()
    assert [m["body"] for m in stored["messages"]] == ["there you are"]


def test_deep_link_records_the_intent_before_opening_the_conversation(sign_in: Any) -> None:
    alice = sign_in("alice")
    calls: list[tuple[str, str]] = []
    alice.page.on(
        "request",
        lambda r: (
            calls.append((r.method, r.url.split("/api/", 1)[1]))
            if r.method == "POST" and "/api/" in r.url
            else None
        ),
    )
    alice.open("/?with=bob&origin=request:77")
    expect(alice.page.locator("#thread-title")).to_have_text("bob")
    assert calls == [("POST", "intents"), ("POST", "conversations")]

    # A second link from a profile opens the same conversation and counts its own intent;
    # a link without an origin is not an introduction and records nothing.
    alice.open("/?with=bob&origin=profile:bob")
    expect(alice.page.locator("#thread-title")).to_have_text("bob")
    alice.open("/?with=bob")
    expect(alice.page.locator("#thread-title")).to_have_text("bob")
    assert [c for c in calls if c[1] == "intents"] == [("POST", "intents")] * 2

    erin = sign_in("erin")  # an admin
    response = erin.api.get("/api/metrics/introductions")
    assert response.status_code == 200, response.text
    funnels = {f["origin_type"]: f for f in response.json()["origins"]}
    assert funnels["request"]["intents"] == 1
    assert funnels["request"]["conversations_started"] == 1
    assert funnels["profile"]["intents"] == 1
    assert funnels["profile"]["conversations_started"] == 0
    assert sum(f["intents"] for f in funnels.values()) == 2

    # A blocked pair's existing conversation still opens from a link, to read its history.
    alice.api.post("/api/blocks", json={"member_id": DEMO["bob"]})
    alice.open("/?with=bob&origin=suggestion")
    expect(alice.page.locator("#safety-notice-title")).to_have_text("You blocked bob.")
    expect(alice.page).to_have_url(re.compile(r"/#/c/\d+$"))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_safety_screenshots(sign_in: Any, artifacts: Path, scheme: str) -> None:
    alice = sign_in("alice", color_scheme=scheme)
    bob = sign_in("bob")
    conversation = bob.conversation_with("alice")
    alice.send(conversation["id"], "Hi! Is the bike still for sale?")
    bob.send(conversation["id"], "Yes. Pay me upfront by gift card and I'll post it tonight.")
    bob.send(conversation["id"], "Answer quickly or I'll tell everyone you're a time waster.")
    alice.open()
    open_thread(alice, "bob")
    page = alice.page
    page.get_by_role("button", name="Report message from bob").last.click()
    page.locator("#report-category").select_option("harassment")
    page.locator("#report-note").fill("Pressure to pay by gift card, then a threat.")
    page.mouse.move(5, 5)
    page.screenshot(path=str(artifacts / f"report-dialog-{scheme}.png"))
    page.keyboard.press("Escape")

    page.get_by_role("button", name="Block bob").click()
    page.get_by_role("dialog", name="Block bob?").screenshot(
        path=str(artifacts / f"block-confirm-{scheme}.png")
    )
    page.get_by_role("dialog", name="Block bob?").get_by_role("button", name="Block bob").click()
    expect(page.locator("#safety-notice")).to_be_visible()
    page.locator("#message-list .theirs .bubble").last.hover()  # shows its Report button
    expect(page.locator("#message-list .report-button").last).to_have_css("opacity", "1")
    page.screenshot(path=str(artifacts / f"blocked-{scheme}.png"))
    for name in ("report-dialog", "block-confirm", "blocked"):
        assert (artifacts / f"{name}-{scheme}.png").stat().st_size > 5_000
