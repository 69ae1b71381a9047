"""Property-based fuzzing of every route the app registers (issue 10): whatever a client
sends, the gateway never answers 5xx, and every 4xx is the one error shape
`{"error": {"code", "message"}}`.

The routes are read from `app.url_map.iter_rules()` at collection time (with and without demo
mode), so a new route is fuzzed as soon as it exists; `ROUTES` says what each route's
documented inputs are, and a route missing from it fails the suite. Each route gets its own
app (the directory of tests/support/members.py, a little seeded history, rate limits off so
that writes reach the store) and `max_examples` generated requests: method, path parameters,
query string, JSON/form/raw body, cookies and browser headers. The stream is read only up to
its first bytes, under a hard timeout, then disconnected.

Bounded for CI: `HYPOTHESIS_PROFILE` picks `ci` / `dev` (the default; 100 examples per
route, 20-40 s on 2 cores) or `long` (1000 per route, several minutes, for a local hunt);
under `CI` every profile is derandomized, so CI runs are reproducible.

Each 500 the fuzzing found has a focused regression test at the end of this file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import string
from base64 import b64encode
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner
from quart.testing import QuartClient
from werkzeug.datastructures import Headers

from gateway.app import create_app
from gateway.auth import sign_session
from gateway.config import Settings
from gateway.limits import (
    MAX_BODY_CHARS,
    MAX_CLIENT_ID_CHARS,
    MAX_NOTE_CHARS,
    MAX_ORIGIN_REF_CHARS,
    MAX_PAGE,
    MAX_REASON_CHARS,
    MAX_REQUEST_BYTES,
    MAX_RESOLUTION_CHARS,
    MAX_SESSION_ID_CHARS,
)
from gateway.store.stand_in import create_sessions
from gateway.views import express
from tests.support.members import ALICE, BOB, COOKIE, DAVE, ERIN, HANK, MOD, SECRET, as_member

APP_SESSION_COOKIE = "wb_session_id"
REQUEST_SECONDS = 5.0  # every request but the stream must be answered within this
STREAM_FIRST_BYTES_SECONDS = 3.0

# Profiles: examples per route. Under CI every profile is derandomized (reproducible).
_PROFILES = {"ci": 100, "dev": 100, "long": 1000}
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
if _PROFILE not in _PROFILES:
    raise ValueError(f"HYPOTHESIS_PROFILE={_PROFILE!r}: use one of {', '.join(_PROFILES)}")
FUZZ = hypothesis_settings(
    max_examples=_PROFILES[_PROFILE],
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    database=None,  # nothing written into the work tree; failures print their example
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one app per route, shared by its examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# Values


def _latin1_text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """What a client can put in a header: any printable byte, no control characters."""
    return st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        min_size=min_size,
        max_size=max_size,
    )


ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "..",
        ".",
        "%",
        "%00",
        "%ff",
        "\x00",
        "\ufeff",
        "\u202e",
        "é",
        "\U0001f388",
        "null",
        "undefined",
        "NaN",
        "true",
        "[]",
        "{}",
        "'; DROP TABLE messages; --",
        "<script>",
        "a" * 256,
        "x" * 5000,
    ]
)
# Any text, lone surrogates included (they reach the app escaped in JSON).
ANY_TEXT = st.one_of(st.text(max_size=30), ODD_TEXT)
HEADER_TEXT = st.one_of(_latin1_text(), ODD_TEXT.filter(lambda s: "\x00" not in s))

BIG_INTS = [
    0,
    -1,
    1,
    2,
    3,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**30,
]
INT_TEXT = st.one_of(
    st.sampled_from(BIG_INTS).map(str),
    st.integers().map(str),
    st.sampled_from(
        ["00001", "+1", "-0", "1.0", "1e3", "0x10", " 1", "1 ", "١٢", "1_000", "9" * 400, "", "abc"]
    ),
)
# A path segment where an `<id:...>` converter sits.
ID_SEGMENT = st.one_of(INT_TEXT, st.integers(1, 5).map(str), ANY_TEXT)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    ANY_TEXT,
)
JUNK_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# An id-like JSON value: mostly integers, some of every other kind.
JSON_ID = st.one_of(st.integers(1, 5), st.sampled_from(BIG_INTS), JUNK_JSON)


def near(limit: int) -> st.SearchStrategy[str]:
    """Strings around a documented length limit, padded or multi-byte."""
    return st.one_of(
        st.builds(
            lambda n, c: c * n,
            st.sampled_from([limit - 1, limit, limit + 1]),
            st.sampled_from("aé\U0001f388"),
        ),
        st.builds(
            lambda n: " " * 3 + "a" * n + " " * 3, st.sampled_from([limit - 1, limit, limit + 1])
        ),
        st.sampled_from(["", " ", "\n\t ", "\ud800", "a\udfff", "\U0001f388" * 3]),
        ANY_TEXT,
    )


def near_json(limit: int) -> st.SearchStrategy[Any]:
    """A JSON field with a length limit: strings around it, or any JSON at all."""
    return st.one_of(near(limit), near(limit), JUNK_JSON)


ORIGIN = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["request", "profile", "suggestion", "inbox", "imported", "", "REQUEST"]
            )
        },
        optional={"ref": st.one_of(st.none(), near_json(MAX_ORIGIN_REF_CHARS))},
    ),
    JUNK_JSON,
)
ISO_TEXT = st.one_of(
    st.sampled_from(
        [
            "2026-01-31",
            "2026-01-31T12:00:00Z",
            "2026-01-31T12:00:00+02:00",
            "2026-01-31T12:00:00 02:00",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "9999-12-31",
            "0001-01-01",
            "2026-13-01",
            "2026-02-30",
            "T",
            "2026-01-31T25:00",
            "-2026-01-01",
            "20260131",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat()),
    ANY_TEXT,
)
WAIT_TEXT = st.one_of(
    st.sampled_from(
        [
            "0",
            "-0",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e-300",
            "25.0000001",
            "26",
            "1e9",
            "-1",
            "0x1",
            "",
            "abc",
        ]
    ),
    st.floats(0, 0.05).map(str),  # in range but short: an empty poll may wait this long
    st.floats(min_value=25.001, allow_infinity=True).map(str),
    st.floats(max_value=-0.001).map(str),
)


# Requests


@dataclass
class Route:
    """What a route documents: query parameters, JSON fields, or a form; and its kind."""

    query: dict[str, st.SearchStrategy[str]] = field(default_factory=dict)
    json: dict[str, st.SearchStrategy[Any]] = field(default_factory=dict)
    form: dict[str, st.SearchStrategy[str]] = field(default_factory=dict)
    kind: str = "api"  # "api", "page" (HTML on success), "stream" (SSE), "static"


PAGE = st.sampled_from(["1", "50", str(MAX_PAGE), str(MAX_PAGE + 1), "0", "-1"])
LIMIT = st.one_of(PAGE, INT_TEXT)
IDS_QUERY = {"before": INT_TEXT, "limit": LIMIT}
USERNAME = st.one_of(
    st.sampled_from(["alice", "bob", "dave", "erin", "grace", "ALICE", " bob "]), ANY_TEXT
)

# Every rule the app registers, by its rule string. A new route needs an entry here.
ROUTES: dict[str, Route] = {
    "/": Route(kind="page"),
    "/moderation": Route(kind="page"),
    "/static/<path:filename>": Route(kind="static"),
    "/healthz": Route(),
    "/metrics": Route(),
    "/api/instance": Route(),
    "/api/me": Route(),
    "/api/unread": Route(),
    "/api/members": Route(query={"q": st.one_of(USERNAME, st.just("%"), st.just("_"))}),
    "/api/members/lookup": Route(query={"username": USERNAME}),
    "/api/conversations": Route(json={"peer_id": JSON_ID, "origin": ORIGIN}),
    "/api/conversations/<id:conversation_id>": Route(),
    "/api/conversations/<id:conversation_id>/messages": Route(
        query={"before": INT_TEXT, "after": INT_TEXT, "limit": LIMIT},
        json={"body": near_json(MAX_BODY_CHARS), "client_id": near_json(MAX_CLIENT_ID_CHARS)},
    ),
    "/api/conversations/<id:conversation_id>/read": Route(json={"message_id": JSON_ID}),
    "/api/stream": Route(query={"last_event_id": INT_TEXT}, kind="stream"),
    "/api/events": Route(query={"after": st.one_of(INT_TEXT, ANY_TEXT), "wait": WAIT_TEXT}),
    "/api/reports": Route(
        json={
            "conversation_id": JSON_ID,
            "message_id": st.one_of(st.none(), JSON_ID),
            "category": st.one_of(
                st.sampled_from(["spam", "harassment", "safety", "other", "SPAM"]), JUNK_JSON
            ),
            "note": near_json(MAX_NOTE_CHARS),
        }
    ),
    "/api/blocks": Route(json={"member_id": JSON_ID}),
    "/api/blocks/<id:member_id>": Route(),
    "/api/intents": Route(json={"peer_id": JSON_ID, "origin": ORIGIN}),
    "/api/moderation/me": Route(),
    "/api/moderation/reports": Route(
        query={
            "status": st.one_of(st.sampled_from(["open", "resolved", "OPEN", ""]), ANY_TEXT),
            "after": INT_TEXT,
            **IDS_QUERY,
        }
    ),
    "/api/moderation/reports/<id:report_id>/resolve": Route(
        json={"resolution": near_json(MAX_RESOLUTION_CHARS)}
    ),
    "/api/moderation/reports/summary": Route(),
    "/api/moderation/members": Route(query={"username": USERNAME}),
    "/api/moderation/audit": Route(query=IDS_QUERY),
    "/api/moderation/log": Route(query=IDS_QUERY),
    "/api/moderation/exports/<id:export_id>": Route(),
    "/api/moderation/export": Route(
        query={
            "member_id": st.one_of(st.integers(1, 12).map(str), INT_TEXT),
            "since": ISO_TEXT,
            "until": ISO_TEXT,
            "format": st.one_of(st.sampled_from(["ndjson", "csv", "json", "xml"]), ANY_TEXT),
            "scope": st.one_of(st.sampled_from(["reported", "metadata", "full", "all"]), ANY_TEXT),
            "reason": st.one_of(st.just("case 12"), near(MAX_REASON_CHARS)),
        }
    ),
    "/api/metrics/introductions": Route(query={"since": ISO_TEXT, "until": ISO_TEXT}),
    "/direct": Route(form={"username": USERNAME}),
    "/with/<username>": Route(),
    "/<id:thread_id>": Route(),
    "/demo/members": Route(),
    "/demo/login": Route(query={"user": USERNAME}),
    "/demo/logout": Route(),
}

# Path parameters, by converter.
STATIC_NAME = st.one_of(
    st.sampled_from(
        [
            "app.js",
            "index.html",
            "favicon.svg",
            "../app.py",
            "..%2fapp.py",
            "/etc/passwd",
            "a/../../x",
            "app.js/",
            "app.js\x00.png",
            "x" * 255,
            "x" * 256,
            "y/" + "x" * 300,
            "x" * 5000,
            "abcdefgh/" * 500 + "x",
            "",
            ".",
            "CON",
            "\U0001f388" * 64,
            "é" * 200,
        ]
    ),
    st.text(max_size=40),
)
CONVERTERS: dict[str, st.SearchStrategy[str]] = {
    "id": ID_SEGMENT,
    "path": STATIC_NAME,
    "default": st.one_of(USERNAME, st.just("a" * 300)),
}
_PARAMETER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")

METHODS = ["GET", "POST", "DELETE", "HEAD", "PUT", "PATCH", "OPTIONS"]


def _text_json(value: Any, ensure_ascii: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    return text.encode("utf-8", "surrogatepass")  # unescaped lone surrogates: invalid UTF-8


@st.composite
def json_bodies(draw: st.DrawFn, route: Route) -> bytes:
    """A JSON body: the documented fields with junk, or any JSON, or malformed JSON."""
    kind = draw(st.sampled_from(["fields", "fields", "fields", "any", "deep", "number", "raw"]))
    if kind == "fields" and route.json:
        payload: dict[str, Any] = {}
        for name, values in route.json.items():
            if draw(st.booleans()) or draw(st.booleans()):
                payload[name] = draw(values)
        payload.update(draw(st.dictionaries(st.text(max_size=8), JUNK_JSON, max_size=2)))
        return _text_json(payload, draw(st.booleans()))
    if kind == "deep":
        depth = draw(st.sampled_from([100, 999, 1000, 3000, 8000]))
        name = draw(st.sampled_from([*route.json, "x"]))
        inner = "[" * depth + "]" * depth
        if draw(st.booleans()):
            inner = '{"a":' * depth + "1" + "}" * depth
        return f'{{"{name}": {inner}}}'.encode() if draw(st.booleans()) else inner.encode()
    if kind == "number":
        name = draw(st.sampled_from([*route.json, "x"]))
        literal = draw(
            st.one_of(
                st.sampled_from(
                    ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1.0", "-0", "1E2", "0.5"]
                ),
                st.integers(18, 6000).map(lambda n: "1" + "0" * n),
            )
        )
        return f'{{"{name}": {literal}}}'.encode()
    if kind == "raw":
        return draw(
            st.one_of(
                st.binary(max_size=64),
                st.sampled_from(
                    [
                        b'{"body": "\xff\xfe"}',
                        b'{"peer_id": 2, "origin": {"type": "inbox", "ref": "\xc3"}}',
                        b"\xef\xbb\xbf{}",
                        b"\xff\xfe{\x00}\x00",
                        b"{",
                        b'{"a": 1,}',
                        b"{}" * 9000,
                        b'{"body": "' + b"a" * (MAX_REQUEST_BYTES + 1) + b'"}',
                        b'"\\ud800"',
                        b'{"\\ud800": 1}',
                    ]
                ),
            )
        )
    return _text_json(draw(JUNK_JSON), draw(st.booleans()))


@st.composite
def form_bodies(draw: st.DrawFn, route: Route) -> tuple[bytes, str]:
    pairs = [(name, draw(values)) for name, values in route.form.items() if draw(st.booleans())]
    pairs += draw(st.lists(st.tuples(st.text(max_size=8), ANY_TEXT), max_size=2))
    if draw(st.booleans()):
        encoded = urlencode(
            [
                (k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass"))
                for k, v in pairs
            ]
        )
        return encoded.encode(), "application/x-www-form-urlencoded"
    boundary = draw(st.sampled_from(["b0undary", "", "x" * 80]))
    parts = b"".join(
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (
            boundary.encode(),
            k.encode("utf-8", "surrogatepass"),
            v.encode("utf-8", "surrogatepass"),
        )
        for k, v in pairs
    )
    body = parts + b"--%s--\r\n" % boundary.encode()
    if draw(st.booleans()):
        body = draw(st.binary(max_size=64))
    content_type = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                "multipart/form-data",
                "multipart/form-data; boundary=",
                'multipart/form-data; boundary="unterminated',
            ]
        )
    )
    return body, content_type


@st.composite
def bodies(draw: st.DrawFn, route: Route) -> tuple[bytes, str | None]:
    """A body and its Content-Type (None: no header)."""
    kind = draw(st.sampled_from(["none", "json", "json", "json", "form", "binary", "huge"]))
    if kind == "none":
        return b"", None
    if kind == "form":
        return draw(form_bodies(route))
    if kind == "binary":
        return draw(st.binary(max_size=64)), draw(
            st.sampled_from([None, "application/octet-stream", "text/plain", "application/json"])
        )
    if kind == "huge":
        return b"{" + b" " * MAX_REQUEST_BYTES + b"}", "application/json"
    content_type = draw(
        st.sampled_from(
            [
                "application/json",
                "application/json",
                "application/json; charset=utf-8",
                "application/json; charset=latin-1",
                "application/json; charset=nonsense",
                "text/plain",
                None,
            ]
        )
    )
    return draw(json_bodies(route)), content_type


def signed(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    signer = TimestampSigner(secret)
    if timestamp is not None:
        signer.get_timestamp = lambda: timestamp  # type: ignore[method-assign]
    return signer.sign(payload).decode()


@st.composite
def junk_signed_cookies(draw: st.DrawFn) -> str:
    """Cookies signed with the real secret (or nearly) whose contents are not a session."""
    kind = draw(st.sampled_from(["session", "session", "payload", "raw", "secret", "expired"]))
    if kind == "session":
        session: dict[str, Any] = {}
        if draw(st.booleans()) or draw(st.booleans()):
            session["user_id"] = draw(st.one_of(st.sampled_from([ALICE, HANK, 99]), JSON_ID))
        if draw(st.booleans()):
            session["session_id"] = draw(
                st.one_of(
                    st.sampled_from(["", "x" * (MAX_SESSION_ID_CHARS + 1), "\ud800"]), JSON_ID
                )
            )
        return sign_session(SECRET, session)
    if kind == "payload":  # any JSON, base64'd: lists, numbers, deep nesting, huge integers
        text = draw(
            st.one_of(
                JUNK_JSON.map(json.dumps),
                st.sampled_from([100, 1000, 3000]).map(lambda n: "[" * n + "]" * n),
                st.sampled_from([19, 4300, 5000]).map(lambda n: '{"user_id": 1' + "0" * n + "}"),
                st.just('{"user_id": 1, "user_id": [1]}'),
            )
        )
        return signed(b64encode(text.encode("utf-8", "surrogatepass")))
    if kind == "raw":  # not base64, or base64 of bytes that are not JSON
        return signed(draw(st.one_of(st.binary(max_size=30).map(b64encode), st.just(b"!!!"))))
    if kind == "secret":
        return sign_session("not-the-secret", {"user_id": ALICE})
    return signed(
        b64encode(b'{"user_id": 1}'), timestamp=draw(st.sampled_from([0, 1, 2**40, 2**62]))
    )


@dataclass(frozen=True)
class Cast:
    """Cookies of real members: signed ones, and WhiteBalloon's own session ids."""

    signed: dict[int, str]
    app_sessions: dict[int, str]


