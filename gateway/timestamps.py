"""The one timestamp format the gateway stores and serves: ISO 8601 UTC, milliseconds, `Z`.

Stored as text, so text order is time order, and a window over stored times is a pair of
strings in this same format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def format_utc(moment: datetime) -> str:
    """`moment` in the stored format; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return format_utc(datetime.now(UTC))


def parse_utc(stored: str) -> datetime:
    """A stored timestamp back as an aware datetime."""
    return datetime.fromisoformat(stored)


@dataclass(frozen=True, slots=True)
class Window:
    """[since, until) over stored timestamps; None leaves that side open."""

    since: str | None
    until: str | None

    @property
    def lower(self) -> str:
        return self.since or ""

    @property
    def upper(self) -> str:
        # "~" sorts after every digit, so an open end admits every stored timestamp.
        return self.until or "~"
