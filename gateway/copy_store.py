"""Move an instance's messages from SQLite to PostgreSQL.

    python -m gateway.copy_store data/messaging.db postgresql://gateway@db.internal/messaging

Copies every table of a SQLite messaging.db, ids and event cursors included, into an empty
PostgreSQL database, then reads both back and compares them table by table (row count and
SHA-256). A target that already has tables is refused; a copy that fails or does not read
back the same is rolled back, leaving the target empty. Stop the gateway first (or accept
that what it writes during the copy stays behind), then point `WB_MESSAGING_DB` at the URL.
How it copies: `gateway/store/copy.py`.
"""

from __future__ import annotations

import argparse
import sys

import psycopg

from gateway.config import PostgresUrl, database_argument, database_location
from gateway.store.copy import CopyMismatch, CopyRefused, copy_store

EXIT_REFUSED = 2


def _postgres_argument(raw: str) -> PostgresUrl:
    try:
        location = database_location(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{raw!r} {error}") from None
    if not isinstance(location, PostgresUrl):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a postgresql:// URL")
    return location


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.copy_store",
        description="Copy a SQLite messaging.db into an empty PostgreSQL database and verify it.",
    )
    parser.add_argument("source", type=database_argument, help="the SQLite messaging.db")
    parser.add_argument("target", type=_postgres_argument, help="an empty database's URL")
    args = parser.parse_args(argv)
    try:
        tables = copy_store(args.source, args.target)
    except (CopyRefused, CopyMismatch) as error:
        print(f"error: {error}\nNothing was copied.", file=sys.stderr)
        return EXIT_REFUSED
    except psycopg.Error as error:
        print(f"error: {type(error).__name__}: {error}\nNothing was copied.", file=sys.stderr)
        return EXIT_REFUSED
    print(f"Copied {args.source} into {args.target}; read back and verified:")
    for table in tables:
        print(f"  {table.table:<18} {table.rows:>10} rows  sha256 {table.sha256[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
