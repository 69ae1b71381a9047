"""The scoped export download and the operators' metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, request

from gateway import metrics
from gateway.exceptions import InvalidRequest
from gateway.moderation import export
from gateway.moderation.export_formats import EXPORT_FORMATS
from gateway.store.exports import Window
from gateway.views.request import current_member, query_int, services

blueprint = Blueprint("exports", __name__)

MAX_REASON_CHARS = 500


@blueprint.get("/api/moderation/export")
async def export_history() -> Response:
    member = await current_member()
    member_id = query_int("member_id", minimum=1)
    if member_id is None:
        raise InvalidRequest("`member_id` is required.")
    scope = request.args.get("scope") or "reported"
    if scope not in export.SCOPES:
        raise InvalidRequest(f"`scope` must be one of {', '.join(export.SCOPES)}.")
    fmt = request.args.get("format") or "ndjson"
    if fmt not in EXPORT_FORMATS:
        raise InvalidRequest(f"`format` must be one of {', '.join(EXPORT_FORMATS)}.")
    reason = (request.args.get("reason") or "").strip()
    if not 1 <= len(reason) <= MAX_REASON_CHARS:
        raise InvalidRequest(
            f"`reason` is required: a case reference or a sentence, at most {MAX_REASON_CHARS} "
            "characters."
        )
    job = await export.begin_export(
        services(),
        member,
        export.ExportRequest(member_id, scope, fmt, window(), reason),
    )
    response = Response(
        job.chunks(),
        content_type=job.encoder.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{job.filename}"',
            "Cache-Control": "no-store",
            "X-Export-Id": str(job.audit_id),
        },
    )
    response.timeout = None  # the export's length depends on the history, not on a timer
    return response


@blueprint.get("/api/metrics/introductions")
async def introductions() -> dict[str, Any]:
    member = await current_member()
    span = window()
    funnels = await metrics.introductions(services(), member, span)
    return {
        "since": span.since,
        "until": span.until,
        "reply_window_days": 30,
        "origins": [funnel.to_json() for funnel in funnels],
    }


@blueprint.get("/metrics")
async def prometheus() -> Response:
    # Aggregate counts only, no member data. Operators should still keep /metrics off the
    # public internet at the reverse proxy, as is usual for Prometheus endpoints.
    text = await metrics.prometheus_text(services())
    return Response(text, content_type=metrics.PROMETHEUS_CONTENT_TYPE)


def window() -> Window:
    since, until = instant("since"), instant("until")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("`since` must be before `until`.")
    return Window(since, until)


def instant(name: str) -> str | None:
    """An ISO 8601 date or time (naive means UTC), in the stored timestamp format."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+") if "T" in raw else raw)
    except ValueError:
        raise InvalidRequest(
            f"`{name}` must be an ISO 8601 date or time, such as 2026-01-31 or "
            "2026-01-31T12:00:00Z."
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 in a zone east of UTC
        raise InvalidRequest(f"`{name}` is out of range.") from None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
