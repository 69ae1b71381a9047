"""Shared fixtures: the main-app directory of tests/support/members.py, the gateway's own
database (SQLite; PostgreSQL where a test folder asks for both with `store_kind`), the app
under Quart's test harness (start-up and shutdown hooks run), and cookies minted the way the
main app mints them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from quart import Quart
from quart.testing import QuartClient

from gateway.app import create_app
from gateway.config import Database, PostgresUrl, Settings
from gateway.store.stand_in import create_directory
from tests.support.members import MEMBERS, SECRET, starlette_cookie
from tests.support.postgres import PostgresCluster


@pytest.fixture(scope="session")
def cookies() -> dict[int, str]:
    return {member.user_id: starlette_cookie({"user_id": member.user_id}) for member in MEMBERS}


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WB_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def app_db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    await create_directory(path, MEMBERS)
    return path


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server for the whole run, started when first needed."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_db(postgres_cluster: PostgresCluster) -> Iterator[PostgresUrl]:
    """An empty PostgreSQL database of its own for one test."""
    url = postgres_cluster.database()
    yield url
    postgres_cluster.drop(url)


@pytest.fixture
def store_kind() -> str:
    """Which engine the gateway's database is on. SQLite here; the suites that must hold on
    both (messaging, moderation, live) override this with both (`tests/support/stores.py`)."""
    return "sqlite"


@pytest.fixture
def messaging_db(request: pytest.FixtureRequest, tmp_path: Path, store_kind: str) -> Database:
    if store_kind == "postgresql":
        url: PostgresUrl = request.getfixturevalue("postgres_db")
        return url
    return tmp_path / "messaging.db"


@pytest.fixture
def settings(app_db: Path, messaging_db: Database) -> Settings:
    return Settings(
        session_secrets=(SECRET,),
        app_db=app_db,
        messaging_db=messaging_db,
        heartbeat_seconds=0.5,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    quart_app = create_app(settings)
    async with quart_app.test_app() as test_app:
        yield test_app.app


@pytest.fixture
def client(app: Quart) -> QuartClient:
    return app.test_client()
