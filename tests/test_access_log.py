"""The gateway's access log: one line per request, once its response has ended."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from tests.support.localserver import LocalGateway
from tests.support.members import ALICE, BOB, COOKIE, SECRET, as_member

LINE = re.compile(r'(\S+) "(\S+) (\S+) HTTP/([\d.]+)" (\d{3}|-) (\d+) (\d+\.\d{3})s')


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gateway.access_log")
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    found = [
        LINE.fullmatch(r.getMessage()) for r in caplog.records if r.name == "gateway.access_log"
    ]
    assert all(found), [r.getMessage() for r in caplog.records]
    return [m for m in found if m]


async def test_each_request_is_one_line_with_its_status_and_size(
    settings: Settings, cookies: dict[int, str], logged: pytest.LogCaptureFixture
) -> None:
    async with create_app(settings).test_app() as app:
        client = app.test_client()
        started = await client.post(
            "/api/conversations?from=test", json={"peer_id": BOB}, headers=as_member(cookies[ALICE])
        )
        conversation_id = (await started.get_json())["conversation"]["id"]
        sent = await client.post(
            f"/api/conversations/{conversation_id}/messages",
            json={"body": "logged"},
            headers=as_member(cookies[ALICE]),
        )
        refused = await client.get("/api/me")
    answered = lines(logged)
    assert [(m[2], m[3], m[5]) for m in answered] == [
        ("POST", "/api/conversations?from=test", "201"),
        ("POST", f"/api/conversations/{conversation_id}/messages", "201"),
        ("GET", "/api/me", "401"),
    ]
    assert int(answered[1][6]) == len(await sent.get_data())
    assert int(answered[2][6]) == len(await refused.get_data())
    assert "logged" not in logged.text  # bodies are never logged


async def test_off_writes_nothing(
    settings: Settings, cookies: dict[int, str], logged: pytest.LogCaptureFixture
) -> None:
    async with create_app(replace(settings, access_log=False)).test_app() as app:
        assert (
            await app.test_client().get("/api/me", headers=as_member(cookies[ALICE]))
        ).status_code == 200
    assert lines(logged) == []


async def test_the_real_server_logs_requests_and_streams(tmp_path: Path, app_db: Path) -> None:
    server = LocalGateway(
        tmp_path / "data",
        workers=1,
        env={"WB_APP_DB": str(app_db), "WB_SESSION_SECRET": SECRET},
        access_log=True,
    ).start()
    try:
        cookie = {"Cookie": f"{COOKIE}={server.cookie_for(ALICE)}"}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            assert (await client.get("/api/me", headers=cookie)).status_code == 200
            async with client.stream("GET", "/api/stream", headers=cookie) as stream:
                async for _ in stream.aiter_bytes():
                    break  # the hello: the stream is open; leaving ends it
    finally:
        server.stop()
    text = server.log_text()
    assert re.search(r'127\.0\.0\.1:\d+ "GET /api/me HTTP/1\.1" 200 \d+ \d+\.\d{3}s', text), text
    assert re.search(r'"GET /api/stream HTTP/1\.1" 200 \d+ \d+\.\d{3}s', text), text
