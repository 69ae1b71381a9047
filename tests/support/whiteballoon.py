"""A small stand-in for WhiteBalloon itself, for tests that put the gateway beside it.

It writes `app.db` in the real app's schema and value formats (see /work/notes/upstream.md:
SQLModel's DDL, DATETIME as naive-UTC text 'YYYY-MM-DD HH:MM:SS.ffffff', BOOLEAN as 0/1,
`sessions.id` a uuid4 hex), with plain sqlite3 rather than the gateway's own code, and serves
the few pages a member goes through on the way to messaging:

- `GET /login`, `POST /login` (form `username`): a new `auth_requests` row (pending) and a
  new `sessions` row with `is_fully_authenticated = 0`; sets `wb_session_id` (HttpOnly,
  SameSite=lax, Path=/, Max-Age=1209600) and redirects to `/login/pending`. Someone else
  approves: `WhiteBalloon.approve(username)` flips the linked sessions to 1, as
  `approve_auth_request` does.
- `POST /logout`: deletes the sessions row and the cookie, 303 to `/login`.
- `GET /members`: the directory, with the real app's visibility rule and its "Message"
  button, a plain form posting `username` to `/messages/direct`.
- `GET /`: home, with the Inbox link (`/messages`) and the sign-out button.

It runs in a thread under Hypercorn on 127.0.0.1 and an ephemeral port:

    with WhiteBalloon(tmp_path / "wb") as wb:
        hank = wb.register("hank")            # the first member: an admin
        alice = wb.register("alice", invited_by=hank)
"""

from __future__ import annotations

import asyncio
import html
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

SESSION_COOKIE = "wb_session_id"
SESSION_EXPIRY_MINUTES = 20160  # the real default: 14 days
AUTH_REQUEST_MINUTES = 15
# Written here rather than taken from the gateway's stand_in, so the gateway is read against
# an independent copy of the real app's format.
DB_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

# The DDL SQLModel's create_all emits for the real models (app/models.py) on SQLite: same
# tables, columns, types, nullability, keys and indexes (no SQL defaults anywhere).
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        id INTEGER NOT NULL,
        username VARCHAR,
        is_admin BOOLEAN NOT NULL,
        contact_email VARCHAR,
        created_at DATETIME NOT NULL,
        sync_scope VARCHAR NOT NULL,
        PRIMARY KEY (id)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS ix_users_username ON users (username)",
    """CREATE TABLE IF NOT EXISTS user_attributes (
        id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        "key" VARCHAR NOT NULL,
        value VARCHAR,
        created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL,
        created_by_user_id INTEGER,
        updated_by_user_id INTEGER,
        PRIMARY KEY (id),
        CONSTRAINT ux_user_attributes_user_key UNIQUE (user_id, "key"),
        FOREIGN KEY(user_id) REFERENCES users (id),
        FOREIGN KEY(created_by_user_id) REFERENCES users (id),
        FOREIGN KEY(updated_by_user_id) REFERENCES users (id)
    )""",
    "CREATE INDEX IF NOT EXISTS ix_user_attributes_user_id ON user_attributes (user_id)",
    """CREATE TABLE IF NOT EXISTS auth_requests (
        id VARCHAR NOT NULL,
        user_id INTEGER NOT NULL,
        status VARCHAR(8),
        created_at DATETIME NOT NULL,
        expires_at DATETIME NOT NULL,
        verification_code VARCHAR NOT NULL,
        device_info VARCHAR,
        ip_address VARCHAR,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id)
    )""",
    """CREATE TABLE IF NOT EXISTS auth_approvals (
        id VARCHAR NOT NULL,
        auth_request_id VARCHAR NOT NULL,
        approver_user_id INTEGER NOT NULL,
        created_at DATETIME NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(auth_request_id) REFERENCES auth_requests (id),
        FOREIGN KEY(approver_user_id) REFERENCES users (id)
    )""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id VARCHAR NOT NULL,
        user_id INTEGER NOT NULL,
        created_at DATETIME NOT NULL,
        expires_at DATETIME NOT NULL,
        last_seen_at DATETIME,
        auth_request_id VARCHAR,
        is_fully_authenticated BOOLEAN NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(user_id) REFERENCES users (id),
        FOREIGN KEY(auth_request_id) REFERENCES auth_requests (id)
    )""",
)


