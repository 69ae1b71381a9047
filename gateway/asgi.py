"""The ASGI entry point Hypercorn serves: `hypercorn --config hypercorn.toml gateway.asgi:app`."""

from __future__ import annotations

import logging
import sys

from gateway.app import create_app
from gateway.exceptions import ConfigError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

try:
    app = create_app()
except ConfigError as error:
    print(f"whiteballoon gateway: configuration error: {error}", file=sys.stderr)
    print("Run `python -m gateway.config` to list every setting.", file=sys.stderr)
    raise SystemExit(2) from None
