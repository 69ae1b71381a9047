"""Every error a client can see, each with its HTTP status and stable `code`.

Views and actions raise these; `gateway.views.error_responses` turns them into the one JSON
error shape.
"""

from __future__ import annotations

from gateway.limits import MAX_BODY_CHARS, MAX_REQUEST_BYTES


class ConfigError(Exception):
    """A setting is missing or malformed; the gateway refuses to start."""


class GatewayError(Exception):
    status = 500
    code = "internal_error"
    default_message = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidRequest(GatewayError):
    status = 400
    code = "invalid_request"
    default_message = "The request is malformed."


class InvalidBody(InvalidRequest):
    code = "invalid_body"
    default_message = f"A message must be 1 to {MAX_BODY_CHARS} characters after trimming."


class CannotMessageSelf(InvalidRequest):
    code = "cannot_message_self"
    default_message = "You cannot start a conversation with yourself."


class Unauthenticated(GatewayError):
    status = 401
    code = "unauthenticated"
    default_message = "Sign in to WhiteBalloon first."


class CrossOrigin(GatewayError):
    status = 403
    code = "cross_origin"
    default_message = "Cross-site requests may not change anything."


class NotVisible(GatewayError):
    status = 403
    code = "not_visible"
    default_message = "You and this member cannot message each other."


class Blocked(GatewayError):
    status = 403
    code = "blocked"
    default_message = "One of you has blocked the other, so you cannot message each other."


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do this."


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class MemberNotFound(NotFound):
    code = "member_not_found"
    default_message = "No such member."


class ConversationNotFound(NotFound):
    code = "conversation_not_found"
    default_message = "No such conversation."


class MessageNotFound(NotFound):
    code = "message_not_found"
    default_message = "No such message in this conversation."


class ReportNotFound(NotFound):
    code = "report_not_found"
    default_message = "No such report."


class AuditEntryNotFound(NotFound):
    code = "audit_entry_not_found"
    default_message = "No such audit entry."


class ReportAlreadyResolved(GatewayError):
    status = 409
    code = "report_already_resolved"
    default_message = "This report was already resolved."


class ClientIdConflict(GatewayError):
    status = 409
    code = "client_id_conflict"
    default_message = "This client_id was already used for a message in another conversation."


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"
    default_message = f"The request body is larger than {MAX_REQUEST_BYTES // 1024} KiB."


class RequestTimeout(GatewayError):
    status = 408
    code = "request_timeout"
    default_message = "The request body did not arrive in time."


class RateLimited(GatewayError):
    """A member did something more often than its `WB_RATE_*` limit allows; nothing was
    written. `retry_after`: whole seconds until it is allowed again (the `Retry-After`
    header), at least 1."""

    status = 429
    code = "rate_limited"
    default_message = "You are doing this too often. Please wait a moment and try again."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(message)


class Unavailable(GatewayError):
    status = 503
    code = "unavailable"
    default_message = "The gateway is shutting down or its database is unavailable."
