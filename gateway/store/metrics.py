"""Counts over messaging.db for operators (`/metrics`) and admins (the introduction funnel)."""

from __future__ import annotations

from gateway.limits import REPLY_WINDOW_DAYS
from gateway.messaging.models import ORIGIN_TYPES
from gateway.moderation.models import OriginFunnel
from gateway.store.rows import ReadConnection, fetch_all, fetch_one, is_postgres
from gateway.timestamps import Window


async def messages_total(conn: ReadConnection) -> int:
    """Messages stored. Counted, not read off the id sequence: an insert that stores
    nothing (a retried client_id, a blocked send) still uses up an id."""
    row = await fetch_one(conn, "SELECT count(*) FROM messages", ())
    return int(row[0]) if row else 0


async def oldest_event_after(conn: ReadConnection, event_id: int) -> str | None:
    """When the oldest event newer than `event_id` was committed, if there is one."""
    row = await fetch_one(
        conn, "SELECT created_at FROM events WHERE id > ? ORDER BY id LIMIT 1", (event_id,)
    )
    return row[0] if row else None


async def introduction_funnel(conn: ReadConnection, window: Window) -> list[OriginFunnel]:
    """Per origin a client can name, from intent to reply. History brought over from
    WhiteBalloon (origin "imported") was not introduced here, so it is left out."""
    since, until = window.lower, window.upper
    # Distinct member/peer pairs: reopening the same compose is one introduction, not many.
    intents = {
        row[0]: row[1]
        for row in await fetch_all(
            conn,
            "SELECT origin_type, count(DISTINCT user_id || ':' || peer_id) FROM intents "
            "WHERE created_at >= ? AND created_at < ? GROUP BY origin_type",
            (since, until),
        )
    }
    started = {
        row[0]: (row[1], row[2], row[3])
        for row in await fetch_all(
            conn,
            f"""
            SELECT c.origin_type, count(*),
                   count(*) FILTER (WHERE EXISTS (
                       SELECT 1 FROM messages m WHERE m.conversation_id = c.id)),
                   count(*) FILTER (WHERE EXISTS (
                       SELECT 1 FROM messages m
                        WHERE m.conversation_id = c.id AND m.sender_id != c.created_by
                          AND {_within_days(conn, "m.created_at", "c.created_at")}))
              FROM conversations c
             WHERE c.created_at >= ? AND c.created_at < ? AND c.origin_type != 'imported'
             GROUP BY c.origin_type
            """,
            (REPLY_WINDOW_DAYS, since, until),
        )
    }
    return [
        OriginFunnel(kind, intents.get(kind, 0), *started.get(kind, (0, 0, 0)))
        for kind in sorted(set(intents) | set(started) | set(ORIGIN_TYPES))
    ]


def _within_days(conn: ReadConnection, later: str, earlier: str) -> str:
    """`later` is at most `?` days after `earlier` (both stored timestamps)."""
    if is_postgres(conn):
        return f"{later}::timestamptz <= {earlier}::timestamptz + make_interval(days => ?)"
    return f"julianday({later}) <= julianday({earlier}) + ?"
