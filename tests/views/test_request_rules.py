"""The rules every request meets before a view runs: same origin, well-formed input."""

from __future__ import annotations

import pytest
from quart.testing import QuartClient

from tests.support.members import ALICE, as_member


@pytest.mark.parametrize(
    "path", ["/api/me", "/api/conversations", "/api/moderation/export?member_id=1&reason=x"]
)
async def test_a_foreign_origin_may_not_read_the_api(
    client: QuartClient, cookies: dict[int, str], path: str
) -> None:
    """Older browsers, sibling subdomains and scripts send Origin without Sec-Fetch-Site."""
    foreign = await client.get(
        path, headers=as_member(cookies[ALICE], Origin="https://evil.example")
    )
    assert foreign.status_code == 403
    assert (await foreign.get_json())["error"]["code"] == "cross_origin"
    ours = await client.get("/api/me", headers=as_member(cookies[ALICE], Origin="http://localhost"))
    assert ours.status_code == 200


async def test_pages_still_open_from_links_elsewhere(client: QuartClient) -> None:
    response = await client.get(
        "/", headers={"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 200


async def test_a_json_body_that_is_not_utf8_is_a_400(
    client: QuartClient, cookies: dict[int, str]
) -> None:
    response = await client.post(
        "/api/conversations",
        data=b'{"peer_id": "\xff\xfe"}',
        headers=as_member(cookies[ALICE], **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "invalid_request"


async def test_a_static_name_no_file_system_holds_is_a_404(client: QuartClient) -> None:
    response = await client.get("/static/" + "a" * 300)
    assert response.status_code == 404
    assert (await response.get_json())["error"]["code"] == "not_found"