def utcnow() -> datetime:
    """Naive UTC, as the real app's `datetime.utcnow()`."""
    return datetime.now(UTC).replace(tzinfo=None)


def db_time(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text: microseconds always six digits, no offset."""
    return value.strftime(DB_TIME_FORMAT)


def parse_db_time(value: str) -> datetime:
    return datetime.strptime(value, DB_TIME_FORMAT)


class AppDatabase:
    """The real app's `app.db`, written the way its services write it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            with conn:  # one transaction, committed on success
                yield conn
        finally:
            conn.close()

    def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            for statement in SCHEMA:
                conn.execute(statement)

    # ---- members -----------------------------------------------------------------------

    def register(
        self,
        username: str,
        *,
        invited_by: int | None = None,
        contact_email: str | None = None,
        sync_scope: str = "private",
    ) -> int:
        """A new member, as `create_user_with_invite` makes one: the first is an admin; one
        invited by a member records `invited_by_user_id`; everyone starts private unless an
        admin later changes `sync_scope` (pass it here to stand for that)."""
        username = username.strip().lower()
        now = db_time(utcnow())
        with self.connect() as conn:
            first = conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
            cursor = conn.execute(
                "INSERT INTO users (username, is_admin, contact_email, created_at, sync_scope) "
                "VALUES (?, ?, ?, ?, ?)",
                (username, 1 if first else 0, contact_email, now, sync_scope),
            )
            user_id = int(cursor.lastrowid or 0)
            self._set_attribute(conn, user_id, "peer_auth_reviewer", "approved", None)
            if invited_by is not None:
                self._set_attribute(
                    conn, user_id, "invited_by_user_id", str(invited_by), invited_by
                )
        return user_id

    def set_sync_scope(self, user_id: int, scope: str) -> None:
        """What an admin's `POST /sync/scope` does (anything unknown becomes private)."""
        scope = scope if scope in ("private", "public") else "private"
        with self.connect() as conn:
            conn.execute("UPDATE users SET sync_scope = ? WHERE id = ?", (scope, user_id))

    def set_attribute(self, user_id: int, key: str, value: str, actor: int | None = None) -> None:
        with self.connect() as conn:
            self._set_attribute(conn, user_id, key, value, actor)

    @staticmethod
    def _set_attribute(
        conn: sqlite3.Connection, user_id: int, key: str, value: str, actor: int | None
    ) -> None:
        now = db_time(utcnow())
        updated = conn.execute(
            "UPDATE user_attributes SET value = ?, updated_at = ?, updated_by_user_id = ? "
            'WHERE user_id = ? AND "key" = ?',
            (value, now, actor, user_id, key),
        )
        if updated.rowcount == 0:
            conn.execute(
                'INSERT INTO user_attributes (user_id, "key", value, created_at, updated_at, '
                "created_by_user_id, updated_by_user_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, key, value, now, now, actor, actor),
            )

    def user(self, user_id: int) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM users WHERE id = ?", (user_id,)
            ).fetchone()
            return row

    def user_by_username(self, username: str) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM users WHERE username = ?", (username.strip().lower(),)
            ).fetchone()
            return row

    def visible_members(self, viewer: sqlite3.Row) -> list[sqlite3.Row]:
        """`member_directory_service.list_members`' rule: admins see all; others see public
        members, themselves and whom they invited. Newest first."""
        with self.connect() as conn:
            if viewer["is_admin"]:
                return conn.execute("SELECT * FROM users ORDER BY created_at DESC").fetchall()
            return conn.execute(
                "SELECT * FROM users WHERE sync_scope = 'public' OR id = ? OR id IN "
                "(SELECT user_id FROM user_attributes WHERE \"key\" = 'invited_by_user_id' "
                "AND value = ?) ORDER BY created_at DESC",
                (viewer["id"], str(viewer["id"])),
            ).fetchall()

    # ---- sessions ----------------------------------------------------------------------

    def create_auth_request(
        self, user_id: int, device_info: str | None = None, ip_address: str | None = None
    ) -> tuple[str, str]:
        """`auth_service.create_auth_request`: (session id, verification code). The new
        session is not fully authenticated until someone approves the request."""
        now = utcnow()
        request_id, session_id = uuid.uuid4().hex, uuid.uuid4().hex
        code = uuid.uuid4().hex[:6].upper()
        with self.connect() as conn:
            conn.execute(
                "UPDATE auth_requests SET status = 'expired' "
                "WHERE user_id = ? AND status = 'pending' AND expires_at < ?",
                (user_id, db_time(now)),
            )
            conn.execute(
                "INSERT INTO auth_requests (id, user_id, status, created_at, expires_at, "
                "verification_code, device_info, ip_address) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
                (
                    request_id,
                    user_id,
                    db_time(now),
                    db_time(now + timedelta(minutes=AUTH_REQUEST_MINUTES)),
                    code,
                    device_info,
                    ip_address,
                ),
            )
            conn.execute(
                "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, "
                "auth_request_id, is_fully_authenticated) VALUES (?, ?, ?, ?, NULL, ?, 0)",
                (
                    session_id,
                    user_id,
                    db_time(now),
                    db_time(now + timedelta(minutes=SESSION_EXPIRY_MINUTES)),
                    request_id,
                ),
            )
        return session_id, code

    def approve(self, username: str, approver: int | None = None) -> int:
        """`approve_auth_request` for each of the member's pending requests: status approved,
        an approval row, and every linked session fully authenticated. The sessions flipped."""
        user = self.user_by_username(username)
        if user is None:
            raise LookupError(username)
        now = db_time(utcnow())
        flipped = 0
        with self.connect() as conn:
            pending = conn.execute(
                "SELECT id FROM auth_requests WHERE user_id = ? AND status = 'pending'",
                (user["id"],),
            ).fetchall()
            for row in pending:
                conn.execute("UPDATE auth_requests SET status = 'approved' WHERE id = ?", (row[0],))
                if approver is not None:
                    conn.execute(
                        "INSERT INTO auth_approvals (id, auth_request_id, approver_user_id, "
                        "created_at) VALUES (?, ?, ?, ?)",
                        (uuid.uuid4().hex, row[0], approver, now),
                    )
                flipped += conn.execute(
                    "UPDATE sessions SET is_fully_authenticated = 1 WHERE auth_request_id = ?",
                    (row[0],),
                ).rowcount
        return flipped

    def current_session(self, session_id: str | None) -> sqlite3.Row | None:
        """`get_current_session`: an expired row is deleted; a live one is touched."""
        if not session_id:
            return None
        now = utcnow()
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return None
            if parse_db_time(row["expires_at"]) < now:
                conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
                return None
            conn.execute(
                "UPDATE sessions SET last_seen_at = ? WHERE id = ?", (db_time(now), session_id)
            )
            return row

    def revoke_session(self, session_id: str) -> None:
        with self.connect() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def sessions_of(self, username: str) -> list[sqlite3.Row]:
        with self.connect() as conn:
            return conn.execute(
                "SELECT s.* FROM sessions s JOIN users u ON u.id = s.user_id "
                "WHERE u.username = ? ORDER BY s.created_at",
                (username.strip().lower(),),
            ).fetchall()


