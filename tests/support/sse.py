"""Reading an SSE response inside Quart's test client, with a hard timeout on every wait."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from quart.testing import QuartClient
from quart.testing.connections import TestHTTPConnection as HTTPConnection

from tests.support.members import as_member


@dataclass
class Frame:
    id: str | None
    event: str
    data: Any
    comment: bool = False


class StreamReader:
    def __init__(self, connection: HTTPConnection) -> None:
        self.connection = connection
        self._buffer = b""
        self.raw = b""

    async def next_frame(self, timeout: float = 5.0) -> Frame:
        while b"\n\n" not in self._buffer:
            chunk = await asyncio.wait_for(self.connection.receive(), timeout)
            self.raw += chunk
            self._buffer += chunk
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        fields: dict[str, str] = {}
        comment = False
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                comment = True  # heartbeats
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        data = json.loads(fields["data"]) if "data" in fields else None
        return Frame(fields.get("id"), fields.get("event", ""), data, comment)

    async def wait_for_bytes(self, wanted: bytes, timeout: float) -> None:
        while wanted not in self.raw:
            chunk = await asyncio.wait_for(self.connection.receive(), timeout)
            self.raw += chunk
            self._buffer += chunk

    async def next_event(self, timeout: float = 5.0) -> Frame:
        """The next event, skipping heartbeats and the retry hint."""
        while True:
            frame = await self.next_frame(timeout)
            if frame.event:  # heartbeat comment lines may precede an event in its block
                return frame

    async def silent_for(self, seconds: float) -> bool:
        try:
            await self.next_event(seconds)
        except TimeoutError:
            return True
        return False


@asynccontextmanager
async def open_stream(
    client: QuartClient,
    cookie: str | None,
    last_event_id: str | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[StreamReader]:
    """A member's stream: `cookie` is a signed session cookie, or pass the request `headers`."""
    headers = dict(headers) if headers is not None else as_member(cookie or "")
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    connection = client.request("/api/stream", headers=headers)
    async with connection:
        await connection.send_complete()
        reader = StreamReader(connection)
        try:
            yield reader
        finally:
            await connection.disconnect()