def cookie_headers(cast: Cast) -> st.SearchStrategy[str | None]:
    member = st.sampled_from(sorted(cast.signed)).map(lambda m: f"{COOKIE}={cast.signed[m]}")
    app_session = st.sampled_from(sorted(cast.app_sessions)).map(
        lambda m: f"{APP_SESSION_COOKIE}={cast.app_sessions[m]}"
    )
    junk_app_session = st.one_of(
        HEADER_TEXT, st.just("0" * (MAX_SESSION_ID_CHARS + 1)), st.just("' OR 1=1 --")
    ).map(lambda v: f"{APP_SESSION_COOKIE}={v}")
    junk_signed = junk_signed_cookies().map(lambda v: f"{COOKIE}={v}")
    garbage = HEADER_TEXT.map(lambda v: f"{COOKIE}={v}")
    one = st.one_of(
        member, member, app_session, junk_app_session, junk_signed, junk_signed, garbage
    )
    return st.one_of(
        st.none(),
        one,
        st.lists(one, min_size=2, max_size=3).map("; ".join),
        HEADER_TEXT,  # not even name=value
    )


@dataclass
class Fuzzed:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def describe(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return f"{self.method} {self.path}\nheaders: {self.headers}\nbody: {body!r}"


def _optional(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), values)


