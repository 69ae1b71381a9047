"""The moderator page in a real Chromium against a real gateway: a member is turned away,
a moderator works the reports queue and downloads an audited export, an admin exports all;
members are picked by username, times are local, failures are plain, and axe finds nothing."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from gateway.store.stand_in import DirectoryEntry, create_directory
from tests.browser.axe import assert_no_violations
from tests.browser.conftest import TIMEOUT_MS
from tests.support.localserver import LocalGateway

pytestmark = pytest.mark.browser

ALICE, BOB, MOD, ADMIN = 1, 2, 9, 10


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[LocalGateway]:
    # Overrides conftest's demo-mode gateway: this one reads a main-app directory with roles.
    app_db = tmp_path / "app.db"
    members = [
        DirectoryEntry(ALICE, "alice", sync_scope="public"),
        DirectoryEntry(BOB, "bob", sync_scope="public"),
        DirectoryEntry(MOD, "mod", attributes=(("messaging_moderator", "true"),)),
        DirectoryEntry(ADMIN, "admin", is_admin=True),
    ]
    # Playwright's sync API runs an event loop in this thread; build the directory in another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create_directory(app_db, members)).result()
    with LocalGateway(tmp_path / "gw", workers=1, env={"WB_APP_DB": str(app_db)}) as gw:
        yield gw


def api(gw: LocalGateway, user_id: int) -> httpx.Client:
    return httpx.Client(
        base_url=gw.base_url, cookies={"wb_session": gw.cookie_for(user_id)}, timeout=10
    )


@pytest.fixture
def reported(gateway: LocalGateway) -> dict[str, int]:
    """Alice and bob talk; alice reports bob's threat."""
    with api(gateway, ALICE) as alice, api(gateway, BOB) as bob:
        cid = alice.post("/api/conversations", json={"peer_id": BOB}).json()["conversation"]["id"]
        alice.post(f"/api/conversations/{cid}/messages", json={"body": "hello bob"})
        threat = bob.post(f"/api/conversations/{cid}/messages", json={"body": "you will regret"})
        mid = threat.json()["message"]["id"]
        report = alice.post(
            "/api/reports",
            json={"conversation_id": cid, "message_id": mid, "category": "harassment"},
        )
        assert report.status_code == 201
    return {"conversation_id": cid, "message_id": mid}


def open_page(
    browser: Any, gw: LocalGateway, user_id: int | None, **context_options: Any
) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(accept_downloads=True, **context_options)
    context.set_default_timeout(TIMEOUT_MS)
    if user_id is not None:
        context.add_cookies(
            [{"name": "wb_session", "value": gw.cookie_for(user_id), "url": gw.base_url}]
        )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(gw.url("/moderation"))
    return context, page, problems


@pytest.mark.parametrize(("user_id", "text"), [(ALICE, "Not allowed"), (None, "not signed in")])
def test_a_member_is_told_they_are_not_allowed(
    browser: Any, gateway: LocalGateway, reported: dict[str, int], user_id: int | None, text: str
) -> None:
    context, page, problems = open_page(browser, gateway, user_id)
    try:
        page.locator("#refused").wait_for(state="visible")
        assert text in page.locator("#refused").inner_text()
        assert page.locator("#tools").is_hidden()
        assert page.locator(".report").count() == 0
        # The API refuses too, whatever the page shows.
        status = page.evaluate("fetch('/api/moderation/reports').then(r => r.status)")
        assert status == (403 if user_id else 401)
        assert not [p for p in problems if "Content Security Policy" in p]
    finally:
        context.close()


