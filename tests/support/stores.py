"""Run a test folder against both engines of the gateway's database: import `store_kind`
into the folder's conftest.py, and every test there that builds on the `settings` (or
`messaging_db`) fixture runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.config import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@contextmanager
def direct(db: Database) -> Iterator[tuple[Any, type[Exception]]]:
    """A plain connection to the gateway's database, as an operator's shell would open one
    (autocommit), and the exception its refusals raise."""
    if isinstance(db, Path):
        conn: Any = sqlite3.connect(db, isolation_level=None)
        error: type[Exception] = sqlite3.IntegrityError
    else:
        conn = psycopg.connect(db.url, autocommit=True)
        error = psycopg.errors.RaiseException
    try:
        yield conn, error
    finally:
        conn.close()