@st.composite
def requests(draw: st.DrawFn, rule: str, methods: frozenset[str], cast: Cast) -> Fuzzed:
    route = ROUTES[rule]
    documented = sorted(methods - {"OPTIONS"})
    method = draw(
        st.one_of(
            st.sampled_from(documented), st.sampled_from(documented), st.sampled_from(METHODS)
        )
    )

    def segment(match: re.Match[str]) -> str:
        converter = match.group(1) or "default"
        value = draw(CONVERTERS[converter], label=match.group(2))
        return quote(
            value.encode("utf-8", "surrogatepass"), safe="/" if converter == "path" else ""
        )

    path = _PARAMETER.sub(segment, rule)

    pairs = [(name, draw(values)) for name, values in route.query.items() if draw(st.booleans())]
    pairs += draw(st.lists(st.tuples(st.text(max_size=8), ANY_TEXT), max_size=2))
    if pairs and draw(st.booleans()):
        pairs.append(draw(st.sampled_from(pairs)))  # a repeated key
    query = urlencode(
        [
            (k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass"))
            for k, v in pairs
        ],
        quote_via=quote,
    )
    if draw(st.integers(0, 9)) == 0:
        query = draw(st.text(string.printable.strip() + "%", max_size=20))
    if query:
        path = f"{path}?{query}"

    body, content_type = (
        draw(bodies(route))
        if method not in ("GET", "HEAD") or draw(st.integers(0, 5)) == 0
        else (b"", None)
    )
    headers: list[tuple[str, str]] = []
    extra = {
        "Cookie": draw(cookie_headers(cast)),
        "Origin": draw(
            _optional(
                st.one_of(
                    st.sampled_from(
                        [
                            "http://localhost",
                            "https://localhost",
                            "http://LOCALHOST",
                            "http://localhost:8000",
                            "https://evil.example",
                            "null",
                            "",
                            "http://[::1",
                            "localhost",
                        ]
                    ),
                    HEADER_TEXT,
                )
            )
        ),
        "Sec-Fetch-Site": draw(
            _optional(
                st.one_of(
                    st.sampled_from(["same-origin", "same-site", "cross-site", "none"]), HEADER_TEXT
                )
            )
        ),
        "Last-Event-ID": draw(_optional(st.one_of(INT_TEXT.filter(str.isascii), HEADER_TEXT))),
        "Referer": draw(
            _optional(
                st.one_of(
                    st.sampled_from(["http://localhost/people/bob", "http://localhost"]),
                    HEADER_TEXT,
                )
            )
        ),
        "Host": draw(
            st.one_of(
                st.none(),
                st.none(),
                st.sampled_from(
                    [
                        "localhost",
                        "LOCALHOST",
                        "evil.example",
                        "",
                        "[::1]",
                        "a" * 300,
                        "localhost:99999",
                    ]
                ),
            )
        ),
        "Content-Type": content_type,
    }
    for name, value in extra.items():
        if value is not None:
            headers.append((name, value))
    length = draw(
        st.one_of(
            st.just(str(len(body))),
            st.just(str(len(body))),
            st.none(),
            st.sampled_from(["abc", "-1", "0", str(10**12), "1e3", ""]),
        )
    )
    if length is not None:
        headers.append(("Content-Length", length))
    return Fuzzed(method, path, headers, body)


# The app under test


@dataclass
class Target:
    rule: str
    methods: frozenset[str]
    client: QuartClient
    cast: Cast
    errors: list[logging.LogRecord]


def _settings(base: Settings) -> Settings:
    # Rate limits off, so that writes reach the store; they have their own tests.
    return replace(base, **{f.name: None for f in fields(base) if f.name.startswith("rate_")})


def _rules(demo: bool) -> dict[str, frozenset[str]]:
    """Every rule the app serves (demo mode adds the demo's), with its methods: Quart's
    and the express lane's."""
    settings = Settings(
        messaging_db=Path("unused.db"),
        app_db=None if demo else Path("unused-app.db"),
        session_secrets=None if demo else (SECRET,),
    )
    rules: dict[str, frozenset[str]] = {}
    for rule in create_app(settings).url_map.iter_rules():
        rules[rule.rule] = rules.get(rule.rule, frozenset()) | frozenset(rule.methods or ())
    for path, methods in express.ROUTES:
        rules[path] = rules.get(path, frozenset()) | methods
    return rules


RULES = _rules(demo=False)
DEMO_RULES = {rule: methods for rule, methods in _rules(demo=True).items() if rule not in RULES}


class _Collect(logging.Handler):
    """Errors, and anything logged with a traceback, from the root logger and the gateway's
    (which does not propagate when gateway.asgi configured it): each record once."""

    LOGGERS = ("", "gateway")

    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.NOTSET)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        serious = record.levelno >= logging.ERROR or record.exc_info
        if serious and not any(seen is record for seen in self.records):
            self.records.append(record)


