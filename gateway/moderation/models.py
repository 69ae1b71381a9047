"""Plain values of moderation and compliance: reports, blocks, log and audit entries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from gateway.limits import REPLY_WINDOW_DAYS

REPORT_CATEGORIES = ("spam", "harassment", "safety", "other")
ReportCategory = Literal["spam", "harassment", "safety", "other"]
ReportStatus = Literal["open", "resolved"]
Role = Literal["admin", "moderator"]

# What the compliance log records; nothing else is ever written to it.
ComplianceKind = Literal[
    "conversation_created", "report_filed", "report_resolved", "block", "unblock", "export"
]
# What the audit log records about moderators.
AuditAction = Literal["export", "report_resolved", "reports_viewed"]


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    conversation_id: int
    message_id: int | None
    reporter_id: int
    reported_id: int
    context_until_id: int
    category: ReportCategory
    note: str
    status: ReportStatus
    created_at: str
    resolved_by: int | None
    resolution: str | None
    resolved_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "reporter_id": self.reporter_id,
            "reported_id": self.reported_id,
            "category": self.category,
            "note": self.note,
            "status": self.status,
            "created_at": self.created_at,
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
            "resolved_at": self.resolved_at,
        }


@dataclass(frozen=True, slots=True)
class Block:
    blocker_id: int
    blocked_id: int
    created_at: str


@dataclass(frozen=True, slots=True)
class ComplianceEntry:
    """One row of the append-only compliance log."""

    id: int
    kind: ComplianceKind
    actor_id: int | None
    subject_id: int | None
    conversation_id: int | None
    report_id: int | None
    details_json: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "actor_id": self.actor_id,
            "subject_id": self.subject_id,
            "conversation_id": self.conversation_id,
            "report_id": self.report_id,
            "details": json.loads(self.details_json),
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One moderator action; exports get their outcome, row count and hash when they end."""

    id: int
    actor_id: int
    action: AuditAction
    member_id: int | None
    details_json: str
    created_at: str
    outcome: str | None
    row_count: int | None
    sha256: str | None
    completed_at: str | None

    @property
    def details(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.details_json)
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "actor_id": self.actor_id,
            "action": self.action,
            "member_id": self.member_id,
            "details": self.details,
            "created_at": self.created_at,
            "outcome": self.outcome,
            "row_count": self.row_count,
            "sha256": self.sha256,
            "completed_at": self.completed_at,
        }


@dataclass(frozen=True, slots=True)
class OriginFunnel:
    """Introductions of one origin type in a window, from intent to a reply."""

    origin_type: str
    intents: int
    conversations_started: int
    with_first_message: int
    peer_replied: int  # within REPLY_WINDOW_DAYS of the conversation's start

    def to_json(self) -> dict[str, Any]:
        def rate(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        return {
            "origin_type": self.origin_type,
            "intents": self.intents,
            "conversations_started": self.conversations_started,
            "conversations_with_first_message": self.with_first_message,
            f"conversations_with_peer_reply_{REPLY_WINDOW_DAYS}d": self.peer_replied,
            "rates": {
                "started_per_intent": rate(self.conversations_started, self.intents),
                "first_message_per_started": rate(
                    self.with_first_message, self.conversations_started
                ),
                "peer_reply_per_started": rate(self.peer_replied, self.conversations_started),
            },
        }
