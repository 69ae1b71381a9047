"""The least an SSE stream can cost on this server: a bare ASGI app for the `floor` target of
`benchmarks.compare`, served by Hypercorn with the gateway's own hypercorn.toml.

`GET /stream` answers a first frame, then a heartbeat comment every `FLOOR_HEARTBEAT_SECONDS`
(15) until the client leaves. No authentication, no subscription, no event log, not even a
task watching for the disconnect: what remains of a stream's memory is Hypercorn's (its
connection, protocol and stream objects, and the tasks it runs per connection), a floor no
app on Hypercorn can go below. Not a server anyone should run.
"""

from __future__ import annotations

import asyncio
import os

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

HEARTBEAT_SECONDS = float(os.environ.get("FLOOR_HEARTBEAT_SECONDS", "15"))


async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] != "/stream":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send(
        {"type": "http.response.body", "body": b"event: hello\ndata: {}\n\n", "more_body": True}
    )
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        # After a disconnect Hypercorn ignores what is sent; the loop ends with the server.
        await send({"type": "http.response.body", "body": b": heartbeat\n", "more_body": True})