@pytest.fixture(params=sorted({**RULES, **DEMO_RULES}))
async def target(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    app_db: Path,
    settings: Settings,
    cookies: dict[int, str],
) -> AsyncIterator[Target]:
    rule: str = request.param
    if rule not in ROUTES:
        pytest.fail(f"{rule} has no fuzzing strategy: add it to ROUTES in {__name__}")
    if rule in DEMO_RULES:
        app = create_app(_settings(Settings(messaging_db=tmp_path / "demo" / "messaging.db")))
    else:
        app = create_app(_settings(settings))
    app_sessions = await create_sessions(app_db, [ALICE, BOB, HANK])
    signed = {m: cookies[m] for m in (ALICE, BOB, DAVE, ERIN, HANK, MOD)}
    signed[99] = sign_session(SECRET, {"user_id": 99})  # no such member
    errors: list[logging.LogRecord] = []
    handler = _Collect(errors)
    for name in _Collect.LOGGERS:
        logging.getLogger(name).addHandler(handler)
    try:
        async with app.test_app() as test_app:
            client = test_app.app.test_client(use_cookies=False)
            if rule not in DEMO_RULES:
                await _seed(client, cookies)
            yield Target(
                rule,
                RULES.get(rule) or DEMO_RULES[rule],
                client,
                Cast(signed, app_sessions),
                errors,
            )
    finally:
        for name in _Collect.LOGGERS:
            logging.getLogger(name).removeHandler(handler)


