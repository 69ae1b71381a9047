"""Versioned schema of the gateway's database, on SQLite and on PostgreSQL.

Each migration runs once, in order, inside the write transaction that records its number
(`PRAGMA user_version` on SQLite, the `schema_version` table on PostgreSQL, taken under the
writers' advisory lock), so several workers or hosts starting together apply it exactly
once. Append new migrations, to both lists; never edit one that has shipped.

`POSTGRES_MIGRATIONS[0]` creates what SQLite's migrations 1 to 6 built, with the same tables,
columns and rules: PostgreSQL support began after them. Its version numbers continue
SQLite's, so one number names the same schema on both.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.store.postgres import PgTxConnection

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations, messages, read pointers and the per-member event log.
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        member_low INTEGER NOT NULL,
        member_high INTEGER NOT NULL,
        created_by INTEGER NOT NULL,
        origin_type TEXT NOT NULL,
        origin_ref TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        CHECK (member_low < member_high),
        UNIQUE (member_low, member_high)
    );
    CREATE INDEX conversations_by_high ON conversations (member_high);

    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        sender_id INTEGER NOT NULL,
        body TEXT NOT NULL,
        client_id TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
    CREATE UNIQUE INDEX messages_by_client_id ON messages (sender_id, client_id)
        WHERE client_id IS NOT NULL;

    CREATE TABLE read_pointers (
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        user_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, user_id)
    ) WITHOUT ROWID;

    -- AUTOINCREMENT: ids are never reused, so a cursor can never point at a different event.
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX events_by_user ON events (user_id, id);
    """,
    # 2: moderation and compliance: reports, blocks, introduction intents, the append-only
    # compliance log, and the moderators' audit log (see gateway/store/moderation.py).
    """
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        message_id INTEGER REFERENCES messages (id),
        reporter_id INTEGER NOT NULL,
        reported_id INTEGER NOT NULL,
        -- The newest message when the report was filed: the context moderators see is what
        -- the reporter saw, not what was said afterwards.
        context_until_id INTEGER NOT NULL,
        category TEXT NOT NULL CHECK (category IN ('spam', 'harassment', 'safety', 'other')),
        note TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
        created_at TEXT NOT NULL,
        resolved_by INTEGER,
        resolution TEXT,
        resolved_at TEXT
    );
    CREATE INDEX reports_by_status ON reports (status, id);
    CREATE INDEX reports_by_conversation ON reports (conversation_id);

    CREATE TABLE blocks (
        blocker_id INTEGER NOT NULL,
        blocked_id INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (blocker_id, blocked_id)
    ) WITHOUT ROWID;
    CREATE INDEX blocks_by_blocked ON blocks (blocked_id, blocker_id);

    CREATE TABLE intents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL,
        peer_id INTEGER NOT NULL,
        origin_type TEXT NOT NULL,
        origin_ref TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX intents_by_time ON intents (created_at);
    CREATE INDEX conversations_by_created ON conversations (created_at);

    -- The compliance log: the application only ever inserts; the triggers make sure of it.
    CREATE TABLE moderation_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        actor_id INTEGER,
        subject_id INTEGER,
        conversation_id INTEGER,
        report_id INTEGER,
        details TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TRIGGER moderation_log_no_update BEFORE UPDATE ON moderation_log
    BEGIN SELECT RAISE(ABORT, 'moderation_log is append-only'); END;
    CREATE TRIGGER moderation_log_no_delete BEFORE DELETE ON moderation_log
    BEGIN SELECT RAISE(ABORT, 'moderation_log is append-only'); END;

    -- What moderators did. Append-only too, except that an export's outcome, row count and
    -- file hash are filled in exactly once when it ends (the entry exists before its first byte).
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        actor_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        member_id INTEGER,
        details TEXT NOT NULL,
        created_at TEXT NOT NULL,
        outcome TEXT,
        row_count INTEGER,
        sha256 TEXT,
        completed_at TEXT
    );
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_complete_once BEFORE UPDATE ON audit_log
    WHEN OLD.completed_at IS NOT NULL OR NEW.completed_at IS NULL
        OR NEW.id IS NOT OLD.id OR NEW.actor_id IS NOT OLD.actor_id
        OR NEW.action IS NOT OLD.action OR NEW.member_id IS NOT OLD.member_id
        OR NEW.details IS NOT OLD.details OR NEW.created_at IS NOT OLD.created_at
    BEGIN SELECT RAISE(ABORT, 'audit_log entries are append-only'); END;
    """,
    # 3: a stored message moves its conversation up the inbox in the same statement.
    """
    CREATE TRIGGER messages_touch_conversation AFTER INSERT ON messages
    BEGIN
        UPDATE conversations SET updated_at = NEW.created_at WHERE id = NEW.conversation_id;
    END;
    """,
    # 4: the compliance log gets one name everywhere (it was `moderation_log`).
    """
    DROP TRIGGER moderation_log_no_update;
    DROP TRIGGER moderation_log_no_delete;
    ALTER TABLE moderation_log RENAME TO compliance_log;
    CREATE TRIGGER compliance_log_no_update BEFORE UPDATE ON compliance_log
    BEGIN SELECT RAISE(ABORT, 'compliance_log is append-only'); END;
    CREATE TRIGGER compliance_log_no_delete BEFORE DELETE ON compliance_log
    BEGIN SELECT RAISE(ABORT, 'compliance_log is append-only'); END;
    """,
    # 5: what was imported from WhiteBalloon's own messages.db (gateway/import_upstream.py),
    # so that running the importer again brings nothing in twice.
    """
    CREATE TABLE imported_threads (
        upstream_thread_id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        imported_at TEXT NOT NULL
    );
    CREATE INDEX imported_threads_by_conversation ON imported_threads (conversation_id);

    CREATE TABLE imported_messages (
        upstream_message_id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL UNIQUE REFERENCES messages (id),
        upstream_thread_id INTEGER NOT NULL REFERENCES imported_threads (upstream_thread_id),
        imported_at TEXT NOT NULL
    );
    """,
    # 6: per-member rate limits (gateway/rate_limits.py): one token bucket per member and
    # action, read and written in the write transaction of the action it pays for, so all
    # workers share it. `updated_at`: seconds since the epoch.
    """
    CREATE TABLE rate_buckets (
        member_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        tokens REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (member_id, action)
    ) WITHOUT ROWID;
    """,
)


