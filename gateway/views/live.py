"""Live delivery by long polling: the twin of the SSE stream (`views/express.py`), with the
same event ids and payloads."""

from __future__ import annotations

from quart import Blueprint, Response, request

from gateway.exceptions import InvalidRequest
from gateway.limits import MAX_POLL_WAIT_SECONDS
from gateway.live import feed
from gateway.live.events import poll_response_json
from gateway.views.request import current_session, services

blueprint = Blueprint("live", __name__, url_prefix="/api")


@blueprint.get("/events")
async def events() -> Response:
    _, credential = await current_session()
    raw_wait = request.args.get("wait", "0")
    try:
        wait = float(raw_wait)
    except ValueError:
        raise InvalidRequest("`wait` must be a number of seconds.") from None
    if not 0 <= wait <= MAX_POLL_WAIT_SECONDS:
        raise InvalidRequest(f"`wait` must be between 0 and {MAX_POLL_WAIT_SECONDS}.")
    found, cursor = await feed.poll(services(), credential, request.args.get("after"), wait)
    return Response(
        poll_response_json(found, cursor),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