# ---- the web app ---------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<link rel="icon" href="data:,"><title>{html.escape(title)} · WhiteBalloon</title>'
        f"</head><body>{body}</body></html>",
        status_code=status,
    )


async def _form(request: Request) -> dict[str, str]:
    # No python-multipart needed: every form here is application/x-www-form-urlencoded.
    fields = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


_LOGIN_FORM = (
    '<form method="post" action="/login"><label>Username '
    '<input name="username" autocomplete="username" required></label>'
    '<button type="submit">Sign in</button></form>'
)


def create_app(db: AppDatabase) -> Starlette:
    def signed_in(request: Request) -> tuple[sqlite3.Row, sqlite3.Row] | None:
        session = db.current_session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        user = db.user(session["user_id"])
        return None if user is None else (session, user)

    def nav(user: sqlite3.Row) -> str:
        return (
            f'<nav><span id="account">Signed in as {html.escape(user["username"])}</span> '
            '<a href="/members">Members</a> '
            '<a href="/messages" data-messaging-nav>Inbox</a> '
            '<form method="post" action="/logout"><button type="submit">Sign out</button>'
            "</form></nav>"
        )

    async def home(request: Request) -> Response:
        current = signed_in(request)
        if current is None or not current[0]["is_fully_authenticated"]:
            return _page("Home", '<h1>WhiteBalloon</h1><a href="/login">Sign in</a>')
        return _page("Home", nav(current[1]) + "<h1>WhiteBalloon</h1>")

    async def login_page(request: Request) -> Response:
        return _page("Sign in", "<h1>Sign in</h1>" + _LOGIN_FORM)

    async def login(request: Request) -> Response:
        username = (await _form(request)).get("username", "")
        user = db.user_by_username(username)
        if user is None:
            return _page(
                "Sign in", '<h1>Sign in</h1><p role="alert">Unknown user</p>' + _LOGIN_FORM
            )
        session_id, _code = db.create_auth_request(
            user["id"],
            request.headers.get("user-agent"),
            request.client.host if request.client else None,
        )
        response = RedirectResponse("/login/pending", status_code=303)
        set_session_cookie(response, session_id)
        return response

    async def login_pending(request: Request) -> Response:
        current = signed_in(request)
        if current is None:
            return RedirectResponse("/login", status_code=303)
        session, user = current
        if session["is_fully_authenticated"]:
            return RedirectResponse("/", status_code=303)
        with db.connect() as conn:
            code = conn.execute(
                "SELECT verification_code FROM auth_requests WHERE id = ?",
                (session["auth_request_id"],),
            ).fetchone()[0]
        response = _page(
            "Waiting for approval",
            f"<h1>Waiting for approval</h1><p>Hi {html.escape(user['username'])}; "
            f'your code is <code id="code">{html.escape(code)}</code>.</p>',
        )
        set_session_cookie(response, session["id"])
        return response

    async def logout(request: Request) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            db.revoke_session(session_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", samesite="lax")
        return response

    async def members(request: Request) -> Response:
        current = signed_in(request)
        if current is None:
            return _page("Members", "<p>Sign in first.</p>", status=401)
        session, viewer = current
        if not session["is_fully_authenticated"]:
            return _page("Members", "<p>Full membership required.</p>", status=403)
        cards = []
        for member in db.visible_members(viewer):
            name = html.escape(member["username"])
            button = ""
            if member["id"] != viewer["id"]:
                button = (
                    '<form method="post" action="/messages/direct">'
                    f'<input type="hidden" name="username" value="{name}">'
                    f'<button type="submit" data-messaging-launch data-message-username="{name}">'
                    "Message</button></form>"
                )
            cards.append(f'<li class="member-card" data-username="{name}">{name}{button}</li>')
        return _page("Members", nav(viewer) + f"<h1>Members</h1><ul>{''.join(cards)}</ul>")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/login/pending", login_pending),
            Route("/logout", logout, methods=["POST"]),
            Route("/members", members),
        ]
    )


