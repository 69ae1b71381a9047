"""Members' reports, blocks and intents, and the moderators' reports queue and logs."""

from __future__ import annotations

from typing import Any, cast

from quart import Blueprint, Response, request

from gateway.exceptions import InvalidRequest
from gateway.limits import MAX_RESOLUTION_CHARS
from gateway.moderation import review, roles, safety
from gateway.moderation.models import REPORT_CATEGORIES, ReportCategory, ReportStatus
from gateway.views.request import (
    current_member,
    int_field,
    json_object,
    origin_field,
    query_int,
    query_limit,
    services,
)

blueprint = Blueprint("moderation", __name__, url_prefix="/api")

JsonResponse = tuple[dict[str, Any], int]


# Members


@blueprint.post("/reports")
async def file_report() -> JsonResponse:
    member = await current_member()
    payload = await json_object()
    conversation_id = int_field(payload, "conversation_id")
    message_id = payload.get("message_id")
    if message_id is not None:
        message_id = int_field(payload, "message_id")
    category = payload.get("category")
    if category not in REPORT_CATEGORIES:
        raise InvalidRequest(f"`category` must be one of {', '.join(REPORT_CATEGORIES)}.")
    note = payload.get("note") or ""
    if not isinstance(note, str):
        raise InvalidRequest("`note` must be a string.")
    report, created = await safety.file_report(
        services(),
        member,
        conversation_id,
        message_id,
        cast(ReportCategory, category),
        note.strip(),
    )
    # The reporter sees their own report, not the moderators' later handling of it.
    mine = {
        k: report.to_json()[k]
        for k in ("id", "conversation_id", "message_id", "category", "note", "created_at")
    }
    return {"report": mine}, 201 if created else 200


@blueprint.get("/blocks")
async def blocks() -> dict[str, Any]:
    member = await current_member()
    found = await safety.blocks(services(), member)
    return {"blocks": [{"member": m.public(), "created_at": b.created_at} for b, m in found]}


@blueprint.post("/blocks")
async def block() -> JsonResponse:
    member = await current_member()
    member_id = int_field(await json_object(), "member_id")
    found, blocked, created = await safety.block(services(), member, member_id)
    return {"block": {"member": blocked.public(), "created_at": found.created_at}}, (
        201 if created else 200
    )


@blueprint.delete("/blocks/<id:member_id>")
async def unblock(member_id: int) -> Response:
    await safety.unblock(services(), await current_member(), member_id)
    return Response(status=204)  # the same answer whether or not a block existed


@blueprint.post("/intents")
async def record_intent() -> JsonResponse:
    member = await current_member()
    payload = await json_object()
    peer_id = int_field(payload, "peer_id")
    origin = origin_field(payload, default=None)  # an intent must say where it began
    intent_id = await safety.record_intent(services(), member, peer_id, origin)
    return {"intent": {"id": intent_id, "peer_id": peer_id, "origin": origin.to_json()}}, 201


# Moderators


@blueprint.get("/moderation/me")
async def moderation_me() -> dict[str, Any]:
    member = await current_member()
    role = await roles.require_moderator(services(), member)
    return {**member.me(), "role": role}


@blueprint.get("/moderation/reports")
async def reports() -> dict[str, Any]:
    member = await current_member()
    status = request.args.get("status", "open")
    if status not in ("open", "resolved"):
        raise InvalidRequest("`status` must be open or resolved.")
    # The open queue runs oldest first and pages forward (`after`); the resolved history
    # runs newest first and pages back (`before`).
    limit = query_limit()
    last_seen = (
        query_int("after", minimum=0) if status == "open" else query_int("before", minimum=1)
    )
    views = await review.reports_queue(
        services(), member, cast(ReportStatus, status), last_seen, limit
    )
    return {"reports": [view.to_json() for view in views]}


@blueprint.get("/moderation/reports/summary")
async def reports_summary() -> dict[str, Any]:
    return (await review.queue_summary(services(), await current_member())).to_json()


@blueprint.get("/moderation/members")
async def find_member() -> dict[str, Any]:
    member = await current_member()
    found = await review.find_member(services(), member, request.args.get("username", ""))
    return {"member": found.public()}


@blueprint.post("/moderation/reports/<id:report_id>/resolve")
async def resolve(report_id: int) -> dict[str, Any]:
    member = await current_member()
    resolution = (await json_object()).get("resolution")
    if not isinstance(resolution, str) or not 1 <= len(resolution.strip()) <= MAX_RESOLUTION_CHARS:
        raise InvalidRequest(f"`resolution` must be 1 to {MAX_RESOLUTION_CHARS} characters.")
    report = await review.resolve(services(), member, report_id, resolution.strip())
    return {"report": report.to_json()}


@blueprint.get("/moderation/audit")
async def audit() -> dict[str, Any]:
    member = await current_member()
    before, limit = page_args()
    entries = await review.audit_log(services(), member, before, limit)
    return {"entries": [entry.to_json() for entry in entries]}


@blueprint.get("/moderation/log")
async def compliance_log() -> dict[str, Any]:
    member = await current_member()
    before, limit = page_args()
    entries = await review.compliance_log(services(), member, before, limit)
    return {"entries": [entry.to_json() for entry in entries]}


@blueprint.get("/moderation/exports/<id:export_id>")
async def export_entry(export_id: int) -> dict[str, Any]:
    entry = await review.export_entry(services(), await current_member(), export_id)
    return {"export": entry.to_json()}


def page_args() -> tuple[int | None, int]:
    """`before` (an id to page back from) and `limit` of a newest-first listing."""
    return query_int("before", minimum=1), query_limit()
