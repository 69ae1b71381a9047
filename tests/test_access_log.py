"""The gateway's access log: one line per request, once its response has ended."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gateway.access_log import AccessLog
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
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.access_log"]
    found = [LINE.fullmatch(message) for message in messages]
    assert all(found), messages
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
        ("POST", "/api/conversations", "201"),  # never the query
        ("POST", f"/api/conversations/{conversation_id}/messages", "201"),
        ("GET", "/api/me", "401"),
    ]
    assert int(answered[1][6]) == len(await sent.get_data())
    assert int(answered[2][6]) == len(await refused.get_data())
    for secret in ("logged", "from=test", cookies[ALICE]):  # no body, query or cookie
        assert secret not in logged.text


async def logged_line(scope: dict[str, object], caplog: pytest.LogCaptureFixture) -> str:
    async def not_found(scope: object, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    async def ignore(message: object) -> None:
        pass

    caplog.clear()
    base = {"type": "http", "method": "GET", "query_string": b"", "http_version": "2",
            "client": ("10.0.0.1", 4)}  # fmt: skip
    await AccessLog(not_found)({**base, **scope}, None, ignore)  # type: ignore[arg-type]
    (line,) = [r.getMessage() for r in caplog.records]
    return line


@pytest.mark.parametrize(
    ("scope", "logged_as"),
    [
        # A newline, percent-encoded (HTTP/1.1) or raw (another server's decoding).
        ({"path": "/x\nforged", "raw_path": b"/x%0Aforged"}, '"GET /x%0Aforged HTTP/2" 404'),
        ({"path": "/x\nforged"}, '"GET /x%0Aforged HTTP/2" 404'),
        # HTTP/2 lets a path hold spaces and quotes, and a method anything but CR, LF, NUL.
        ({"path": '/a" 200 0 0.001s FORGED x', "raw_path": b'/a" 200 0 0.001s FORGED x'},
         '"GET /a%22%20200%200%200.001s%20FORGED%20x HTTP/2" 404'),
        ({"path": "/x", "method": 'GET /FORGED HTTP/1.1" 200 1 \x1b[2J'},
         '"GET%20%2FFORGED%20HTTP%2F1.1%22%20200%201%20%1B%5B2J /x HTTP/2" 404'),
        ({"path": "/caf\u00e9\\", "raw_path": "/caf\u00e9\\".encode()},
         '"GET /caf%C3%A9%5C HTTP/2" 404'),
        # Absolute-form: only its path; never userinfo, a host or a fragment.
        ({"path": "/api/stream", "raw_path": b"http://alice:hunter2@host:80/api/stream"},
         '"GET /api/stream HTTP/2" 404'),
        ({"path": "/healthz#secret", "raw_path": b"/healthz#secret"}, '"GET /healthz HTTP/2" 404'),
    ],
)  # fmt: skip
async def test_no_request_can_forge_or_garble_a_line(
    scope: dict[str, object], logged_as: str, logged: pytest.LogCaptureFixture
) -> None:
    line = await logged_line(scope, logged)
    assert line.startswith('10.0.0.1:4 "'), line
    assert logged_as in line, line
    assert line.isprintable(), line
    assert line.isascii(), line
    for secret in ("hunter2", "secret", "FORGED x"):
        assert secret not in line


async def test_off_writes_nothing(
    settings: Settings, cookies: dict[int, str], logged: pytest.LogCaptureFixture
) -> None:
    async with create_app(replace(settings, access_log=False)).test_app() as app:
        me = await app.test_client().get("/api/me", headers=as_member(cookies[ALICE]))
        assert me.status_code == 200
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
            assert (await client.get("/api/me?secret=q", headers=cookie)).status_code == 200
            async with client.stream("GET", "/api/stream", headers=cookie) as stream:
                async for _ in stream.aiter_bytes():
                    break  # the hello: the stream is open; leaving ends it
    finally:
        server.stop()
    text = server.log_text()
    assert re.search(r'127\.0\.0\.1:\d+ "GET /api/me HTTP/1\.1" 200 \d+ \d+\.\d{3}s', text), text
    assert re.search(r'"GET /api/stream HTTP/1\.1" 200 \d+ \d+\.\d{3}s', text), text
    assert "secret=q" not in text
