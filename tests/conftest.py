"""Shared fixtures: the main-app directory of tests/support/members.py, the app under Quart's
test harness (start-up and shutdown hooks run), and cookies minted the way the main app mints
them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart import Quart
from quart.testing import QuartClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.store.stand_in import create_directory
from tests.support.members import MEMBERS, SECRET, starlette_cookie


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


@pytest.fixture
def settings(tmp_path: Path, app_db: Path) -> Settings:
    return Settings(
        session_secrets=(SECRET,),
        app_db=app_db,
        messaging_db=tmp_path / "messaging.db",
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
