"""Numbers: the admins' introduction funnel and the operators' Prometheus endpoint."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from gateway import metrics
from gateway.limits import REPLY_WINDOW_DAYS
from gateway.views.request import current_member, query_window, services

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/api/metrics/introductions")
async def introductions() -> dict[str, Any]:
    member = await current_member()
    span = query_window()
    funnels = await metrics.introductions(services(), member, span)
    return {
        "since": span.since,
        "until": span.until,
        "reply_window_days": REPLY_WINDOW_DAYS,
        "origins": [funnel.to_json() for funnel in funnels],
    }


@blueprint.get("/metrics")
async def prometheus() -> Response:
    # Aggregate counts only, no member data. Operators should still keep /metrics off the
    # public internet at the reverse proxy, as is usual for Prometheus endpoints.
    text = await metrics.prometheus_text(services())
    return Response(text, content_type=metrics.PROMETHEUS_CONTENT_TYPE)
