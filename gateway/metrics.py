"""Numbers for operators: the introduction funnel (admins) and Prometheus text for `/metrics`.

Counters are per worker (each Hypercorn worker is a process): every sample carries a `worker`
label so a scraper that reaches different workers does not mix their totals. Database-wide
numbers (messages stored, open reports) are the same whichever worker answers.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from gateway.messaging.models import Member
from gateway.moderation.models import OriginFunnel
from gateway.moderation.roles import require_admin
from gateway.rate_limits import RATE_ACTIONS
from gateway.services import Services
from gateway.store import metrics as metrics_store
from gateway.store import moderation as moderation_store
from gateway.timestamps import Window, parse_utc

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def introductions(s: Services, me: Member, window: Window) -> list[OriginFunnel]:
    await require_admin(s, me)
    async with s.store.reading() as conn:
        return await metrics_store.introduction_funnel(conn, window)


async def delivery_lag_seconds(s: Services) -> float:
    """How long the oldest committed event this worker has not yet fanned out has waited.

    0 when this worker is caught up with the event log. A growing value means the relay or
    the broadcaster is falling behind, and live streams see messages late.
    """
    async with s.store.reading() as conn:
        oldest = await metrics_store.oldest_event_after(conn, s.broadcaster.last_published)
    if oldest is None:
        return 0.0
    committed = parse_utc(oldest)
    return max(0.0, (datetime.now(UTC) - committed).total_seconds())


async def prometheus_text(s: Services) -> str:
    async with s.store.reading() as conn:
        stored = await metrics_store.messages_total(conn)
        open_reports = await moderation_store.open_report_count(conn)
    lag = await delivery_lag_seconds(s)
    worker = f'worker="{os.getpid()}"'
    samples: list[tuple[str, str, str, str, float | int]] = [
        (
            "wb_open_streams",
            "gauge",
            "Open SSE streams and waiting polls.",
            worker,
            s.broadcaster.subscription_count,
        ),
        (
            "wb_streams_evicted_total",
            "counter",
            "Streams closed because their member opened more than WB_STREAMS_PER_MEMBER.",
            worker,
            s.broadcaster.evicted,
        ),
        (
            "wb_streams_signed_out_total",
            "counter",
            "Streams closed because their session ended in the main app.",
            worker,
            s.session_watch.closed_streams,
        ),
        ("wb_messages_stored", "gauge", "Messages stored in messaging.db.", "", stored),
        (
            "wb_messages_sent_total",
            "counter",
            "Messages stored by this worker since start.",
            worker,
            s.counters.messages_stored,
        ),
        (
            "wb_events_delivered_total",
            "counter",
            "Events handed to streams and polls.",
            worker,
            s.broadcaster.delivered,
        ),
        (
            "wb_poll_requests_total",
            "counter",
            "Requests to the polling endpoint.",
            worker,
            s.counters.poll_requests,
        ),
        (
            "wb_auth_failures_total",
            "counter",
            "Requests refused as unauthenticated.",
            worker,
            s.authenticator.failures,
        ),
        (
            "wb_delivery_lag_seconds",
            "gauge",
            "Age of the oldest committed event this worker has not delivered yet.",
            worker,
            lag,
        ),
        ("wb_reports_open", "gauge", "Reports waiting for a moderator.", "", open_reports),
    ]
    lines: list[str] = []
    for name, kind, help_text, labels, value in samples:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    lines.append(
        "# HELP wb_rate_limited_total Requests refused by a WB_RATE_* limit (429), by action."
    )
    lines.append("# TYPE wb_rate_limited_total counter")
    refused = s.rate_limiter.refused
    for action in RATE_ACTIONS:
        lines.append(f'wb_rate_limited_total{{{worker},action="{action}"}} {refused[action]}')
    return "\n".join(lines) + "\n"