def test_moderator_resolves_a_report_and_downloads_an_audited_export(
    browser: Any, gateway: LocalGateway, reported: dict[str, int], tmp_path: Path
) -> None:
    context, page, problems = open_page(browser, gateway, MOD)
    try:
        page.get_by_text("Signed in as mod (moderator).").wait_for()
        report = page.locator(".report").first
        report.wait_for()
        assert "alice (#1) reported bob (#2)" in report.inner_text()
        assert report.locator(".message.reported").inner_text().endswith("you will regret")
        assert "hello bob" in report.locator(".context").inner_text()
        assert page.locator('#export-scope option[value="full"]').is_disabled()

        report.locator("input[name=resolution]").fill("warned bob")
        report.get_by_role("button", name="Resolve").click()
        page.get_by_text("No reports here.").wait_for()
        page.select_option("#report-status", "resolved")
        page.get_by_text("Resolved: warned bob").wait_for()

        page.fill("#export-member", str(ALICE))
        page.select_option("#export-scope", "metadata")
        page.select_option("#export-format", "csv")
        page.get_by_role("button", name="Download export").click()
        expect(page.locator("#export-error")).to_contain_text("reason is required")

        page.fill("#export-reason", "case 7: threat report")
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download export").click()
        download = download_info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        data = saved.read_bytes()
        assert saved.suffix == ".csv"
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        manifest = json.loads(rows[0]["details"])
        assert manifest["reason"] == "case 7: threat report"
        assert manifest["scope"] == "metadata"
        assert manifest["generated_by"]["username"] == "mod"
        assert [r["body"] for r in rows if r["record"] == "message"] == ["", ""]

        # The page fills these in after the download, from the export's audit entry.
        expect(page.locator("#export-result")).to_be_visible()
        expect(page.locator("#export-sha")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
        expect(page.locator("#export-sha")).to_have_text(hashlib.sha256(data).hexdigest())
        expect(page.locator("#export-rows")).to_have_text("3")
        assert not problems, problems
    finally:
        context.close()
    with api(gateway, ADMIN) as admin:
        audit = admin.get("/api/moderation/audit").json()["entries"]
    assert [e["action"] for e in audit][:2] == ["export", "reports_viewed"]
    assert audit[0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_moderator_sees_the_refusal_of_a_full_export(
    browser: Any, gateway: LocalGateway, reported: dict[str, int]
) -> None:
    context, page, _ = open_page(browser, gateway, MOD)
    try:
        page.locator("#tools").wait_for(state="visible")
        # Even if the page is tampered with, the server refuses a full export to a moderator.
        page.evaluate("document.querySelector('#export-scope option[value=full]').disabled = false")
        page.fill("#export-member", str(ALICE))
        page.select_option("#export-scope", "full")
        page.fill("#export-reason", "curious")
        page.get_by_role("button", name="Download export").click()
        page.locator("#export-error").wait_for(state="visible")
        assert "Only admins" in page.locator("#export-error").inner_text()
    finally:
        context.close()


def test_admin_downloads_a_full_export(
    browser: Any, gateway: LocalGateway, reported: dict[str, int], tmp_path: Path
) -> None:
    context, page, problems = open_page(browser, gateway, ADMIN)
    try:
        page.get_by_text("Signed in as admin (admin).").wait_for()
        page.fill("#export-member", str(BOB))
        page.select_option("#export-scope", "full")
        page.fill("#export-reason", "legal request 12")
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download export").click()
        saved = tmp_path / "full.ndjson"
        download_info.value.save_as(saved)
        records = [json.loads(line) for line in saved.read_text().splitlines()]
        assert records[0]["member"] == {"user_id": BOB, "username": "bob"}
        bodies = [r["body"] for r in records if r["type"] == "message"]
        assert bodies == ["hello bob", "you will regret"]
        assert records[-1]["type"] == "end"
        assert not problems, problems
    finally:
        context.close()


def export(page: Any, member: str, reason: str = "case 12") -> None:
    page.fill("#export-member", member)
    page.select_option("#export-scope", "metadata")
    page.fill("#export-reason", reason)
    page.get_by_role("button", name="Download export").click()


def test_the_export_result_shows_only_after_an_export_and_not_after_a_failure(
    browser: Any, gateway: LocalGateway, reported: dict[str, int]
) -> None:
    context, page, problems = open_page(browser, gateway, MOD)
    try:
        page.locator(".report").first.wait_for()
        result = page.locator("#export-result")
        # Before any export: no empty "Export / File / Rows / SHA-256" box.
        expect(result).to_be_hidden()
        assert result.evaluate("el => getComputedStyle(el).display") == "none"

        with page.expect_download():
            export(page, str(ALICE))
        expect(result).to_be_visible()
        expect(page.locator("#export-rows")).to_have_text("3")

        # A failed export clears the previous result and says why instead.
        export(page, "999999")
        expect(page.locator("#export-error")).to_have_text(re.compile("No member has that id"))
        expect(result).to_be_hidden()
        assert page.locator("#export-sha").inner_text() == ""
        assert page.locator("#export-rows").inner_text() == ""
        assert not [p for p in problems if "404" not in p], problems
    finally:
        context.close()


def test_a_member_is_picked_by_username_or_by_id(
    browser: Any, gateway: LocalGateway, reported: dict[str, int], tmp_path: Path
) -> None:
    context, page, _ = open_page(browser, gateway, MOD)
    try:
        page.locator("#tools").wait_for(state="visible")
        expect(page.get_by_label(re.compile("Member: username"))).to_be_visible()
        with page.expect_download() as download_info:
            export(page, "bob", "case 8: by name")
        saved = tmp_path / "bob.ndjson"
        download_info.value.save_as(saved)
        manifest = json.loads(saved.read_text().splitlines()[0])
        assert manifest["member"] == {"user_id": BOB, "username": "bob"}
        expect(page.locator("#export-who")).to_have_text(f"bob (#{BOB})")

        # Nobody by that name: said plainly, nothing exported or audited.
        export(page, "nobody-here", "case 8: typo")
        expect(page.locator("#export-error")).to_contain_text("No member has that name")
        expect(page.locator("#export-result")).to_be_hidden()

        # An id still works (members who left are no longer in the directory).
        with page.expect_download():
            export(page, str(ALICE), "case 8: by id")
        expect(page.locator("#export-who")).to_have_text(f"#{ALICE}")
        expect(page.locator("#export-error")).to_be_hidden()
    finally:
        context.close()
    with api(gateway, ADMIN) as admin:
        audit = admin.get("/api/moderation/audit").json()["entries"]
    exports = [e for e in audit if e["action"] == "export"]
    assert [e["member_id"] for e in exports] == [ALICE, BOB]


def test_times_are_shown_in_the_moderators_locale_with_the_utc_instant_on_hover(
    browser: Any, gateway: LocalGateway, reported: dict[str, int]
) -> None:
    context, page, problems = open_page(
        browser, gateway, MOD, locale="de-DE", timezone_id="Europe/Berlin"
    )
    try:
        report = page.locator(".report").first
        report.wait_for()
        with api(gateway, MOD) as mod:
            queue = mod.get("/api/moderation/reports").json()["reports"]
        created = queue[0]["created_at"]
        stamp = report.locator("h3 time")
        expect(stamp).to_have_attribute("datetime", created)
        local = datetime.fromisoformat(created).astimezone(ZoneInfo("Europe/Berlin"))
        expect(stamp).to_have_text(local.strftime("%d.%m.%Y, %H:%M"))
        utc = datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M:%S")
        expect(stamp).to_have_attribute("title", f"{utc} UTC")
        # Every message in the context too; no raw ISO strings anywhere.
        expect(report.locator(".context time")).to_have_count(2)
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", report.inner_text())

        report.locator("input[name=resolution]").fill("warned bob")
        report.get_by_role("button", name="Resolve").click()
        page.get_by_text("No reports here.").wait_for()
        page.select_option("#report-status", "resolved")
        resolution = page.locator(".resolution")
        expect(resolution).to_contain_text("Resolved: warned bob")
        expect(resolution.locator("time")).to_have_text(re.compile(r"^\d\d\.\d\d\.\d{4}, "))
        assert not re.search(r"\d{4}-\d\d-\d\dT", resolution.inner_text())
        assert not problems, problems
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_violations_on_the_moderator_page_states(
    browser: Any, gateway: LocalGateway, reported: dict[str, int], axe_script: Path, scheme: str
) -> None:
    with api(gateway, BOB) as bob:  # a safety report too, shown first and marked
        hello = bob.get(f"/api/conversations/{reported['conversation_id']}/messages").json()
        first = hello["messages"][0]["id"]
        filed = bob.post(
            "/api/reports",
            json={
                "conversation_id": reported["conversation_id"],
                "message_id": first,
                "category": "safety",
                "note": "she said she is not safe at home",
            },
        )
        assert filed.status_code == 201
    # The page's CSP forbids inline scripts, axe's included: only the test may bypass it.
    options = {"bypass_csp": True, "color_scheme": scheme}
    for user_id, where in ((None, "signed out"), (ALICE, "a member refused")):
        context, page, _ = open_page(browser, gateway, user_id, **options)
        try:
            page.locator("#refused").wait_for(state="visible")
            assert_no_violations(page, axe_script, where)
        finally:
            context.close()

    context, page, _ = open_page(browser, gateway, MOD, **options)
    try:
        expect(page.locator(".report")).to_have_count(2)
        expect(page.locator(".report").first).to_have_class(re.compile(r"\bsafety\b"))
        assert_no_violations(page, axe_script, "the queue with reports")

        with page.expect_download():
            export(page, "bob")
        expect(page.locator("#export-result")).to_be_visible()
        assert_no_violations(page, axe_script, "a finished export")

        export(page, "nobody-here")
        expect(page.locator("#export-error")).to_be_visible()
        assert_no_violations(page, axe_script, "a failed export")

        page.select_option("#report-status", "resolved")
        expect(page.locator("#reports-empty")).to_be_visible()
        assert_no_violations(page, axe_script, "an empty resolved history")
    finally:
        context.close()
