"""The moderators' scoped export download."""

from __future__ import annotations

from quart import Blueprint, Response, request

from gateway.exceptions import InvalidRequest
from gateway.limits import MAX_REASON_CHARS
from gateway.moderation import export
from gateway.moderation.export_formats import EXPORT_FORMATS, encoder_for
from gateway.views.request import current_member, query_int, query_window, services

blueprint = Blueprint("exports", __name__)


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
    if request.method == "HEAD":
        # Headers only: no export runs, so none is audited as if it had been downloaded.
        await export.may_export(services(), member, scope)
        return Response(
            b"", content_type=encoder_for(fmt).media_type, headers={"Cache-Control": "no-store"}
        )
    job = await export.begin_export(
        services(),
        member,
        export.ExportRequest(member_id, scope, fmt, query_window(), reason),
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
