"""Serving the gateway under a path prefix that the proxy passes on unchanged.

When the proxy strips the prefix (`location /messages/ { proxy_pass http://gateway/; }`)
nothing is needed: every URL the pages use is relative. When it passes `/messages/...`
through, `WB_ROOT_PATH=/messages` names it as the ASGI `root_path`, which Quart removes
before routing; the bare prefix redirects to it with a slash; anything outside it is a 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]


class RootPath:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self._app = app
        self._prefix = prefix

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == self._prefix:
            await _redirect(send, self._prefix + "/")
            return
        if not path.startswith(self._prefix + "/"):
            await _not_found(send)
            return
        # The ASGI spec keeps the prefix in `path` and names it in `root_path`; Quart strips it.
        inner = dict(scope)
        inner["root_path"] = self._prefix
        await self._app(inner, receive, send)  # type: ignore[arg-type]


async def _redirect(send: ASGISendCallable, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 308,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _not_found(send: ASGISendCallable) -> None:
    body = b'{"error":{"code":"not_found","message":"Not found."}}'
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
