"""Mint a session cookie for a member, for load tests, operators and test tooling.

    python -m gateway.mint --user-id 42 [--session-id ID] [--secret S]
        A signed cookie (WB_SESSION_COOKIE), signed as Starlette's SessionMiddleware signs
        it; the secret defaults to the first of WB_SESSION_SECRET.

    python -m gateway.mint --user-id 42 --sign-in APP_DB
        WhiteBalloon's own cookie (wb_session_id): writes an approved `sessions` row into
        APP_DB, as WhiteBalloon records a sign-in, and prints its id. For a test or
        load-test database only; a live instance's members sign in through WhiteBalloon.

Prints the cookie value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from gateway.auth import sign_session
from gateway.store.stand_in import create_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.mint",
        description="Mint a session cookie for a member.",
    )
    parser.add_argument("--user-id", type=int, required=True)
    parser.add_argument("--session-id", help="a row of the main app's sessions table")
    parser.add_argument("--secret", help="signing secret (default: first of WB_SESSION_SECRET)")
    parser.add_argument(
        "--sign-in",
        type=Path,
        metavar="APP_DB",
        help="write a sessions row into this (test) app.db and print its wb_session_id",
    )
    args = parser.parse_args(argv)
    if args.sign_in is not None:
        if args.secret or args.session_id:
            print(
                "error: --sign-in mints an unsigned session id; drop --secret and --session-id",
                file=sys.stderr,
            )
            return 2
        if not args.sign_in.is_file():
            print(f"error: {args.sign_in} is not an existing app.db", file=sys.stderr)
            return 2
        print(asyncio.run(create_session(args.sign_in, args.user_id)))
        return 0
    configured = [s.strip() for s in os.environ.get("WB_SESSION_SECRET", "").split(",")]
    secret = args.secret or next((s for s in configured if s), "")
    if not secret:
        print("error: pass --secret or set WB_SESSION_SECRET (or use --sign-in)", file=sys.stderr)
        return 2
    session: dict[str, Any] = {"user_id": args.user_id}
    if args.session_id is not None:
        session["session_id"] = args.session_id
    print(sign_session(secret, session))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
