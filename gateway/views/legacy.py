"""WhiteBalloon's own messaging URLs, answered by the gateway once it serves `/messages/`.

With `ENABLE_DIRECT_MESSAGING` on, WhiteBalloon's "Message" buttons POST a form to
`/messages/direct` and its old links point at `/messages/with/USERNAME` and
`/messages/THREAD_ID`. Under the prefix these arrive here as `direct`, `with/USERNAME` and
`THREAD_ID`; each redirects (303) into the page. Redirects are relative, so they land under
whatever prefix the proxy serves the gateway at.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

from quart import Blueprint, request
from werkzeug.wrappers.response import Response

from gateway.exceptions import GatewayError, MemberNotFound
from gateway.limits import MAX_ORIGIN_REF_CHARS
from gateway.messaging import actions, queries
from gateway.messaging.models import Origin
from gateway.views.request import current_member, services

blueprint = Blueprint("legacy", __name__)


def _see_other(location: str) -> Response:
    return Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _compose(prefix: str, username: str, origin: Origin) -> str:
    query = {"with": username, "origin": f"{origin.type}:{origin.ref or ''}"}
    return f"{prefix}?{urlencode(query)}"


def _referring_page() -> str | None:
    """The path of the same-site page the form was sent from (a profile, the members list)."""
    try:
        referer = urlsplit(request.headers.get("Referer", ""))
    except ValueError:  # not a URL at all
        return None
    if referer.netloc.lower() != request.host.lower() or not referer.path:
        return None
    return referer.path[:MAX_ORIGIN_REF_CHARS]


@blueprint.post("/direct")
async def direct() -> Response:
    form = await request.form
    username = (form.get("username") or "").strip()
    if not username:
        return _see_other("./")
    origin = Origin("profile", _referring_page())
    try:
        member = await current_member()
        s = services()
        found = await s.directory.member_by_username(username)
        if found is None:
            raise MemberNotFound()
        view, _ = await actions.start_conversation(s, member, found.user_id, origin)
    except GatewayError:
        # Signed out, not visible, blocked: the page itself says what happened and why.
        return _see_other(_compose("./", username, origin))
    return _see_other(f"./#/c/{view.conversation.id}")


@blueprint.get("/with/<username>")
async def with_member(username: str) -> Response:
    # A GET changes nothing: the page opens (or starts) the conversation, as a deep link does.
    return _see_other(_compose("../", username, Origin("profile")))


@blueprint.get("/<id:thread_id>")
async def thread(thread_id: int) -> Response:
    conversation_id = await queries.conversation_of_upstream_thread(services(), thread_id)
    if conversation_id is None:
        return _see_other("./")
    return _see_other(f"./#/c/{quote(str(conversation_id))}")
