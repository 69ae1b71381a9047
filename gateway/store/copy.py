"""Copy a SQLite messaging.db into an empty PostgreSQL database, and prove the copy.

Every table comes across with its ids, so message links, report numbers and the event
cursors clients hold stay valid: a client resumes on PostgreSQL where it left off on SQLite.
The source is read in one transaction (one consistent snapshot; the gateway may keep
running on it, though what it writes afterwards is not copied). The target is written in
one transaction: a failed copy leaves it empty. Identity sequences continue after the
source's, so no id is ever handed out twice (`sqlite_sequence` remembers ids of rows since
deleted, such as pruned events). Afterwards each table is read back from both sides in key
order and compared by row count and SHA-256 of its rows.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from gateway.config import PostgresUrl
from gateway.store.postgres import connect_tx
from gateway.store.schema import MIGRATIONS, migrate_postgres

# Every table of the schema, parents before children, with the key that orders its rows.
TABLES: tuple[tuple[str, str], ...] = (
    ("conversations", "id"),
    ("messages", "id"),
    ("read_pointers", "conversation_id, user_id"),
    ("events", "id"),
    ("reports", "id"),
    ("blocks", "blocker_id, blocked_id"),
    ("intents", "id"),
    ("compliance_log", "id"),
    ("audit_log", "id"),
    ("imported_threads", "upstream_thread_id"),
    ("imported_messages", "upstream_message_id"),
    ("rate_buckets", "member_id, action"),
)
# Tables whose ids come from an identity, to continue after the source's.
_IDENTITIES = (
    "conversations",
    "messages",
    "events",
    "reports",
    "intents",
    "compliance_log",
    "audit_log",
)
# Triggers that would rewrite rows as they are copied (a message moves its conversation's
# `updated_at`): the copy brings the source's values as they are.
_TRIGGERS_OFF = (("messages", "messages_touch_conversation"),)


class CopyRefused(Exception):
    """The copy cannot start: nothing was written."""


class CopyMismatch(Exception):
    """The target does not read back as the source: the copy was rolled back."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    rows: int
    sha256: str


def copy_store(source: Path, target: PostgresUrl) -> list[TableCopy]:
    """Copy `source` into the empty PostgreSQL database `target`; the tables as verified."""
    if not source.is_file():
        raise CopyRefused(f"{source} is not a file")
    src = sqlite3.connect(f"file:{source.resolve()}?mode=ro", uri=True, isolation_level=None)
    try:
        version = src.execute("PRAGMA user_version").fetchone()[0]
        if version != len(MIGRATIONS):
            raise CopyRefused(
                f"{source} is at schema version {version}, not {len(MIGRATIONS)}: start this "
                "version of the gateway on it once (it migrates), then copy"
            )
        src.execute("BEGIN")  # one snapshot for reading and verifying
        dst = connect_tx(target)
        try:
            _refuse_non_empty(dst.raw, target)
            with dst.raw.transaction():  # the schema too: a failed copy leaves nothing
                migrate_postgres(dst)
                for table, trigger in _TRIGGERS_OFF:
                    dst.raw.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
                for table, key in TABLES:
                    _copy_table(src, dst.raw, table, key)
                for table, trigger in _TRIGGERS_OFF:
                    dst.raw.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
                _continue_identities(src, dst.raw)
                verified = [_verify(src, dst.raw, table, key) for table, key in TABLES]
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()
    return verified


def _refuse_non_empty(conn: psycopg.Connection[Any], target: PostgresUrl) -> None:
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_catalog.pg_tables "
            "WHERE schemaname = ANY (current_schemas(false)) ORDER BY tablename"
        )
    ]
    if tables:
        raise CopyRefused(
            f"{target} is not empty (it has {', '.join(tables[:5])}"
            f"{', ...' if len(tables) > 5 else ''}): copy into a new, empty database"
        )


def _columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in src.execute(f"PRAGMA table_info({table})")]


def _copy_table(
    src: sqlite3.Connection, dst: psycopg.Connection[Any], table: str, key: str
) -> None:
    columns = ", ".join(_columns(src, table))
    rows = src.execute(f"SELECT {columns} FROM {table} ORDER BY {key}")
    with dst.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _continue_identities(src: sqlite3.Connection, dst: psycopg.Connection[Any]) -> None:
    sequences = dict(src.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    for table in _IDENTITIES:
        newest = max(
            sequences.get(table, 0),
            src.execute(f"SELECT COALESCE(max(id), 0) FROM {table}").fetchone()[0],
        )
        if newest > 0:
            dst.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, newest))


def _digest(rows: Iterable[tuple[Any, ...]]) -> tuple[int, str]:
    digest, count = hashlib.sha256(), 0
    for row in rows:
        digest.update(json.dumps(list(row), ensure_ascii=False).encode() + b"\n")
        count += 1
    return count, digest.hexdigest()


def _rows(cursor: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    for row in cursor:
        yield tuple(row)


def _verify(
    src: sqlite3.Connection, dst: psycopg.Connection[Any], table: str, key: str
) -> TableCopy:
    columns = ", ".join(_columns(src, table))
    query = f"SELECT {columns} FROM {table} ORDER BY "
    expected = _digest(_rows(src.execute(query + key)))
    # Text keys in SQLite's (bytewise) order, whatever the database's collation.
    actual = _digest(_rows(dst.execute(query + key.replace("action", 'action COLLATE "C"'))))
    if actual != expected:
        raise CopyMismatch(
            f"{table}: {expected[0]} rows (sha256 {expected[1][:12]}) in the source, "
            f"{actual[0]} (sha256 {actual[1][:12]}) read back from the target"
        )
    return TableCopy(table, *expected)
