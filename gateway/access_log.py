"""One line per HTTP request, written when its response ends (`WB_ACCESS_LOG`).

    127.0.0.1:50312 "POST /api/conversations/7/messages HTTP/1.1" 201 123 0.004s

client, method and path, status, response body bytes, seconds from request to the response's
end (a stream's line comes when the stream ends), through the gateway's log. Never a body, a
cookie or a query string (a query may hold what a member searched for, or a moderator's
reason for an export). The method and path are logged percent-encoded wherever they aren't
plain, so no request can forge or garble a line.

The gateway writes it rather than Hypercorn because Hypercorn's access log builds, for every
request and whatever the format uses, a dict of every request and response header and every
environment variable: a sixth of the worker's busy CPU on a send (py-spy, issue 11).
Hypercorn's own `accesslog` stays unset.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote, quote_from_bytes, urlsplit

from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)

from gateway.asgi_layers import ASGIApp

log = logging.getLogger(__name__)

# A path's own characters (RFC 3986 pchar and "/"), and "%" so its escapes stay as sent.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # what a method may be (RFC 9110)


class AccessLog:
    def __init__(self, app: ASGIApp, logger: logging.Logger = log) -> None:
        self._app = app
        self._log = logger

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0
        size = 0

        async def counted(message: ASGISendEvent) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self._app(scope, receive, counted)
        finally:
            client = scope.get("client")
            self._log.info(
                '%s "%s %s HTTP/%s" %s %d %.3fs',
                f"{client[0]}:{client[1]}" if client else "-",
                _method(scope),
                _target(scope),
                scope["http_version"],
                status or "-",  # none: the client left before an answer
                size,
                time.monotonic() - started,
            )


def _target(scope: HTTPScope) -> str:
    """The path as the client sent it, percent-encoded wherever it isn't plain (a space, a
    quote, a backslash, a control or non-ASCII byte: HTTP/2 allows some of them in a path),
    without a query, a fragment, or an absolute-form target's scheme, userinfo and host."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
    target = raw.partition(b"?")[0].partition(b"#")[0]
    if not target.startswith(b"/"):
        target = urlsplit(target).path
    return quote_from_bytes(target, safe=_PATH_SAFE) or "/"


def _method(scope: HTTPScope) -> str:
    method = scope["method"]
    return method if _TOKEN.fullmatch(method) else quote(method, safe="")
