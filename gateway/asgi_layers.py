"""What the ASGI layers around the app share: their type, and answering a request themselves.

The layers (`root_path`, `host_guard`) refuse some requests before Quart sees them, with
the same JSON error shape as `views/error_responses.py`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]


async def reply(
    send: ASGISendCallable,
    status: int,
    *,
    error: tuple[str, str] | None = None,
    location: str | None = None,
) -> None:
    """A whole response: `error` is (code, message) for a JSON error body; `location` a
    redirect's target."""
    body = b""
    headers: list[tuple[bytes, bytes]] = []
    if error is not None:
        code, message = error
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        headers.append((b"content-type", b"application/json"))
    if location is not None:
        headers.append((b"location", location.encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    await send(
        {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
