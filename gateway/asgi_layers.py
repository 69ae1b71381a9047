"""What the ASGI layers around the app share: their type, the headers every response carries,
and answering a request themselves.

The layers (`root_path`, `host_guard`, `views/express`) answer some requests before Quart
sees them, with the same JSON error shape as `views/error_responses.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from gateway.views.error_responses import error_body

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# On every response, whichever layer answers it.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)
RAW_SECURITY_HEADERS: Headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS]


async def reply(
    send: ASGISendCallable,
    status: int,
    *,
    error: tuple[str, str] | None = None,
    location: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    """A whole response: `error` is (code, message) for a JSON error body; `location` a
    redirect's target; `headers` any others."""
    body = b""
    raw: Headers = list(RAW_SECURITY_HEADERS)
    if error is not None:
        body = error_body(*error)
        raw.append((b"content-type", b"application/json"))
    if location is not None:
        raw.append((b"location", location.encode()))
    raw.extend((name.lower().encode(), value.encode()) for name, value in headers)
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw, "trailers": False})
    await send({"type": "http.response.body", "body": body, "more_body": False})