async def _seed(client: QuartClient, cookies: dict[int, str]) -> None:
    """A little history, so that small ids name real conversations, messages and reports."""

    async def post(user: int, path: str, payload: dict[str, Any], status: int) -> Any:
        response = await client.post(path, json=payload, headers=as_member(cookies[user]))
        assert response.status_code == status, await response.get_data(as_text=True)
        return await response.get_json()

    conversation = (await post(ALICE, "/api/conversations", {"peer_id": BOB}, 201))["conversation"]
    first = await post(
        ALICE, f"/api/conversations/{conversation['id']}/messages", {"body": "hi"}, 201
    )
    await post(BOB, f"/api/conversations/{conversation['id']}/messages", {"body": "hello"}, 201)
    await post(ALICE, "/api/conversations", {"peer_id": DAVE}, 201)
    await post(
        BOB,
        "/api/reports",
        {
            "conversation_id": conversation["id"],
            "message_id": first["message"]["id"],
            "category": "spam",
        },
        201,
    )
    export = await client.get(
        "/api/moderation/export?member_id=1&reason=seed&scope=full",
        headers=as_member(cookies[HANK]),
    )
    assert export.status_code == 200
    await export.get_data()


async def perform(target: Target, fuzzed: Fuzzed) -> tuple[int | None, Headers | None, bytes]:
    """Send `fuzzed`; the stream is read up to its first bytes, then disconnected."""
    connection = target.client.request(
        fuzzed.path, method=fuzzed.method, headers=Headers(fuzzed.headers)
    )
    first = b""
    async with asyncio.timeout(REQUEST_SECONDS):
        async with connection:
            if fuzzed.body:
                await connection.send(fuzzed.body)
            await connection.send_complete()
            if ROUTES[target.rule].kind == "stream":
                first = await asyncio.wait_for(connection.receive(), STREAM_FIRST_BYTES_SECONDS)
                await connection.disconnect()
    response = await connection.as_response()
    return connection.status_code, connection.headers, first + await response.get_data()


