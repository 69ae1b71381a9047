"""The two busiest routes as plain ASGI, in front of Quart: sending a message and the stream.

    POST /api/conversations/<id>/messages      send (views/messaging.py has the other routes)
    GET|HEAD /api/stream                       the SSE stream (its polling twin: views/live.py)

Each is a view like any other: it parses the request, calls the same action or feed, and
serializes the answer, with the same rules (`views/request.py`: same origin, JSON bodies),
the same error shape (`views/error_responses.py`) and the same headers as a Quart view. What
it leaves out is Quart's per-request machinery (request and app contexts, routing, request
and response objects), which on a send cost about a fifth of the worker's CPU and on an open
stream several KB that it holds for the stream's whole life (issue 11, benchmarks/README.md).
Every other request, and a method these routes don't serve, goes on to Quart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qsl, urlparse

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
from werkzeug.sansio.http import parse_cookie
from werkzeug.sansio.utils import get_host

from gateway.asgi_layers import RAW_SECURITY_HEADERS, ASGIApp, Headers, reply
from gateway.auth import Credential
from gateway.exceptions import (
    CrossOrigin,
    GatewayError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
)
from gateway.limits import MAX_CLIENT_ID_CHARS, MAX_ID, MAX_REQUEST_BYTES
from gateway.live import feed
from gateway.messaging import actions
from gateway.messaging.models import Member
from gateway.services import Services
from gateway.views.error_responses import INTERNAL_ERROR, error_headers
from gateway.views.request import is_cross_site, optional_str_field, parse_json_object

log = logging.getLogger(__name__)

# The routes served here, in Quart's rule syntax (the route fuzzer reads them).
ROUTES: tuple[tuple[str, frozenset[str]], ...] = (
    ("/api/conversations/<id:conversation_id>/messages", frozenset({"POST"})),
    ("/api/stream", frozenset({"GET", "HEAD"})),
)
_SEND_PATH = re.compile(r"/api/conversations/([0-9]+)/messages")
_ID_DIGITS = len(str(MAX_ID))
_STREAM_PATH = "/api/stream"
_STREAM_ALLOW = ("Allow", "GET, HEAD, OPTIONS")
_NOT_ALLOWED = ("method_not_allowed", "The method is not allowed for the requested URL.")
# As long as Quart waits for a request body (its BODY_TIMEOUT); then 408.
BODY_SECONDS = 60.0

STREAM_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    *RAW_SECURITY_HEADERS,
]
_JSON_HEADERS: Headers = [(b"content-type", b"application/json"), *RAW_SECURITY_HEADERS]


class _ClientGone(Exception):
    """The client disconnected before its request was read: nobody to answer."""


class ExpressLane:
    """An ASGI layer: the routes above, and everything else passed on to `app`.

    `services` gives the running app's services (they exist once the lifespan has started).
    """

    def __init__(self, app: ASGIApp, services: Callable[[], Services]) -> None:
        self._app = app
        self._services = services

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            path = _route_path(scope)
            method = scope["method"]
            if path == _STREAM_PATH:
                if method in ("GET", "HEAD"):
                    await self._answer(scope, send, self._stream(scope, receive, send, path))
                elif method == "OPTIONS":
                    await reply(send, 200, headers=[_STREAM_ALLOW])
                else:
                    await reply(send, 405, error=_NOT_ALLOWED, headers=[_STREAM_ALLOW])
                return
            if method == "POST" and path.endswith("/messages"):
                matched = _SEND_PATH.fullmatch(path)
                if matched is not None:
                    send_ = self._send(scope, receive, send, path, matched.group(1))
                    await self._answer(scope, send, send_)
                    return
        await self._app(scope, receive, send)

    async def _answer(
        self, scope: HTTPScope, send: ASGISendCallable, view: Awaitable[None]
    ) -> None:
        """Run a view; a failure before it answered becomes the usual JSON error."""
        try:
            await view
        except _ClientGone:
            return
        except GatewayError as error:
            await reply(
                send, error.status, error=(error.code, error.message), headers=error_headers(error)
            )
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            status, code, message = INTERNAL_ERROR
            await reply(send, status, error=(code, message))

    async def _member(
        self, scope: HTTPScope, path: str, headers: dict[bytes, str]
    ) -> tuple[Services, Member, Credential]:
        """The services, and the signed-in member of a same-origin request."""
        s = self._services()
        if is_cross_site(
            scope["method"],
            path,
            headers.get(b"origin"),
            headers.get(b"sec-fetch-site"),
            _host(scope, headers),
            s.settings.allowed_origins,
        ):
            raise CrossOrigin()
        member, credential = await s.authenticator.member(parse_cookie(_cookies(scope)))
        return s, member, credential

    async def _send(
        self,
        scope: HTTPScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        path: str,
        raw_id: str,
    ) -> None:
        # No conversation has a longer id (nor should int() parse thousands of digits).
        if len(raw_id) > _ID_DIGITS or not 1 <= int(raw_id) <= MAX_ID:
            raise NotFound()
        conversation_id = int(raw_id)
        headers = _headers(scope)
        s, member, _ = await self._member(scope, path, headers)
        payload = parse_json_object(await _body(receive, headers))
        body = payload.get("body")
        if not isinstance(body, str):
            raise InvalidRequest("`body` must be a string.")
        client_id = optional_str_field(payload, "client_id", max_length=MAX_CLIENT_ID_CHARS)
        message, stored = await actions.send_message(s, member, conversation_id, body, client_id)
        await _json(send, 201 if stored else 200, {"message": message.to_json()})

    async def _stream(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable, path: str
    ) -> None:
        headers = _headers(scope)
        s, _, credential = await self._member(scope, path, headers)
        start = {"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS}
        if scope["method"] == "HEAD":
            await send(cast(Any, start))  # headers only: nothing to subscribe to
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        cursor = headers.get(b"last-event-id") or _query_value(scope, "last_event_id")
        body = feed.stream(
            s,
            credential,
            cursor,
            heartbeat=s.settings.heartbeat_seconds,
            lifetime=s.settings.stream_max_seconds,
        )
        await send(cast(Any, start))
        await _pump(body, receive, send)


async def _pump(
    body: AsyncIterator[bytes], receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """Send the stream's chunks until it ends, or until the client disconnects: then the
    stream is cancelled where it waits, and its subscription released."""
    task = asyncio.current_task()
    assert task is not None
    pumping = True

    def client_left(_: asyncio.Future[None]) -> None:
        if pumping:
            task.cancel()

    watcher = asyncio.ensure_future(_disconnected(receive))
    watcher.add_done_callback(client_left)
    try:
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not watcher.done() or watcher.cancelled():
            raise  # cancelled from outside (the server is stopping): not ours to swallow
        task.uncancel()  # the client left: nothing more to do
    except Exception:
        # The response has started: the client sees the stream end and resumes by cursor.
        log.exception("stream failed")
    finally:
        pumping = False
        watcher.cancel()
        await cast(Any, body).aclose()


async def _disconnected(receive: ASGIReceiveCallable) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _body(receive: ASGIReceiveCallable, headers: dict[bytes, str]) -> bytes:
    """The whole request body, refused past MAX_REQUEST_BYTES (declared or sent)."""
    declared = headers.get(b"content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone()
                chunk = cast(bytes, message.get("body", b""))
                size += len(chunk)
                if size > MAX_REQUEST_BYTES:
                    raise PayloadTooLarge()
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise RequestTimeout() from None


async def _json(send: ASGISendCallable, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _route_path(scope: HTTPScope) -> str:
    """The path Quart would route: an absolute-form target reduced to its path, without the
    `root_path` a proxy passed through (a path outside it routes nowhere)."""
    path = scope["path"]
    if not path.startswith("/"):
        path = urlparse(path).path
    root = scope.get("root_path", "")
    if root:
        return path[len(root) :] if path.startswith(root) and path != root else " "
    return path


def _headers(scope: HTTPScope) -> dict[bytes, str]:
    """Each header's first value by lower-case name, as Quart's `request.headers.get` gives
    it."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        found.setdefault(name, value.decode("latin-1"))
    return found


def _cookies(scope: HTTPScope) -> str:
    """Every Cookie header, joined as Quart (Werkzeug) joins them."""
    return ";".join(
        value.decode("latin-1") for name, value in scope["headers"] if name == b"cookie"
    )


def _host(scope: HTTPScope, headers: dict[bytes, str]) -> str:
    """The host as Quart's `request.host` has it: a default port dropped; without a Host
    header, the server's address (HTTP/1.1) or nothing (HTTP/1.0, as Quart sets it)."""
    header = headers.get(b"host")
    if header is None and scope["http_version"] < "1.1":
        header = ""
    return get_host(scope["scheme"], header, scope.get("server"))


def _query_value(scope: HTTPScope, name: str) -> str | None:
    """The first value of a query parameter, as Quart's `request.args.get` gives it."""
    for key, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        if key == name:
            return value
    return None
