"""Demo sign-in, registered only when no main-app database is configured."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, redirect, request
from werkzeug.wrappers.response import Response

from gateway.auth import sign_session
from gateway.demo import DEMO_MEMBERS
from gateway.exceptions import MemberNotFound
from gateway.views.request import services

blueprint = Blueprint("demo", __name__, url_prefix="/demo")


@blueprint.get("/members")
async def demo_members() -> dict[str, Any]:
    return {"members": [{"user_id": m.user_id, "username": m.username} for m in DEMO_MEMBERS]}


@blueprint.get("/login")
async def login() -> Response:
    s = services()
    member = await s.directory.member_by_username(request.args.get("user", ""))
    if member is None:
        raise MemberNotFound("No demo member has that name.")
    response = redirect("../")
    response.set_cookie(
        s.settings.session_cookie,
        sign_session(s.session_secrets[0], {"user_id": member.user_id}),
        max_age=s.settings.session_max_age,
        httponly=True,
        samesite="Lax",
    )
    return response


@blueprint.get("/logout")
async def logout() -> Response:
    response = redirect("../")
    response.delete_cookie(services().settings.session_cookie)
    return response
