"""A gateway with the members of tests/support/members.py, driven through Quart's test client.

Shared by the moderation, export and metrics tests. Each test file wraps `harness()` in its
own fixture so the tests read as what a member, moderator or admin would do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from quart.testing import QuartClient

from gateway.app import create_app
from gateway.auth import sign_session
from gateway.config import Settings
from gateway.services import Services
from tests.support.members import COOKIE, SECRET


class Harness:
    def __init__(self, client: QuartClient, services: Services) -> None:
        self.client = client
        self.services = services

    @staticmethod
    def headers(user_id: int) -> dict[str, str]:
        return {"Cookie": f"{COOKIE}={sign_session(SECRET, {'user_id': user_id})}"}

    async def get(self, path: str, user_id: int, **params: Any) -> Any:
        return await self.client.get(path, headers=self.headers(user_id), query_string=params)

    async def post(self, path: str, user_id: int, payload: dict[str, Any]) -> Any:
        return await self.client.post(path, headers=self.headers(user_id), json=payload)

    async def delete(self, path: str, user_id: int) -> Any:
        return await self.client.delete(path, headers=self.headers(user_id))

    async def json(self, response: Any, status: int) -> Any:
        body = await response.get_json()
        assert response.status_code == status, body
        return body

    async def conversation(self, a: int, b: int, origin: str = "inbox") -> int:
        response = await self.post(
            "/api/conversations", a, {"peer_id": b, "origin": {"type": origin, "ref": "r1"}}
        )
        assert response.status_code in (200, 201), await response.get_json()
        return cast(int, (await response.get_json())["conversation"]["id"])

    async def send(self, conversation_id: int, sender: int, body: str) -> int:
        response = await self.post(
            f"/api/conversations/{conversation_id}/messages", sender, {"body": body}
        )
        assert response.status_code == 201, await response.get_json()
        return cast(int, (await response.get_json())["message"]["id"])

    async def report(
        self, conversation_id: int, reporter: int, message_id: int | None, **extra: Any
    ) -> Any:
        payload = {
            "conversation_id": conversation_id,
            "message_id": message_id,
            "category": "harassment",
            "note": "rude",
            **extra,
        }
        return await self.post("/api/reports", reporter, payload)

    async def export(self, user_id: int, **params: Any) -> Any:
        return await self.get("/api/moderation/export", user_id, **params)


@asynccontextmanager
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    """The app on conftest's `settings` (its directory, secret and database)."""
    app = create_app(settings)
    async with app.test_app() as test_app:
        services = cast(Services, test_app.app.extensions["whiteballoon"])
        yield Harness(test_app.test_client(), services)
