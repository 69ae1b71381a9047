"""Mint a session cookie for a member, signed as the main app signs it.

For load tests, operators and the main app's own tooling:

    python -m gateway.mint --user-id 42 [--session-id ID] [--secret S]

The secret defaults to the first of WB_SESSION_SECRET. Prints the cookie value.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gateway.auth import sign_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.mint", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--user-id", type=int, required=True)
    parser.add_argument("--session-id", help="a row of the main app's sessions table")
    parser.add_argument("--secret", help="signing secret (default: first of WB_SESSION_SECRET)")
    args = parser.parse_args(argv)
    configured = [s.strip() for s in os.environ.get("WB_SESSION_SECRET", "").split(",")]
    secret = args.secret or next((s for s in configured if s), "")
    if not secret:
        print("error: pass --secret or set WB_SESSION_SECRET", file=sys.stderr)
        return 2
    session: dict[str, Any] = {"user_id": args.user_id}
    if args.session_id is not None:
        session["session_id"] = args.session_id
    print(sign_session(secret, session))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
