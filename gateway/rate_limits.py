"""Per-member rate limits: token buckets, their settings' format, and the refusal a member sees.

Pure arithmetic: a bucket's state (`Bucket`) comes from and goes back to messaging.db
(`gateway/store/rate_limits.py`), read and written inside the same write transaction as the
action it pays for, so every worker (and later every host) on one database shares it. Time
is a parameter (`now`, seconds since the epoch), never read here.

A limit `COUNT/PERIOD` refills COUNT tokens per PERIOD, one at a time, and holds at most COUNT
(its burst); `COUNT/PERIOD burst B` holds at most B. A member starts with a full bucket; each
action takes one token; with less than one token left the action is refused and nothing of
it is written, with the time until the next token as `Retry-After`.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Literal, get_args

from gateway.exceptions import RateLimited

log = logging.getLogger(__name__)

RateAction = Literal["sends", "conversations", "intents", "reports", "blocks"]
RATE_ACTIONS: tuple[RateAction, ...] = get_args(RateAction)

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_FORMAT = re.compile(
    r"^\s*(?P<count>\d+)\s*/\s*(?P<amount>\d+(?:\.\d+)?)?\s*(?P<unit>[smhd])"
    r"(?:\s+burst\s+(?P<burst>\d+))?\s*$",
    re.IGNORECASE,
)
_MAX_TOKENS = 1_000_000
_MAX_PERIOD = 366 * 86400.0
# Tokens are floats: a refill that lands exactly on a whole token must count as one.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RateLimit:
    """COUNT tokens refilled per PERIOD seconds, at most BURST held."""

    count: int
    period: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        text = f"{self.count}/{_period_text(self.period)}"
        return text if self.burst == self.count else f"{text} burst {self.burst}"


def parse_rate_limit(raw: str) -> RateLimit | None:
    """`60/1m`, `20/1h burst 5`, `30/60s`, `20/d`; `off` (None) disables the limit."""
    if raw.strip().lower() == "off":
        return None
    found = _FORMAT.match(raw)
    if found is None:
        raise ValueError(
            "must be COUNT/PERIOD with a unit s, m, h or d, optionally followed by "
            "'burst N' (e.g. 60/1m, 20/1h burst 5), or off"
        )
    count = int(found["count"])
    period = float(found["amount"] or 1) * _UNITS[found["unit"].lower()]
    burst = int(found["burst"]) if found["burst"] is not None else count
    if not 1 <= count <= _MAX_TOKENS or not 1 <= burst <= _MAX_TOKENS:
        raise ValueError(f"COUNT and burst must be between 1 and {_MAX_TOKENS}")
    if not 0 < period <= _MAX_PERIOD:
        raise ValueError("PERIOD must be more than 0 and at most 366 days")
    return RateLimit(count, period, burst)


def _period_text(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one token may be taken; `bucket` is the state to store if the action goes
    ahead (unchanged when refused); `retry_after` the seconds until a token (0 if allowed)."""

    allowed: bool
    bucket: Bucket
    retry_after: float


def refill(limit: RateLimit, bucket: Bucket | None, now: float) -> Bucket:
    """The bucket as of `now`. A clock that steps back (another host, an NTP step) adds
    nothing and never moves `updated_at` backwards."""
    if bucket is None:
        return Bucket(float(limit.burst), now)
    elapsed = max(0.0, now - bucket.updated_at)
    tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)
    return Bucket(tokens, max(now, bucket.updated_at))


def take(limit: RateLimit, bucket: Bucket | None, now: float) -> Decision:
    """Take one token from `bucket` (None: never used, so full) at time `now`."""
    current = refill(limit, bucket, now)
    if current.tokens + _EPSILON >= 1.0:
        return Decision(True, Bucket(max(0.0, current.tokens - 1.0), current.updated_at), 0.0)
    # Measured from the bucket's own time, which a stepped-back clock leaves ahead of `now`.
    wait = (1.0 - current.tokens) / limit.per_second + (current.updated_at - now)
    return Decision(False, current, max(wait, 0.0))


def retry_after_header(seconds: float) -> int:
    """Whole seconds for `Retry-After`: rounded up, at least 1."""
    return max(1, math.ceil(seconds - _EPSILON))


def wait_text(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    hours, rest = divmod(minutes, 60)
    return f"{hours} hours" if not rest else f"{hours} hours {rest} minutes"


_MESSAGES: dict[RateAction, str] = {
    "sends": "You are sending messages faster than WhiteBalloon allows. "
    "You can send again in {wait}.",
    "conversations": "You have started many new conversations in a short time. "
    "You can start another in {wait}.",
    "intents": "You have opened many new messages in a short time. Try again in {wait}.",
    "reports": "You have sent many reports in a short time; moderators have them. "
    "You can report again in {wait}.",
    "blocks": "You have blocked or unblocked many times in a short time. "
    "You can do so again in {wait}.",
}

LOG_EVERY_SECONDS = 60.0
_LOG_MEMORY = 10_000


class RateLimiter:
    """One worker's limits, and what it refused: counted for /metrics and logged, at most
    one line per member and action a minute, so a script hammering away cannot flood the log."""

    def __init__(self, limits: dict[RateAction, RateLimit | None]) -> None:
        self.limits = limits
        self.refused: Counter[RateAction] = Counter()
        self._logged: dict[tuple[int, RateAction], tuple[float, int]] = {}

    def limit(self, action: RateAction) -> RateLimit | None:
        return self.limits.get(action)

    def refusal(self, member_id: int, action: RateAction, retry_after: float) -> RateLimited:
        """Count and log a refusal; the error to raise."""
        self.refused[action] += 1
        seconds = retry_after_header(retry_after)
        self._log(member_id, action, seconds)
        return RateLimited(seconds, _MESSAGES[action].format(wait=wait_text(seconds)))

    def _log(self, member_id: int, action: RateAction, seconds: int) -> None:
        now = time.monotonic()
        key = (member_id, action)
        last, quiet = self._logged.get(key, (float("-inf"), 0))
        if now - last < LOG_EVERY_SECONDS:
            self._logged[key] = (last, quiet + 1)
            return
        if len(self._logged) >= _LOG_MEMORY:  # forget members who stopped a while ago
            cutoff = now - LOG_EVERY_SECONDS
            self._logged = {k: v for k, v in self._logged.items() if v[0] >= cutoff}
        self._logged[key] = (now, 0)
        more = f"; {quiet} more refused since the last line" if quiet else ""
        log.warning(
            "rate limited: member %d, %s (limit %s), may retry in %d s%s",
            member_id,
            action,
            self.limits.get(action),
            seconds,
            more,
        )
