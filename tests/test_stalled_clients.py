"""A stream whose reader stops reading is dropped within WB_WRITE_TIMEOUT_SECONDS instead of
pinning a task, a subscription and kernel buffers for as long as it likes."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.localserver import LocalGateway
from tests.support.members import ALICE, BOB, COOKIE, SECRET, starlette_cookie

pytestmark = pytest.mark.e2e

WRITE_TIMEOUT = 2


def open_streams(metrics: str) -> int:
    found = re.search(r"^wb_open_streams\{[^}]*\} (\d+)$", metrics, re.MULTILINE)
    assert found is not None, metrics
    return int(found.group(1))


def test_a_stream_nobody_reads_is_dropped(tmp_path: Path, app_db: Path) -> None:
    env = {
        "WB_APP_DB": str(app_db),
        "WB_SESSION_SECRET": SECRET,
        "WB_WRITE_TIMEOUT_SECONDS": str(WRITE_TIMEOUT),
        "WB_RATE_SENDS": "off",
    }
    bob = starlette_cookie({"user_id": BOB})
    alice = {"Cookie": f"{COOKIE}={starlette_cookie({'user_id': ALICE})}"}
    with LocalGateway(tmp_path / "data", workers=1, env=env) as server:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
        stalled.connect(("127.0.0.1", server.port))
        request = f"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {COOKIE}={bob}\r\n\r\n"
        stalled.sendall(request.encode())
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            deadline = time.monotonic() + 5
            while open_streams(client.get("/metrics").text) != 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            started = client.post("/api/conversations", json={"peer_id": BOB}, headers=alice)
            conversation_id = started.json()["conversation"]["id"]
            # Far more than the socket buffers hold; the stalled reader never takes any.
            for n in range(300):
                sent = client.post(
                    f"/api/conversations/{conversation_id}/messages",
                    json={"body": f"{n} " + "x" * 3900},
                    headers=alice,
                )
                assert sent.status_code == 201
            filled = time.monotonic()
            while open_streams(client.get("/metrics").text) != 0:
                assert time.monotonic() - filled < WRITE_TIMEOUT + 10, "the stalled stream stayed"
                time.sleep(0.2)
            assert client.get("/api/me", headers=alice).status_code == 200  # still serving
        stalled.close()
