"""Request plumbing shared by the views: services, the signed-in member, typed input."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

from quart import current_app, request

from gateway.exceptions import CrossOrigin, InvalidRequest
from gateway.models import Member
from gateway.services import Services

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def services() -> Services:
    return cast(Services, current_app.extensions["whiteballoon"])


async def current_member() -> Member:
    s = services()
    return await s.authenticator.member(request.cookies.get(s.settings.session_cookie))


async def json_object() -> dict[str, Any]:
    payload = await request.get_json(force=True, silent=True)
    if not isinstance(payload, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return payload


def int_field(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"`{name}` must be an integer.")
    return value


def optional_str_field(payload: dict[str, Any], name: str, max_length: int) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidRequest(f"`{name}` must be a string of at most {max_length} characters.")
    return value


def query_int(name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"`{name}` must be an integer.") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise InvalidRequest(f"`{name}` must be {bound}.")
    return value


async def reject_cross_site_writes() -> None:
    """Cookie-authenticated writes must come from the gateway's own pages (or allowed ones)."""
    if request.method in _SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    if origin is not None:
        allowed = services().settings.allowed_origins
        if origin.rstrip("/") in allowed:
            return
        # The host, not the scheme: behind a TLS-terminating proxy the gateway sees plain http.
        if origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower():
            raise CrossOrigin()
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise CrossOrigin()