def _failure(fuzzed: Fuzzed, what: str, errors: list[logging.LogRecord]) -> str:
    logged = "\n".join(logging.Formatter().format(record) for record in errors[-3:])
    return f"{what}\n{fuzzed.describe()}\nlogged:\n{logged or '(nothing)'}"


def check(
    fuzzed: Fuzzed,
    status: int | None,
    headers: Headers | None,
    body: bytes,
    errors: list[logging.LogRecord],
) -> None:
    assert status is not None, _failure(fuzzed, "no response", errors)
    assert headers is not None, _failure(fuzzed, "no response headers", errors)
    assert status < 500, _failure(fuzzed, f"{status}: {body[:500]!r}", errors)
    if not 400 <= status < 500:
        return
    # A client's mistake is one access-log line, never an error or a traceback in the log.
    assert not errors, _failure(fuzzed, f"{status} logged an error", errors)
    content_type = headers.get("Content-Type", "")
    assert content_type.startswith("application/json"), _failure(
        fuzzed, f"{status} answered as {content_type!r}: {body[:200]!r}", errors
    )
    if fuzzed.method == "HEAD":
        return  # headers only
    try:
        payload = json.loads(body)
    except ValueError:
        pytest.fail(
            _failure(fuzzed, f"{status} with a body that is not JSON: {body[:200]!r}", errors)
        )
    shape = f"{status} without the error shape: {body[:300]!r}"
    assert isinstance(payload, dict), _failure(fuzzed, shape, errors)
    assert set(payload) == {"error"}, _failure(fuzzed, shape, errors)
    error = payload["error"]
    assert isinstance(error, dict), _failure(fuzzed, shape, errors)
    assert isinstance(error.get("code"), str), _failure(fuzzed, shape, errors)
    assert error["code"], _failure(fuzzed, shape, errors)
    assert isinstance(error.get("message"), str), _failure(fuzzed, shape, errors)


