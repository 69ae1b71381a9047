"""Every SQL statement on messaging.db's rate-limit buckets (`rate_buckets`).

`decide` and `charge` run inside an action's write transaction (synchronous functions of
the writer's connection), so the token an action takes is committed with the action's own
rows or not at all, and every worker sharing the database sees the same bucket. The
arithmetic is `gateway.rate_limits`'s.
"""

from __future__ import annotations

from gateway.rate_limits import Bucket, Decision, RateAction, RateLimit, take
from gateway.store.rows import TxConnection, change_tx, fetch_one_tx


def bucket(conn: TxConnection, member_id: int, action: RateAction) -> Bucket | None:
    row = fetch_one_tx(
        conn,
        "SELECT tokens, updated_at FROM rate_buckets WHERE member_id = ? AND action = ?",
        (member_id, action),
    )
    return Bucket(row["tokens"], row["updated_at"]) if row else None


def decide(
    conn: TxConnection,
    limit: RateLimit | None,
    member_id: int,
    action: RateAction,
    now: float,
) -> Decision | None:
    """Whether the member may take one token at `now`; None when the limit is off. Writes
    nothing: an action that goes ahead stores the token with `charge`, one that is refused
    writes nothing at all, so it need not roll back (which would split the writer's batch)."""
    if limit is None:
        return None
    return take(limit, bucket(conn, member_id, action), now)


def charge(
    conn: TxConnection, member_id: int, action: RateAction, decision: Decision | None
) -> None:
    """Take the token of an allowed `decision` (nothing when the limit is off)."""
    if decision is None:
        return
    assert decision.allowed
    change_tx(
        conn,
        "INSERT INTO rate_buckets (member_id, action, tokens, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (member_id, action) DO UPDATE "
        "SET tokens = excluded.tokens, updated_at = excluded.updated_at",
        (member_id, action, decision.bucket.tokens, decision.bucket.updated_at),
    )
