"""The Quart application: blueprints, error shape, security headers, start-up and shutdown."""

from __future__ import annotations

from pathlib import Path

from quart import Quart, Response

from gateway.access_log import AccessLog
from gateway.asgi_layers import SECURITY_HEADERS
from gateway.config import Settings
from gateway.host_guard import HostGuard
from gateway.limits import MAX_REQUEST_BYTES
from gateway.root_path import RootPath
from gateway.services import EXTENSION, Services, services_of
from gateway.views import demo, exports, legacy, live, messaging, metrics, moderation, pages
from gateway.views.error_responses import register_error_handlers
from gateway.views.express import ExpressLane
from gateway.views.request import (
    IdConverter,
    refuse_impossible_static_names,
    reject_cross_site_requests,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    app = Quart(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.url_map.converters["id"] = IdConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = None  # static files revalidate (no build step)

    app.register_blueprint(pages.blueprint)
    app.register_blueprint(messaging.blueprint)
    app.register_blueprint(live.blueprint)
    app.register_blueprint(moderation.blueprint)
    app.register_blueprint(exports.blueprint)
    app.register_blueprint(metrics.blueprint)
    # Last: its `<id:thread_id>` route must not shadow the others.
    app.register_blueprint(legacy.blueprint)
    if settings.demo_mode:
        # Demo routes exist only without a real directory: they sign anyone in.
        app.register_blueprint(demo.blueprint)
    register_error_handlers(app)
    app.before_request(reject_cross_site_requests)
    app.before_request(refuse_impossible_static_names)

    @app.after_request
    async def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS:
            response.headers.setdefault(name, value)
        return response

    @app.before_serving
    async def open_services() -> None:
        app.extensions[EXTENSION] = await Services.open(settings)

    @app.after_serving
    async def close_services() -> None:
        services: Services | None = app.extensions.pop(EXTENSION, None)
        if services is not None:
            await services.close()

    # Outermost first: AccessLog, RootPath, HostGuard, the express lane's routes, Quart.
    app.asgi_app = ExpressLane(app.asgi_app, lambda: services_of(app))  # type: ignore[method-assign]
    app.asgi_app = HostGuard(app.asgi_app)  # type: ignore[method-assign]
    if settings.root_path:
        app.asgi_app = RootPath(app.asgi_app, settings.root_path)  # type: ignore[method-assign]
    if settings.access_log:
        app.asgi_app = AccessLog(app.asgi_app)  # type: ignore[method-assign]
    return app