def test_every_route_has_a_fuzzing_strategy() -> None:
    registered = {**RULES, **DEMO_RULES}
    assert not set(registered) - set(ROUTES), "routes no fuzzing strategy covers"
    assert not set(ROUTES) - set(registered), "strategies for routes that no longer exist"


@FUZZ
@given(data=st.data())
async def test_no_request_gets_a_5xx_and_every_4xx_has_the_error_shape(
    target: Target, data: st.DataObject
) -> None:
    fuzzed = data.draw(requests(target.rule, target.methods, target.cast))
    note(fuzzed.describe())
    target.errors.clear()
    try:
        status, headers, body = await perform(target, fuzzed)
    except TimeoutError:
        pytest.fail(_failure(fuzzed, "no answer within the time limit", target.errors))
    except Exception as error:
        # Out of the app itself: Hypercorn answers 500 and logs "Error in ASGI Framework".
        raise AssertionError(
            _failure(fuzzed, f"the app raised {error!r} (Hypercorn answers 500)", target.errors)
        ) from error
    check(fuzzed, status, headers, body, target.errors)


# Regression tests: each 500 fuzzing found, reduced to one request.

JSON_ROUTES = [
    "/api/conversations",
    "/api/conversations/1/messages",
    "/api/conversations/1/read",
    "/api/reports",
    "/api/blocks",
    "/api/intents",
    "/api/moderation/reports/1/resolve",
]


