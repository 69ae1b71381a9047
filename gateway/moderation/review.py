"""The moderators' side: the reports queue, resolutions, and the audit and compliance logs.

Seeing reported content is itself audited: every page of the queue a moderator loads is an
audit entry naming the reports shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.exceptions import (
    AuditEntryNotFound,
    MemberNotFound,
    ReportAlreadyResolved,
    ReportNotFound,
)
from gateway.messaging.models import Member, Message
from gateway.moderation.models import AuditEntry, ComplianceEntry, Report, ReportStatus
from gateway.moderation.roles import require_admin, require_moderator
from gateway.services import Services
from gateway.store import moderation as moderation_store
from gateway.store.rows import TxConnection
from gateway.timestamps import utc_now


@dataclass(frozen=True, slots=True)
class ReportView:
    report: Report
    reporter: Member
    reported: Member
    message: Message | None
    context: list[Message]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.report.to_json(),
            "reporter": self.reporter.public(),
            "reported": self.reported.public(),
            "message": self.message.to_json() if self.message else None,
            "context": [m.to_json() for m in self.context],
        }


async def reports_queue(
    s: Services, me: Member, status: ReportStatus, last_seen: int | None, limit: int
) -> list[ReportView]:
    await require_moderator(s, me)
    async with s.store.reading() as conn:
        reports = await moderation_store.reports_page(conn, status, last_seen, limit)
        contexts = [await moderation_store.report_context(conn, r) for r in reports]
    people = await s.directory.members_by_id(
        user for r in reports for user in (r.reporter_id, r.reported_id)
    )
    views = [
        ReportView(
            report=r,
            reporter=_member(people, r.reporter_id),
            reported=_member(people, r.reported_id),
            message=next((m for m in context if m.id == r.message_id), None),
            context=context,
        )
        for r, context in zip(reports, contexts, strict=True)
    ]
    if views:
        now = utc_now()
        details = {"status": status, "report_ids": [v.report.id for v in views]}

        def tx(conn: TxConnection) -> None:
            moderation_store.append_audit(conn, me.user_id, "reports_viewed", None, details, now)

        await s.store.write(tx)
    return views


async def resolve(s: Services, me: Member, report_id: int, resolution: str) -> Report:
    await require_moderator(s, me)
    now = utc_now()

    def tx(conn: TxConnection) -> Report:
        report = moderation_store.get_report(conn, report_id)
        if report is None:
            raise ReportNotFound()
        if not moderation_store.resolve_report(conn, report_id, me.user_id, resolution, now):
            raise ReportAlreadyResolved()
        moderation_store.append_compliance(
            conn,
            "report_resolved",
            now,
            actor_id=me.user_id,
            subject_id=report.reported_id,
            conversation_id=report.conversation_id,
            report_id=report_id,
            details={"resolution": resolution},
        )
        details = {"report_id": report_id, "resolution": resolution}
        moderation_store.append_audit(
            conn, me.user_id, "report_resolved", report.reported_id, details, now
        )
        resolved = moderation_store.get_report(conn, report_id)
        assert resolved is not None
        return resolved

    return await s.store.write(tx)


async def audit_log(s: Services, me: Member, before: int | None, limit: int) -> list[AuditEntry]:
    await require_admin(s, me)
    async with s.store.reading() as conn:
        return await moderation_store.audit_entries(conn, before, limit)


async def compliance_log(
    s: Services, me: Member, before: int | None, limit: int
) -> list[ComplianceEntry]:
    await require_admin(s, me)
    async with s.store.reading() as conn:
        return await moderation_store.compliance_entries(conn, before, limit)


async def export_entry(s: Services, me: Member, audit_id: int) -> AuditEntry:
    """An export's audit entry: its author may check the file's hash, and admins any."""
    await require_moderator(s, me)
    async with s.store.reading() as conn:
        entry = await moderation_store.get_audit(conn, audit_id)
    if (
        entry is None
        or entry.action != "export"
        or (entry.actor_id != me.user_id and not me.is_admin)
    ):
        raise AuditEntryNotFound()
    return entry


def _member(known: dict[int, Member], user_id: int) -> Member:
    return known.get(user_id) or Member.former(user_id)


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """What a moderator's page polls to know the queue moved; no reported content, so
    reading it is not audited (loading the reports themselves is)."""

    open: int
    open_safety: int
    newest_open_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "open_safety": self.open_safety,
            "newest_open_id": self.newest_open_id,
        }


async def queue_summary(s: Services, me: Member) -> QueueSummary:
    await require_moderator(s, me)
    async with s.store.reading() as conn:
        return QueueSummary(*await moderation_store.open_reports_summary(conn))


async def find_member(s: Services, me: Member, username: str) -> Member:
    """Any member by username, for a moderator (exports name members by id)."""
    await require_moderator(s, me)
    found = await s.directory.member_by_username(username.strip())
    if found is None:
        raise MemberNotFound()
    return found
