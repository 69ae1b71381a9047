"""The one place where failures become the JSON error shape `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json
import logging

from quart import Quart, Response
from werkzeug.exceptions import HTTPException

from gateway.exceptions import GatewayError, PayloadTooLarge, RateLimited

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
}


INTERNAL_ERROR = (500, "internal_error", "Something went wrong on our side.")


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def error_headers(error: GatewayError) -> list[tuple[str, str]]:
    """Headers an error adds to its response."""
    if isinstance(error, RateLimited):
        return [("Retry-After", str(error.retry_after))]
    return []


def error_response(status: int, code: str, message: str) -> Response:
    return Response(error_body(code, message), status=status, content_type="application/json")


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(GatewayError)
    async def gateway_error(error: GatewayError) -> Response:
        response = error_response(error.status, error.code, error.message)
        response.headers.extend(error_headers(error))
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == PayloadTooLarge.status:  # raised by Quart itself, past MAX_CONTENT_LENGTH
            return error_response(status, PayloadTooLarge.code, PayloadTooLarge.default_message)
        return error_response(
            status, _HTTP_CODES.get(status, "http_error"), error.description or ""
        )

    @app.errorhandler(Exception)
    async def unexpected_error(error: Exception) -> Response:
        log.exception("unhandled error", exc_info=error)
        return error_response(*INTERNAL_ERROR)
