"""The ASGI entry point Hypercorn serves: `hypercorn --config hypercorn.toml gateway.asgi:app`."""

from __future__ import annotations

import logging
import sys

from gateway.app import create_app
from gateway.exceptions import ConfigError
from gateway.services import services_of
from gateway.shutdown import handle_termination
from gateway.stalled import drop_stalled_connections

# The gateway's own loggers only: Hypercorn already prints its own, and propagating to a
# configured root logger would print them twice.
_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
_log = logging.getLogger("gateway")
_log.addHandler(_handler)
_log.setLevel(logging.INFO)
_log.propagate = False

try:
    app = create_app()
except ConfigError as error:
    print(f"whiteballoon gateway: configuration error: {error}", file=sys.stderr)
    print("Run `python -m gateway.config` to list every setting.", file=sys.stderr)
    raise SystemExit(2) from None


@app.before_serving
async def worker_process() -> None:
    # Only here, in the server's entry point: tests that run the app in-process keep their
    # own signal handling.
    services = services_of(app)
    handle_termination(services.broadcaster.close)
    timeout = services.settings.write_timeout_seconds
    listeners = drop_stalled_connections(timeout)
    logging.getLogger(__name__).info(
        "connections unread for %ss are dropped (%d listening sockets)", timeout, listeners
    )