def set_session_cookie(response: Response, session_id: str) -> None:
    """`apply_session_cookie`: `wb_session_id=<hex>; HttpOnly; Max-Age=1209600; Path=/;
    SameSite=lax` (no Secure unless COOKIE_SECURE, which tests over plain HTTP leave off)."""
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_EXPIRY_MINUTES * 60,
        path="/",
        httponly=True,
        samesite="lax",
    )


class WhiteBalloon:
    """The stand-in app under Hypercorn in a thread, on 127.0.0.1 and an ephemeral port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.db = AppDatabase(data_dir / "app.db")
        self.app = create_app(self.db)
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    @property
    def db_path(self) -> Path:
        return self.db.path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # The data helpers a test needs most, straight from the database.
    def register(self, username: str, **kwargs: Any) -> int:
        return self.db.register(username, **kwargs)

    def approve(self, username: str, approver: int | None = None) -> int:
        return self.db.approve(username, approver)

    def start(self) -> WhiteBalloon:
        self.db.create()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = int(sock.getsockname()[1])
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # Hypercorn takes over the bound socket
        config.accesslog = None
        config.graceful_timeout = 1
        self._thread = threading.Thread(
            target=self._run, args=(config,), name="whiteballoon-stand-in", daemon=True
        )
        self._thread.start()
        if not self._started.wait(10) or self._failure is not None:
            raise RuntimeError(f"the WhiteBalloon stand-in did not start: {self._failure!r}")
        return self

    def _run(self, config: Config) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._started.set()
            await serve(self.app, config, shutdown_trigger=self._stopping.wait)  # type: ignore[arg-type]

        try:
            asyncio.run(main())
        except BaseException as error:  # reported by start() or stop()
            self._failure = error
            self._started.set()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> WhiteBalloon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
