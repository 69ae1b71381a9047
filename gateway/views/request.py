"""Request plumbing shared by the views: services, the signed-in member, typed input, and the
same-origin rule for cookie-authenticated requests."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from quart import current_app, request
from werkzeug.routing import IntegerConverter, Map

from gateway.auth import Credential
from gateway.exceptions import CrossOrigin, InvalidRequest, NotFound
from gateway.limits import DEFAULT_PAGE, MAX_ID, MAX_ORIGIN_REF_CHARS, MAX_PAGE
from gateway.messaging.models import ORIGIN_TYPES, Member, Origin, OriginType
from gateway.services import Services, services_of
from gateway.timestamps import Window, format_utc

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# What Linux file systems hold: a name of 255 bytes, a path of 4096.
_MAX_NAME_BYTES = 255
_MAX_PATH_BYTES = 4096


class IdConverter(IntegerConverter):
    """`<id:name>` in routes: a positive id SQLite can hold; anything else is a 404."""

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=MAX_ID)


def services() -> Services:
    return services_of(current_app)


async def current_member() -> Member:
    member, _ = await current_session()
    return member


async def current_session() -> tuple[Member, Credential]:
    """The signed-in member and the credential they signed in with (streams keep it)."""
    return await services().authenticator.member(request.cookies)


async def json_object() -> dict[str, Any]:
    raw = await request.get_data(as_text=False)
    return parse_json_object(raw if isinstance(raw, bytes) else raw.encode())


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a UTF-8 JSON object (whichever layer read it)."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:  # bytes that are not UTF-8
        raise InvalidRequest("The body must be UTF-8 JSON.") from None
    except (ValueError, RecursionError):  # not JSON; or nested thousands deep, yet small
        payload = None
    if not isinstance(payload, dict):
        raise InvalidRequest("The body must be a JSON object.")
    # JSON may escape lone surrogates (\ud800), which no UTF-8 text (nor SQLite) can hold;
    # only a body with such an escape is worth encoding again to find out.
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(payload, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidRequest("The body contains text that is not valid Unicode.") from None
    return payload


def int_field(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_ID:
        raise InvalidRequest(f"`{name}` must be an integer.")
    return value


def optional_str_field(payload: dict[str, Any], name: str, max_length: int) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidRequest(f"`{name}` must be a string of at most {max_length} characters.")
    return value


def origin_field(payload: dict[str, Any], *, default: Origin | None) -> Origin:
    """`origin`: where a conversation or compose began. Missing is `default`, or refused."""
    raw = payload.get("origin")
    if raw is None and default is not None:
        return default
    if not isinstance(raw, dict) or raw.get("type") not in ORIGIN_TYPES:
        raise InvalidRequest(f"`origin.type` must be one of {', '.join(ORIGIN_TYPES)}.")
    ref = raw.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_ORIGIN_REF_CHARS):
        raise InvalidRequest(
            f"`origin.ref` must be a string of at most {MAX_ORIGIN_REF_CHARS} characters or null."
        )
    return Origin(cast(OriginType, raw["type"]), ref)


def query_int(name: str, *, minimum: int, maximum: int = MAX_ID) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"`{name}` must be an integer.") from None
    if not minimum <= value <= maximum:
        bound = f"between {minimum} and {maximum}" if maximum < MAX_ID else f">= {minimum}"
        raise InvalidRequest(f"`{name}` must be {bound}.")
    return value


def query_limit() -> int:
    """`limit` of a listing page."""
    return query_int("limit", minimum=1, maximum=MAX_PAGE) or DEFAULT_PAGE


def query_window() -> Window:
    """`since` and `until`: ISO 8601 dates or times (naive means UTC)."""
    since, until = _query_instant("since"), _query_instant("until")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("`since` must be before `until`.")
    return Window(since, until)


def _query_instant(name: str) -> str | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        # A `+` in a query string arrives as a space: "12:00:00 02:00" meant "+02:00".
        value = datetime.fromisoformat(raw.replace(" ", "+") if "T" in raw else raw)
    except ValueError:
        raise InvalidRequest(
            f"`{name}` must be an ISO 8601 date or time, such as 2026-01-31 or "
            "2026-01-31T12:00:00Z."
        ) from None
    try:
        return format_utc(value)
    except OverflowError:  # e.g. 0001-01-01 in a zone east of UTC
        raise InvalidRequest(f"`{name}` is out of range.") from None


async def refuse_impossible_static_names() -> None:
    """A static file name no file system holds is a plain 404, not an OSError."""
    if request.endpoint != "static":
        return
    path = os.fsencode(request.path)
    if len(path) > _MAX_PATH_BYTES or any(len(part) > _MAX_NAME_BYTES for part in path.split(b"/")):
        raise NotFound()


async def reject_cross_site_requests() -> None:
    if is_cross_site(
        request.method,
        request.path,
        request.headers.get("Origin"),
        request.headers.get("Sec-Fetch-Site"),
        request.host,
        services().settings.allowed_origins,
    ):
        raise CrossOrigin()


def is_cross_site(
    method: str,
    path: str,
    origin: str | None,
    fetch_site: str | None,
    host: str,
    allowed_origins: Collection[str],
) -> bool:
    """Cookie-authenticated requests must come from the gateway's own pages (or allowed
    origins): writes, and API reads too, since some have effects (an export is audited, so
    is a moderator's view of reported messages) and a page elsewhere must not trigger them.

    A browser's `Origin`, when sent, must be ours or allowed; without it, `Sec-Fetch-Site`
    must not say another site; requests with neither (curl, the main app's server) pass.
    """
    if method in _SAFE_METHODS and not path.startswith("/api/"):
        return False  # pages and static files: no effects, and they are loaded cross-site by links
    if origin is not None:
        return not _origin_allowed(origin, host, allowed_origins)
    return fetch_site is not None and fetch_site not in ("same-origin", "none")


def _origin_allowed(origin: str, host: str, allowed_origins: Collection[str]) -> bool:
    if origin.rstrip("/") in allowed_origins:
        return True
    # The host, not the scheme: behind a TLS-terminating proxy the gateway sees plain http.
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # e.g. "http://[::1": no origin a browser sends
        return False
    return origin != "null" and netloc.lower() == host.lower()
