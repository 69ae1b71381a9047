"""The browser client repeats a few of `gateway.limits` so it can refuse early and count
characters as the user types. Each copy is read here from the shipped file, so changing a
limit in one place and not the other fails a test rather than the user."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gateway
from gateway import limits

STATIC = Path(gateway.__file__).resolve().parent / "static"

# (file, pattern whose one group is the browser's copy, the Python constant it copies)
COPIES = [
    ("thread.js", r"export const MAX_CHARS = (\d+);", limits.MAX_BODY_CHARS),
    ("safety.js", r"export const MAX_NOTE_CHARS = (\d+);", limits.MAX_NOTE_CHARS),
    (
        "moderation.js",
        r'el\("input", \{ name: "resolution",[^}]*\bmaxlength: (\d+)',
        limits.MAX_RESOLUTION_CHARS,
    ),
    (
        "moderation.html",
        r'<input id="export-reason"[^>]*\smaxlength="(\d+)"',
        limits.MAX_REASON_CHARS,
    ),
    ("app.js", r"ref\.slice\(0, (\d+)\)", limits.MAX_ORIGIN_REF_CHARS),
]


@pytest.mark.parametrize(("name", "pattern", "expected"), COPIES, ids=[c[0] for c in COPIES])
def test_the_browser_copy_of_a_limit_matches_gateway_limits(
    name: str, pattern: str, expected: int
) -> None:
    found = re.findall(pattern, (STATIC / name).read_text(encoding="utf-8"))
    assert len(found) == 1, f"{name}: expected one match of {pattern!r}, found {found}"
    assert int(found[0]) == expected, f"{name} says {found[0]}, gateway/limits.py says {expected}"
