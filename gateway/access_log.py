"""One line per HTTP request, written when its response ends (`WB_ACCESS_LOG`).

    127.0.0.1:50312 "POST /api/conversations/7/messages HTTP/1.1" 201 123 0.004s

client, method and path, status, response body bytes, seconds from request to the response's
end (a stream's line comes when the stream ends), through the gateway's log. Never a body, a
cookie or a query string (a query may hold what a member searched for, or a moderator's
reason for an export); the path as sent, still percent-encoded, so it can't forge a line.

The gateway writes it rather than Hypercorn because Hypercorn's access log builds, for every
request and whatever the format uses, a dict of every request and response header and every
environment variable: a sixth of the worker's busy CPU on a send (py-spy, issue 11).
Hypercorn's own `accesslog` stays unset.
"""

from __future__ import annotations

import logging
import re
import time

from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)

from gateway.asgi_layers import ASGIApp

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
                scope["method"],
                _target(scope),
                scope["http_version"],
                status or "-",  # none: the client left before an answer
                size,
                time.monotonic() - started,
            )


def _target(scope: HTTPScope) -> str:
    """The path as the client sent it (percent-encoded, without the query), any control
    character escaped besides."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1").partition("?")[0] if raw else scope["path"]
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", path)