# The version POSTGRES_MIGRATIONS[0] brings a new PostgreSQL database to.
POSTGRES_BASE_VERSION = 6

_APPEND_ONLY = """
    CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
    END $$;
"""

POSTGRES_MIGRATIONS: tuple[str, ...] = (
    # 1-6 of MIGRATIONS, together. Ids are identities "by default", so `copy_store` can
    # bring a SQLite database's ids along; plain sequences with cache 1, never reused.
    """
    CREATE TABLE conversations (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        member_low BIGINT NOT NULL,
        member_high BIGINT NOT NULL,
        created_by BIGINT NOT NULL,
        origin_type TEXT NOT NULL,
        origin_ref TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        CHECK (member_low < member_high),
        UNIQUE (member_low, member_high)
    );
    CREATE INDEX conversations_by_high ON conversations (member_high);
    CREATE INDEX conversations_by_created ON conversations (created_at);

    CREATE TABLE messages (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        conversation_id BIGINT NOT NULL REFERENCES conversations (id),
        sender_id BIGINT NOT NULL,
        body TEXT NOT NULL,
        client_id TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
    CREATE UNIQUE INDEX messages_by_client_id ON messages (sender_id, client_id)
        WHERE client_id IS NOT NULL;

    CREATE TABLE read_pointers (
        conversation_id BIGINT NOT NULL REFERENCES conversations (id),
        user_id BIGINT NOT NULL,
        message_id BIGINT NOT NULL,
        PRIMARY KEY (conversation_id, user_id)
    );

    CREATE TABLE events (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_id BIGINT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX events_by_user ON events (user_id, id);

    CREATE TABLE reports (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        conversation_id BIGINT NOT NULL REFERENCES conversations (id),
        message_id BIGINT REFERENCES messages (id),
        reporter_id BIGINT NOT NULL,
        reported_id BIGINT NOT NULL,
        context_until_id BIGINT NOT NULL,
        category TEXT NOT NULL CHECK (category IN ('spam', 'harassment', 'safety', 'other')),
        note TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
        created_at TEXT NOT NULL,
        resolved_by BIGINT,
        resolution TEXT,
        resolved_at TEXT
    );
    CREATE INDEX reports_by_status ON reports (status, id);
    CREATE INDEX reports_by_conversation ON reports (conversation_id);

    CREATE TABLE blocks (
        blocker_id BIGINT NOT NULL,
        blocked_id BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (blocker_id, blocked_id)
    );
    CREATE INDEX blocks_by_blocked ON blocks (blocked_id, blocker_id);

    CREATE TABLE intents (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_id BIGINT NOT NULL,
        peer_id BIGINT NOT NULL,
        origin_type TEXT NOT NULL,
        origin_ref TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX intents_by_time ON intents (created_at);
    """
    + _APPEND_ONLY
    + """
    CREATE TABLE compliance_log (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        kind TEXT NOT NULL,
        actor_id BIGINT,
        subject_id BIGINT,
        conversation_id BIGINT,
        report_id BIGINT,
        details TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TRIGGER compliance_log_append_only BEFORE UPDATE OR DELETE ON compliance_log
        FOR EACH ROW EXECUTE FUNCTION refuse_change();
    CREATE TRIGGER compliance_log_no_truncate BEFORE TRUNCATE ON compliance_log
        FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

    CREATE TABLE audit_log (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        actor_id BIGINT NOT NULL,
        action TEXT NOT NULL,
        member_id BIGINT,
        details TEXT NOT NULL,
        created_at TEXT NOT NULL,
        outcome TEXT,
        row_count BIGINT,
        sha256 TEXT,
        completed_at TEXT
    );
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION refuse_change();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
    CREATE FUNCTION audit_log_complete_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.completed_at IS NOT NULL OR NEW.completed_at IS NULL
            OR NEW.id IS DISTINCT FROM OLD.id OR NEW.actor_id IS DISTINCT FROM OLD.actor_id
            OR NEW.action IS DISTINCT FROM OLD.action
            OR NEW.member_id IS DISTINCT FROM OLD.member_id
            OR NEW.details IS DISTINCT FROM OLD.details
            OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
            RAISE EXCEPTION 'audit_log entries are append-only';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER audit_log_complete_once BEFORE UPDATE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_complete_once();

    CREATE FUNCTION messages_touch_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE conversations SET updated_at = NEW.created_at WHERE id = NEW.conversation_id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_touch_conversation AFTER INSERT ON messages
        FOR EACH ROW EXECUTE FUNCTION messages_touch_conversation();

    CREATE TABLE imported_threads (
        upstream_thread_id BIGINT PRIMARY KEY,
        conversation_id BIGINT NOT NULL REFERENCES conversations (id),
        imported_at TEXT NOT NULL
    );
    CREATE INDEX imported_threads_by_conversation ON imported_threads (conversation_id);

    CREATE TABLE imported_messages (
        upstream_message_id BIGINT PRIMARY KEY,
        message_id BIGINT NOT NULL UNIQUE REFERENCES messages (id),
        upstream_thread_id BIGINT NOT NULL REFERENCES imported_threads (upstream_thread_id),
        imported_at TEXT NOT NULL
    );

    CREATE TABLE rate_buckets (
        member_id BIGINT NOT NULL,
        action TEXT NOT NULL,
        tokens DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (member_id, action)
    );
    """,
)


def migrate_postgres(conn: PgTxConnection) -> int:
    """`migrate` for PostgreSQL, under the writers' advisory lock (`postgres.WRITE_LOCK`)."""
    from gateway.store.postgres import WRITE_LOCK

    raw = conn.raw
    with raw.transaction():
        raw.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        raw.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = raw.execute("SELECT max(version) FROM schema_version").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version == 0:
            version = POSTGRES_BASE_VERSION - 1
        done = version - (POSTGRES_BASE_VERSION - 1)
        for number, script in enumerate(POSTGRES_MIGRATIONS[done:], start=version + 1):
            raw.execute(script, prepare=False)  # no parameters: one simple query, many statements
            raw.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
    return POSTGRES_BASE_VERSION - 1 + len(POSTGRES_MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the resulting version. Runs on the writer's
    connection as it opens (`connections.connect_writer`)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("PRAGMA user_version").fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    # executescript() would commit the surrounding transaction; run statement by statement.
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    # Split at the `;` that end statements, not those inside a trigger's BEGIN ... END.
    statements, pending = [], ""
    for part in "\n".join(lines).split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            statement = pending.strip().removesuffix(";").strip()
            if statement:
                statements.append(statement)
            pending = ""
    return statements
