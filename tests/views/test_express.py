"""The express lane (`gateway/views/express.py`) driven through raw ASGI messages, for what a
test client can't do: a body in pieces with no length declared, a client that leaves mid-body
or mid-stream. (Everything else about sending and streaming is tested through the lane by the
API, live and fuzzing tests, like any route.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.limits import MAX_REQUEST_BYTES
from gateway.services import Services
from gateway.views import express
from tests.support.asgi import TIMEOUT, Exchange, RunningApp, run, scope
from tests.support.members import ALICE, BOB, COOKIE, starlette_cookie


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[RunningApp]:
    async with create_app(replace(settings, rate_sends=None)).test_app() as test_app:
        yield test_app


def services(app: RunningApp) -> Services:
    return app.app.extensions["whiteballoon"]  # type: ignore[no-any-return]


async def conversation(app: RunningApp) -> int:
    client = app.test_client()
    response = await client.post(
        "/api/conversations",
        json={"peer_id": BOB},
        headers={"Cookie": f"{COOKIE}={starlette_cookie({'user_id': ALICE})}"},
    )
    return int((await response.get_json())["conversation"]["id"])


async def stored_bodies(app: RunningApp) -> list[str]:
    async with services(app).store.reading() as conn:
        rows = await conn.execute_fetchall("SELECT body FROM messages ORDER BY id")
    return [row[0] for row in rows]


async def test_a_body_sent_in_pieces_is_read_whole(app: RunningApp) -> None:
    conversation_id = await conversation(app)
    exchange = Exchange()
    task = run(app, scope("POST", f"/api/conversations/{conversation_id}/messages"), exchange)
    raw = json.dumps({"body": "in three pieces", "client_id": "p-1"}).encode()
    for piece in (raw[:5], raw[5:20], raw[20:]):
        await exchange.to_app.put({"type": "http.request", "body": piece, "more_body": True})
    await exchange.to_app.put({"type": "http.request", "body": b"", "more_body": False})
    status, headers, body = await exchange.response()
    await asyncio.wait_for(task, TIMEOUT)
    assert status == 201
    assert json.loads(body)["message"]["body"] == "in three pieces"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"


async def test_a_body_past_the_limit_is_refused_without_a_declared_length(
    app: RunningApp,
) -> None:
    conversation_id = await conversation(app)
    exchange = Exchange()
    task = run(app, scope("POST", f"/api/conversations/{conversation_id}/messages"), exchange)
    piece = b"x" * 4096
    for _ in range(MAX_REQUEST_BYTES // len(piece) + 1):
        await exchange.to_app.put({"type": "http.request", "body": piece, "more_body": True})
    status, _, body = await exchange.response()
    await asyncio.wait_for(task, TIMEOUT)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert await stored_bodies(app) == []


async def test_a_declared_length_past_the_limit_is_refused_before_reading(
    app: RunningApp,
) -> None:
    conversation_id = await conversation(app)
    exchange = Exchange()
    request = scope(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        headers=[("Content-Length", str(MAX_REQUEST_BYTES + 1))],
    )
    task = run(app, request, exchange)  # not one body message is sent
    status, _, _ = await exchange.response()
    await asyncio.wait_for(task, TIMEOUT)
    assert status == 413


async def test_a_client_that_leaves_mid_body_gets_nothing_stored(app: RunningApp) -> None:
    conversation_id = await conversation(app)
    exchange = Exchange()
    task = run(app, scope("POST", f"/api/conversations/{conversation_id}/messages"), exchange)
    await exchange.to_app.put({"type": "http.request", "body": b'{"body": "hal', "more_body": True})
    await exchange.to_app.put({"type": "http.disconnect"})
    await asyncio.wait_for(task, TIMEOUT)
    assert exchange.from_app.empty()  # nobody to answer
    assert await stored_bodies(app) == []


async def test_a_stream_whose_client_leaves_releases_its_subscription(
    app: RunningApp,
) -> None:
    exchange = Exchange()
    task = run(app, scope("GET", "/api/stream", member=BOB), exchange)
    await exchange.to_app.put({"type": "http.request", "body": b"", "more_body": False})
    start = await exchange.next()
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-type"].startswith(b"text/event-stream")
    assert b"event: hello" in (await exchange.next())["body"]
    assert services(app).broadcaster.subscription_count == 1
    await exchange.to_app.put({"type": "http.disconnect"})
    await asyncio.wait_for(task, TIMEOUT)  # the view ends; it isn't left waiting for events
    assert services(app).broadcaster.subscription_count == 0


async def test_other_methods_on_the_stream_are_405(app: RunningApp) -> None:
    response = await app.test_client().post(
        "/api/stream", headers={"Cookie": f"{COOKIE}={starlette_cookie({'user_id': ALICE})}"}
    )
    assert response.status_code == 405
    assert (await response.get_json())["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    options = await app.test_client().options("/api/stream")
    assert options.status_code == 200
    assert options.headers["Allow"] == "GET, HEAD, OPTIONS"


async def test_the_lane_routes_under_a_root_path(settings: Settings) -> None:
    async with create_app(replace(settings, root_path="/messages")).test_app() as test_app:
        cookie = {"Cookie": f"{COOKIE}={starlette_cookie({'user_id': ALICE})}"}
        client = test_app.test_client()
        started = await client.post(
            "/messages/api/conversations", json={"peer_id": BOB}, headers=cookie
        )
        conversation_id = (await started.get_json())["conversation"]["id"]
        sent = await client.post(
            f"/messages/api/conversations/{conversation_id}/messages",
            json={"body": "under a prefix"},
            headers=cookie,
        )
        assert sent.status_code == 201
        outside = await client.post(
            f"/api/conversations/{conversation_id}/messages", json={"body": "x"}, headers=cookie
        )
        assert outside.status_code == 404


async def test_a_body_that_stops_arriving_is_408(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(express, "BODY_SECONDS", 0.2)
    conversation_id = await conversation(app)
    exchange = Exchange()
    task = run(app, scope("POST", f"/api/conversations/{conversation_id}/messages"), exchange)
    await exchange.to_app.put({"type": "http.request", "body": b'{"body": "sl', "more_body": True})
    status, _, body = await exchange.response()  # and nothing more ever comes
    await asyncio.wait_for(task, TIMEOUT)
    assert status == 408
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert await stored_bodies(app) == []


async def test_an_id_longer_than_any_is_404(app: RunningApp) -> None:
    response = await app.test_client().post(
        "/api/conversations/" + "9" * 5000 + "/messages",
        json={"body": "x"},
        headers={"Cookie": f"{COOKIE}={starlette_cookie({'user_id': ALICE})}"},
    )
    assert response.status_code == 404


async def send_with(
    app: RunningApp, path: str, extra: Sequence[tuple[bytes, bytes]], conversation_id: int
) -> int:
    """The status of a send whose request carries `extra` headers beside the session."""
    exchange = Exchange()
    request = scope("POST", path.format(id=conversation_id))
    request["headers"] = [*request["headers"], *extra]
    task = run(app, request, exchange)
    body = json.dumps({"body": "odd request"}).encode()
    await exchange.to_app.put({"type": "http.request", "body": body, "more_body": False})
    status, _, _ = await exchange.response()
    await asyncio.wait_for(task, TIMEOUT)
    return status


async def test_a_cookie_that_is_not_utf8_does_not_stop_the_session(app: RunningApp) -> None:
    """Under /messages/ on the main site, the gateway gets every cookie of the host."""
    conversation_id = await conversation(app)
    extra = [(b"cookie", b"other-app=\xe9t\xe9")]
    assert await send_with(app, "/api/conversations/{id}/messages", extra, conversation_id) == 201
    exchange = Exchange()
    request = scope("GET", "/api/stream", member=BOB)
    request["headers"] = [*request["headers"], *extra]
    task = run(app, request, exchange)
    await exchange.to_app.put({"type": "http.request", "body": b"", "more_body": False})
    assert (await exchange.next())["status"] == 200
    await exchange.to_app.put({"type": "http.disconnect"})
    await asyncio.wait_for(task, TIMEOUT)


async def test_a_host_with_its_default_port_is_the_same_origin(app: RunningApp) -> None:
    """As a proxy with `proxy_set_header Host $host:$server_port` sends it."""
    conversation_id = await conversation(app)
    exchange = Exchange()
    request = scope("POST", f"/api/conversations/{conversation_id}/messages")
    request["headers"] = [
        (b"host", b"localhost:80") if name == b"host" else (name, value)
        for name, value in request["headers"]
    ] + [(b"origin", b"http://localhost")]
    task = run(app, request, exchange)
    body = json.dumps({"body": "through a proxy"}).encode()
    await exchange.to_app.put({"type": "http.request", "body": body, "more_body": False})
    status, _, _ = await exchange.response()
    await asyncio.wait_for(task, TIMEOUT)
    assert status == 201


async def test_an_absolute_form_target_is_routed_by_its_path(app: RunningApp) -> None:
    conversation_id = await conversation(app)
    path = "http://localhost/api/conversations/{id}/messages"
    assert await send_with(app, path, [], conversation_id) == 201
