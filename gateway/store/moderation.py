"""Every SQL statement on reports, blocks, intents, the compliance log and the audit log.

Like `messaging`, functions take a connection: reads are async functions of an aiosqlite
read connection; writes (and the reads a write transaction makes) are synchronous functions
of the writer's `TxConnection`, run inside the writer's transaction so an action can
log what it did atomically with doing it. The export's paging queries live in
`exports`, the operators' and admins' counts in `metrics`.
"""

from __future__ import annotations

import json
from typing import Any, cast

from gateway.limits import REPORT_CONTEXT_EACH_SIDE
from gateway.messaging.models import Message
from gateway.moderation.models import (
    AuditAction,
    AuditEntry,
    Block,
    ComplianceEntry,
    ComplianceKind,
    Report,
    ReportCategory,
    ReportStatus,
)
from gateway.store.rows import (
    BLOCK_BETWEEN,
    MESSAGE_COLUMNS,
    ReadConnection,
    Row,
    TxConnection,
    change_tx,
    fetch_all,
    fetch_all_tx,
    fetch_one,
    fetch_one_tx,
    insert_tx,
    message_from_row,
)

_REPORT_COLUMNS = (
    "id, conversation_id, message_id, reporter_id, reported_id, context_until_id, category, "
    "note, status, created_at, resolved_by, resolution, resolved_at"
)
_AUDIT_COLUMNS = (
    "id, actor_id, action, member_id, details, created_at, outcome, row_count, sha256, completed_at"
)
_COMPLIANCE_COLUMNS = (
    "id, kind, actor_id, subject_id, conversation_id, report_id, details, created_at"
)