async def _assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, await response.get_data(as_text=True)
    assert (await response.get_json())["error"]["code"] == code


@pytest.mark.parametrize("path", JSON_ROUTES)
async def test_a_json_body_that_is_not_utf8_is_a_400_on_every_json_route(
    client: QuartClient, cookies: dict[int, str], path: str
) -> None:
    response = await client.post(
        path,
        data=b'{"body": "\xff\xfe", "resolution": "\xc3"}',
        headers=as_member(cookies[HANK], **{"Content-Type": "application/json"}),
    )
    await _assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "session",
    [
        {"user_id": ALICE, "session_id": [1]},
        {"user_id": ALICE, "session_id": {"id": "x"}},
        {"user_id": ALICE, "session_id": 2**64},
        {"user_id": 2**63},
        {"user_id": 2**64},
    ],
    ids=[
        "session_id-list",
        "session_id-object",
        "session_id-2**64",
        "user_id-2**63",
        "user_id-2**64",
    ],
)
async def test_a_signed_session_of_the_wrong_shape_is_a_401(
    client: QuartClient, session: dict[str, Any]
) -> None:
    response = await client.get("/api/me", headers=as_member(sign_session(SECRET, session)))
    await _assert_error(response, 401, "unauthenticated")


async def test_a_static_name_over_255_characters_is_a_404(client: QuartClient) -> None:
    await _assert_error(await client.get("/static/" + "a" * 256), 404, "not_found")


async def test_a_static_name_over_255_bytes_is_a_404(client: QuartClient) -> None:
    await _assert_error(await client.get("/static/" + "é" * 128), 404, "not_found")


async def test_a_static_path_longer_than_the_file_system_allows_is_a_404(
    client: QuartClient,
) -> None:
    await _assert_error(await client.get("/static/" + "abcdefgh/" * 500 + "x"), 404, "not_found")


async def test_a_signed_session_id_with_a_lone_surrogate_is_a_401(client: QuartClient) -> None:
    cookie = sign_session(SECRET, {"user_id": ALICE, "session_id": "\ud800"})
    await _assert_error(
        await client.get("/api/me", headers=as_member(cookie)), 401, "unauthenticated"
    )


async def test_a_signed_cookie_nested_thousands_deep_is_a_401(client: QuartClient) -> None:
    cookie = signed(b64encode(b"[" * 3000 + b"]" * 3000))
    await _assert_error(
        await client.get("/api/me", headers=as_member(cookie)), 401, "unauthenticated"
    )


@pytest.mark.parametrize("timestamp", [2**40, 2**62])  # a datetime ValueError; an OSError
async def test_a_signed_cookie_dated_after_the_year_9999_is_a_401(
    client: QuartClient, timestamp: int
) -> None:
    cookie = signed(b64encode(b'{"user_id": 1}'), timestamp=timestamp)
    await _assert_error(
        await client.get("/api/me", headers=as_member(cookie)), 401, "unauthenticated"
    )


@pytest.mark.parametrize("host", ["a" * 64, "a..b", "."])
async def test_a_host_with_a_label_over_63_characters_is_a_400(
    client: QuartClient, host: str
) -> None:
    await _assert_error(
        await client.get("/api/instance", headers={"Host": host}), 400, "invalid_request"
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_origin_urlsplit_refuses_is_a_403(
    client: QuartClient, cookies: dict[int, str], method: str
) -> None:
    response = await client.open(
        "/api/blocks", method=method, headers=as_member(cookies[ALICE], Origin="http://[::1")
    )
    await _assert_error(response, 403, "cross_origin")


async def test_a_form_whose_referer_urlsplit_refuses_still_redirects(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    response = await client.post(
        "/direct",
        form={"username": "bob"},
        headers=as_member(cookies[ALICE], Referer="http://[::1"),
    )
    assert response.status_code == 303
