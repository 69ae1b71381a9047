"""A member's requests through Quart's test client, as the tests of several areas make them."""

from __future__ import annotations

from typing import Any

from quart.testing import QuartClient

from tests.support.members import as_member


async def start(client: QuartClient, cookie: str, peer_id: int, **origin: Any) -> Any:
    response = await client.post(
        "/api/conversations",
        json={"peer_id": peer_id, "origin": origin or {"type": "inbox", "ref": None}},
        headers=as_member(cookie),
    )
    return response


async def new_conversation(client: QuartClient, cookie: str, peer_id: int) -> int:
    return int((await (await start(client, cookie, peer_id)).get_json())["conversation"]["id"])


async def send(
    client: QuartClient, cookie: str, conversation_id: int, body: str, **extra: Any
) -> Any:
    return await client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"body": body, **extra},
        headers=as_member(cookie),
    )