def _json(details: dict[str, Any]) -> str:
    return json.dumps(details, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _report(row: Row) -> Report:
    return Report(
        id=row["id"],
        conversation_id=row["conversation_id"],
        message_id=row["message_id"],
        reporter_id=row["reporter_id"],
        reported_id=row["reported_id"],
        context_until_id=row["context_until_id"],
        category=cast(ReportCategory, row["category"]),
        note=row["note"],
        status=cast(ReportStatus, row["status"]),
        created_at=row["created_at"],
        resolved_by=row["resolved_by"],
        resolution=row["resolution"],
        resolved_at=row["resolved_at"],
    )


def _audit(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        actor_id=row["actor_id"],
        action=cast(AuditAction, row["action"]),
        member_id=row["member_id"],
        details_json=row["details"],
        created_at=row["created_at"],
        outcome=row["outcome"],
        row_count=row["row_count"],
        sha256=row["sha256"],
        completed_at=row["completed_at"],
    )


def _compliance(row: Row) -> ComplianceEntry:
    return ComplianceEntry(
        id=row["id"],
        kind=cast(ComplianceKind, row["kind"]),
        actor_id=row["actor_id"],
        subject_id=row["subject_id"],
        conversation_id=row["conversation_id"],
        report_id=row["report_id"],
        details_json=row["details"],
        created_at=row["created_at"],
    )


def _insert(conn: TxConnection, sql: str, params: tuple[Any, ...]) -> int:
    row_id = insert_tx(conn, sql + " RETURNING id", params)
    assert row_id is not None
    return row_id


def _changed(conn: TxConnection, sql: str, params: tuple[Any, ...]) -> bool:
    return change_tx(conn, sql, params) > 0


# The compliance log


def append_compliance(
    conn: TxConnection,
    kind: ComplianceKind,
    now: str,
    *,
    actor_id: int | None = None,
    subject_id: int | None = None,
    conversation_id: int | None = None,
    report_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    return _insert(
        conn,
        "INSERT INTO compliance_log (kind, actor_id, subject_id, conversation_id, report_id, "
        "details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, actor_id, subject_id, conversation_id, report_id, _json(details or {}), now),
    )


async def compliance_entries(
    conn: ReadConnection, before: int | None, limit: int
) -> list[ComplianceEntry]:
    """Newest first, below `before` when given."""
    rows = await fetch_all(
        conn,
        f"SELECT {_COMPLIANCE_COLUMNS} FROM compliance_log WHERE id < ? ORDER BY id DESC LIMIT ?",
        (before if before is not None else 2**62, limit),
    )
    return [_compliance(row) for row in rows]


# The audit log


def append_audit(
    conn: TxConnection,
    actor_id: int,
    action: AuditAction,
    member_id: int | None,
    details: dict[str, Any],
    now: str,
) -> AuditEntry:
    audit_id = _insert(
        conn,
        "INSERT INTO audit_log (actor_id, action, member_id, details, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (actor_id, action, member_id, _json(details), now),
    )
    return AuditEntry(audit_id, actor_id, action, member_id, _json(details), now, *(None,) * 4)


def complete_audit(
    conn: TxConnection, audit_id: int, outcome: str, rows: int, sha256: str, now: str
) -> None:
    # The table's trigger refuses a second completion or any other change.
    conn.execute(
        "UPDATE audit_log SET outcome = ?, row_count = ?, sha256 = ?, completed_at = ? "
        "WHERE id = ?",
        (outcome, rows, sha256, now, audit_id),
    )


async def get_audit(conn: ReadConnection, audit_id: int) -> AuditEntry | None:
    row = await fetch_one(conn, f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE id = ?", (audit_id,))
    return _audit(row) if row else None


async def audit_entries(conn: ReadConnection, before: int | None, limit: int) -> list[AuditEntry]:
    rows = await fetch_all(
        conn,
        f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?",
        (before if before is not None else 2**62, limit),
    )
    return [_audit(row) for row in rows]


# Reports


def insert_report(
    conn: TxConnection,
    *,
    conversation_id: int,
    message_id: int | None,
    reporter_id: int,
    reported_id: int,
    category: ReportCategory,
    note: str,
    now: str,
) -> Report:
    newest = fetch_one_tx(
        conn,
        "SELECT COALESCE(max(id), 0) FROM messages WHERE conversation_id = ?",
        (conversation_id,),
    )
    context_until = int(newest[0]) if newest else 0
    report_id = _insert(
        conn,
        "INSERT INTO reports (conversation_id, message_id, reporter_id, reported_id, "
        "context_until_id, category, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (conversation_id, message_id, reporter_id, reported_id, context_until, category, note, now),
    )
    report = get_report(conn, report_id)
    assert report is not None
    return report


def get_report(conn: TxConnection, report_id: int) -> Report | None:
    row = fetch_one_tx(conn, f"SELECT {_REPORT_COLUMNS} FROM reports WHERE id = ?", (report_id,))
    return _report(row) if row else None


def open_report_like(
    conn: TxConnection, reporter_id: int, conversation_id: int, message_id: int | None
) -> Report | None:
    """The reporter's open report of the same message (or conversation), if any."""
    row = fetch_one_tx(
        conn,
        f"SELECT {_REPORT_COLUMNS} FROM reports WHERE conversation_id = ? AND reporter_id = ? "
        # Ids start at 1, so 0 stands for "no message" on both sides of the comparison.
        "AND COALESCE(message_id, 0) = COALESCE(?, 0) AND status = 'open'",
        (conversation_id, reporter_id, message_id),
    )
    return _report(row) if row else None


async def reports_page(
    conn: ReadConnection, status: ReportStatus, last_seen: int | None, limit: int
) -> list[Report]:
    """Open reports oldest first (a queue); resolved ones newest first (a history); each
    page continues after `last_seen`, the last id of the page before."""
    if status == "open":
        sql = "id > ? ORDER BY id ASC"
        bound = last_seen if last_seen is not None else 0
    else:
        sql = "id < ? ORDER BY id DESC"
        bound = last_seen if last_seen is not None else 2**63 - 1
    rows = await fetch_all(
        conn,
        f"SELECT {_REPORT_COLUMNS} FROM reports WHERE status = ? AND {sql} LIMIT ?",
        (status, bound, limit),
    )
    return [_report(row) for row in rows]


def resolve_report(
    conn: TxConnection, report_id: int, moderator_id: int, resolution: str, now: str
) -> bool:
    """Resolve an open report; False when it was already resolved."""
    return _changed(
        conn,
        "UPDATE reports SET status = 'resolved', resolved_by = ?, resolution = ?, "
        "resolved_at = ? WHERE id = ? AND status = 'open'",
        (moderator_id, resolution, now, report_id),
    )


async def report_context(conn: ReadConnection, report: Report) -> list[Message]:
    """The messages around the reported one (or the last ones before the report), in order."""
    if report.message_id is None:
        rows = await fetch_all(
            conn,
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND id <= ? "
            "ORDER BY id DESC LIMIT ?",
            (report.conversation_id, report.context_until_id, 2 * REPORT_CONTEXT_EACH_SIDE),
        )
        return [message_from_row(row) for row in reversed(rows)]
    before = await fetch_all(
        conn,
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND id <= ? "
        "ORDER BY id DESC LIMIT ?",
        (report.conversation_id, report.message_id, REPORT_CONTEXT_EACH_SIDE + 1),
    )
    after = await fetch_all(
        conn,
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND id > ? "
        "AND id <= ? ORDER BY id ASC LIMIT ?",
        (
            report.conversation_id,
            report.message_id,
            report.context_until_id,
            REPORT_CONTEXT_EACH_SIDE,
        ),
    )
    return [message_from_row(row) for row in [*reversed(before), *after]]


async def open_reports_summary(conn: ReadConnection) -> tuple[int, int, int | None]:
    """(open reports, open safety reports, the newest open report's id)."""
    row = await fetch_one(
        conn,
        "SELECT count(*), count(*) FILTER (WHERE category = 'safety'), max(id) FROM reports "
        "WHERE status = 'open'",
        (),
    )
    assert row is not None
    return int(row[0]), int(row[1]), row[2]


async def open_report_count(conn: ReadConnection) -> int:
    row = await fetch_one(conn, "SELECT count(*) FROM reports WHERE status = 'open'", ())
    return int(row[0]) if row else 0


# Blocks


def insert_block(conn: TxConnection, blocker: int, blocked: int, now: str) -> bool:
    """Whether this call created the block (False: it already existed)."""
    return _changed(
        conn,
        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (blocker, blocked, now),
    )


def delete_block(conn: TxConnection, blocker: int, blocked: int) -> bool:
    return _changed(
        conn, "DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?", (blocker, blocked)
    )


_BLOCKS_BY = (
    "SELECT blocker_id, blocked_id, created_at FROM blocks WHERE blocker_id = ? "
    "ORDER BY created_at DESC, blocked_id"
)


def _blocks(rows: list[Row]) -> list[Block]:
    return [Block(row["blocker_id"], row["blocked_id"], row["created_at"]) for row in rows]


async def blocks_by(conn: ReadConnection, blocker: int) -> list[Block]:
    return _blocks(await fetch_all(conn, _BLOCKS_BY, (blocker,)))


def blocks_by_tx(conn: TxConnection, blocker: int) -> list[Block]:
    return _blocks(fetch_all_tx(conn, _BLOCKS_BY, (blocker,)))


def blocked_between(conn: TxConnection, a: int, b: int) -> bool:
    """Whether either member blocked the other."""
    row = fetch_one_tx(conn, f"SELECT {BLOCK_BETWEEN}", (a, b, b, a))
    return row is not None and bool(row[0])


# Introduction intents


def insert_intent(
    conn: TxConnection,
    user_id: int,
    peer_id: int,
    origin_type: str,
    origin_ref: str | None,
    now: str,
) -> int:
    return _insert(
        conn,
        "INSERT INTO intents (user_id, peer_id, origin_type, origin_ref, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (user_id, peer_id, origin_type, origin_ref, now),
    )
