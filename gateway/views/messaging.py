"""The JSON API for members: who am I, whom may I message, conversations and messages
(sending one is in `views/express.py`)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from gateway.exceptions import InvalidRequest
from gateway.messaging import actions, queries
from gateway.messaging.models import Origin
from gateway.views.request import (
    current_member,
    int_field,
    json_object,
    origin_field,
    query_int,
    query_limit,
    services,
)

blueprint = Blueprint("messaging", __name__, url_prefix="/api")

JsonResponse = tuple[dict[str, Any], int]


@blueprint.get("/me")
async def me() -> dict[str, Any]:
    return (await current_member()).me()


@blueprint.get("/members")
async def members() -> dict[str, Any]:
    member = await current_member()
    found = await queries.members(services(), member, request.args.get("q", ""))
    return {"members": [m.public() for m in found]}


@blueprint.get("/members/lookup")
async def lookup_member() -> dict[str, Any]:
    member = await current_member()
    found = await queries.reachability(services(), member, request.args.get("username", ""))
    return found.to_json()


@blueprint.get("/unread")
async def unread() -> dict[str, Any]:
    """For WhiteBalloon's own nav badge, if it wants a live one."""
    return {"unread": await queries.unread_total(services(), await current_member())}


@blueprint.get("/conversations")
async def conversations() -> dict[str, Any]:
    member = await current_member()
    views = await queries.inbox(services(), member)
    return {"conversations": [view.to_json() for view in views]}


@blueprint.post("/conversations")
async def start_conversation() -> JsonResponse:
    member = await current_member()
    payload = await json_object()
    peer_id = int_field(payload, "peer_id")
    origin = origin_field(payload, default=Origin("inbox"))
    view, created = await actions.start_conversation(services(), member, peer_id, origin)
    return {"conversation": view.to_json()}, 201 if created else 200


@blueprint.get("/conversations/<id:conversation_id>")
async def conversation(conversation_id: int) -> dict[str, Any]:
    member = await current_member()
    s = services()
    found = await queries.participant_conversation(s, member, conversation_id)
    return {"conversation": (await queries.conversation_view(s, member, found)).to_json()}


@blueprint.get("/conversations/<id:conversation_id>/messages")
async def messages(conversation_id: int) -> dict[str, Any]:
    member = await current_member()
    before = query_int("before", minimum=1)
    after = query_int("after", minimum=0)
    limit = query_limit()
    if before is not None and after is not None:
        raise InvalidRequest("Use `before` or `after`, not both.")
    page, has_more = await queries.messages_page(
        services(), member, conversation_id, before=before, after=after, limit=limit
    )
    return {"messages": [m.to_json() for m in page], "has_more": has_more}


@blueprint.post("/conversations/<id:conversation_id>/read")
async def mark_read(conversation_id: int) -> dict[str, Any]:
    member = await current_member()
    message_id = int_field(await json_object(), "message_id")
    state = await actions.mark_read(services(), member, conversation_id, message_id)
    return {"read": state.to_json()}
