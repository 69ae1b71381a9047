"""Raw-byte fuzzing of the express lane's two routes (issue 10's "never a 500", issue 11's lane).

The route fuzzer (tests/test_fuzz_routes.py) speaks through Quart's test client, which sends
header values as UTF-8 text; a real client may send any bytes HTTP allows. Here hypothesis
writes the ASGI messages themselves: header values of any bytes h11 lets through (no CR, LF
or NUL), several Cookie headers, a body in pieces with or without a declared length, a client
that leaves at any point. Whatever arrives, the lane answers below 500 with the usual error
shape, or streams; it never hangs; and once the client has gone no subscription is left.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.config import Settings
from gateway.limits import MAX_REQUEST_BYTES
from tests.support.asgi import TIMEOUT, Exchange, RunningApp, run, scope
from tests.support.members import ALICE, BOB, COOKIE, starlette_cookie

EXAMPLES = 1000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 150
FUZZ = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any byte h11 accepts in a header value: no CR, LF or NUL.
HEADER_BYTES = st.binary(max_size=48).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
)
SESSION = f"{COOKIE}={starlette_cookie({'user_id': ALICE})}".encode()
HEADER_NAMES = [
    b"cookie", b"origin", b"sec-fetch-site", b"content-length", b"last-event-id",
    b"content-type", b"host", b"x-anything",
]  # fmt: skip


@st.composite
def headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    found: list[tuple[bytes, bytes]] = [(b"host", draw(st.sampled_from([b"localhost", b""])))]
    if draw(st.booleans()):
        found.append((b"cookie", SESSION))
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(HEADER_NAMES))
        value = draw(
            st.one_of(
                HEADER_BYTES,
                st.sampled_from([b"http://localhost", b"http://localhost:80", b"cross-site",
                                 b"999999999999999999999", b"-1", b"\xb2", b"application/json"]),
                HEADER_BYTES.map(lambda v: SESSION + b"; " + v),
            )
        )  # fmt: skip
        found.append((name, value))
    return found


BODY = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda body, client_id: json.dumps({"body": body, "client_id": client_id}).encode(),
        st.text(max_size=60),
        st.one_of(st.none(), st.text(max_size=20)),
    ),
    st.just(b"x" * (MAX_REQUEST_BYTES + 1)),
)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[tuple[RunningApp, int]]:
    async with create_app(replace(settings, rate_sends=None)).test_app() as test_app:
        started = await test_app.test_client().post(
            "/api/conversations",
            json={"peer_id": BOB},
            headers={"Cookie": SESSION.decode()},
        )
        yield test_app, int((await started.get_json())["conversation"]["id"])


async def answered(exchange: Exchange, task: asyncio.Task[None]) -> dict[str, Any] | None:
    """The response start, or None if the app ended without one (the client had left)."""
    getting = asyncio.ensure_future(exchange.from_app.get())
    done, _ = await asyncio.wait({getting, task}, timeout=TIMEOUT, return_when="FIRST_COMPLETED")
    assert done, "neither an answer nor an end"
    if getting in done:
        return getting.result()
    getting.cancel()
    task.result()  # an exception escaping the app fails the example
    return None


def check_error(start: dict[str, Any], body: bytes) -> None:
    status = start["status"]
    assert status < 500, (status, body)
    if status >= 400:
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)


async def read_whole(exchange: Exchange) -> bytes:
    body = b""
    while True:
        part = await exchange.next()
        body += part.get("body", b"")
        if not part.get("more_body", False):
            return body


@FUZZ
@given(
    data=st.data(),
    raw_headers=headers(),
    body=BODY,
    pieces=st.integers(1, 3),
    declared=st.booleans(),
    leave_early=st.booleans(),
    digits=st.one_of(st.just(""), st.from_regex(r"[0-9]{1,25}", fullmatch=True)),
)
async def test_sends_of_any_bytes_never_fail(
    app: tuple[RunningApp, int],
    data: st.DataObject,
    raw_headers: list[tuple[bytes, bytes]],
    body: bytes,
    pieces: int,
    declared: bool,
    leave_early: bool,
    digits: str,
) -> None:
    running, conversation_id = app
    request = scope("POST", f"/api/conversations/{digits or conversation_id}/messages", None)
    request["headers"] = raw_headers + ([(b"content-length", str(len(body)).encode())] * declared)
    request["query_string"] = data.draw(st.binary(max_size=30), label="query")
    note(repr(request["headers"]))
    exchange = Exchange()
    task = run(running, request, exchange)
    size = max(1, len(body) // pieces)
    chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    try:
        for n, chunk in enumerate(chunks):
            more = n < len(chunks) - 1
            await exchange.to_app.put({"type": "http.request", "body": chunk, "more_body": more})
            if leave_early and more:
                await exchange.to_app.put({"type": "http.disconnect"})
                break
        start = await answered(exchange, task)
        if start is not None:
            check_error(start, await read_whole(exchange))
    finally:
        await exchange.to_app.put({"type": "http.disconnect"})
        await asyncio.wait_for(task, TIMEOUT)


@FUZZ
@given(
    raw_headers=headers(),
    method=st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "DELETE"]),
    query=st.one_of(st.binary(max_size=40), st.just(b"last_event_id=0"), st.just(b"x=%ff")),
    leave_after=st.integers(0, 1),  # the hello is the one frame that always comes
)
async def test_streams_of_any_bytes_never_fail_or_linger(
    app: tuple[RunningApp, int],
    raw_headers: list[tuple[bytes, bytes]],
    method: str,
    query: bytes,
    leave_after: int,
) -> None:
    running, _ = app
    request = scope(method, "/api/stream", None)
    request["headers"] = raw_headers
    request["query_string"] = query
    note(repr(request))
    exchange = Exchange()
    task = run(running, request, exchange)
    try:
        await exchange.to_app.put({"type": "http.request", "body": b"", "more_body": False})
        start = await answered(exchange, task)
        if start is not None:
            if start["status"] == 200 and method == "GET":
                for _ in range(leave_after):  # the opening frame, then the client leaves
                    assert (await exchange.next())["type"] == "http.response.body"
            else:
                check_error(start, await read_whole(exchange))
    finally:  # whatever failed, the client leaves: the next example starts clean
        await exchange.to_app.put({"type": "http.disconnect"})
        await asyncio.wait_for(task, TIMEOUT)
    assert running.app.extensions["whiteballoon"].broadcaster.subscription_count == 0
