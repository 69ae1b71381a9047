"""Driving an app through raw ASGI messages, for what a test client can't send: bytes that
are not UTF-8, a body in pieces, a client that leaves mid-request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from quart.typing import TestAppProtocol as RunningApp

from tests.support.members import ALICE, COOKIE, starlette_cookie

TIMEOUT = 5.0


@dataclass
class Exchange:
    """One request through the app's ASGI callable: what it was sent, what it answered."""

    to_app: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    from_app: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def receive(self) -> dict[str, Any]:
        return await self.to_app.get()

    async def send(self, message: dict[str, Any]) -> None:
        await self.from_app.put(message)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.from_app.get(), TIMEOUT)

    async def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        start = await self.next()
        body = b""
        while True:
            part = await self.next()
            body += part.get("body", b"")
            if not part.get("more_body", False):
                return start["status"], dict(start["headers"]), body


def scope(
    method: str, path: str, member: int | None = ALICE, headers: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    raw = [(b"host", b"localhost")]
    if member is not None:
        raw.append((b"cookie", f"{COOKIE}={starlette_cookie({'user_id': member})}".encode()))
    raw.extend((k.lower().encode(), v.encode()) for k, v in headers)
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
        "extensions": {},
    }


def run(app: RunningApp, request: dict[str, Any], exchange: Exchange) -> asyncio.Task[None]:
    return asyncio.create_task(app.app.asgi_app(request, exchange.receive, exchange.send))  # type: ignore[arg-type]
