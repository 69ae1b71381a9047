"""Serving the gateway under a path prefix that the proxy passes on unchanged.

When the proxy strips the prefix (`location /messages/ { proxy_pass http://gateway/; }`)
nothing is needed: every URL the pages use is relative. When it passes `/messages/...`
through, `WB_ROOT_PATH=/messages` names it as the ASGI `root_path`, which Quart removes
before routing; the bare prefix redirects to it with a slash; anything outside it is a 404.
"""

from __future__ import annotations

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from gateway.asgi_layers import ASGIApp, reply


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
            await reply(send, 308, location=self._prefix + "/")
            return
        if not path.startswith(self._prefix + "/"):
            await reply(send, 404, error=("not_found", "Not found."))
            return
        # The ASGI spec keeps the prefix in `path` and names it in `root_path`; Quart strips it.
        inner = dict(scope)
        inner["root_path"] = self._prefix
        await self._app(inner, receive, send)  # type: ignore[arg-type]
