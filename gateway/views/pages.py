"""The browser client's page and the health check."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, current_app

from gateway.messaging import queries
from gateway.views.request import services

blueprint = Blueprint("pages", __name__)

# No inline script or style anywhere, so the page can forbid both.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)


async def _page(filename: str) -> Response:
    response = await current_app.send_static_file(filename)
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/")
async def index() -> Response:
    return await _page("index.html")


@blueprint.get("/moderation")
async def moderation() -> Response:
    # Anyone may load the page; it asks the API who they are, and the API decides.
    return await _page("moderation.html")


@blueprint.get("/api/instance")
async def instance() -> dict[str, Any]:
    """What the page needs before anyone signs in: demo or not, and where signing in is."""
    s = services()
    return {
        "demo_mode": s.settings.demo_mode,
        "sign_in_url": "./" if s.settings.demo_mode else s.settings.sign_in_url,
    }


@blueprint.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Liveness only: this worker answers and messaging.db answers. Figures are in /metrics."""
    await queries.newest_event_id(services())
    return {"status": "ok"}
