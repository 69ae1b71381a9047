"""Requests whose Host header names no possible host get a 400 before the app sees them.

Quart binds its URL map to the request's host before any error handler runs, and Werkzeug
refuses a host the IDNA codec can't encode (a label over 63 characters, an empty label) with
an exception that would otherwise surface as a 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from werkzeug.exceptions import BadHost
from werkzeug.routing import Map

from gateway.asgi_layers import ASGIApp, reply

_PROBE = Map()


class HostGuard:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" and not _possible_host(scope):
            await reply(send, 400, error=("invalid_request", "The Host header names no host."))
            return
        await self._app(scope, receive, send)


def _possible_host(scope: Scope) -> bool:
    headers = cast(Iterable[tuple[bytes, bytes]], scope.get("headers", ()))
    for name, value in headers:
        if name == b"host":
            try:
                _PROBE.bind(value.decode("latin-1"))  # the check Quart's routing makes
            except (BadHost, UnicodeError, ValueError):
                return False
    return True
