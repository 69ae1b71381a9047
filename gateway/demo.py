"""Demo mode: what the gateway runs on when no main-app database is configured.

A seeded directory in the main app's schema, beside messaging.db, and a random signing
secret of its own that every worker shares. `/demo/login` (views/demo.py) signs anyone in as
these members, which is why demo mode refuses a real secret (see `config`).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from gateway.store.stand_in import DirectoryEntry, create_directory

log = logging.getLogger(__name__)

# A few members who show every visibility case.
DEMO_MEMBERS = (
    DirectoryEntry(1, "alice", sync_scope="public"),
    DirectoryEntry(2, "bob", sync_scope="public"),
    DirectoryEntry(3, "carol", sync_scope="public", invited_by=1),
    DirectoryEntry(4, "dave", invited_by=1),  # private: only alice, his inviter, sees him
    DirectoryEntry(5, "erin", is_admin=True, sync_scope="public"),  # an admin sees everyone
    DirectoryEntry(6, "frank", invited_by=5),
)


def directory_path(data_dir: Path) -> Path:
    return data_dir / "demo-app.db"


def secret_path(data_dir: Path) -> Path:
    return data_dir / "demo-session-secret"


async def open_demo_directory(data_dir: Path) -> Path:
    """Create (or top up) the demo directory and say loudly that this is a demo."""
    path = directory_path(data_dir)
    await create_directory(path, DEMO_MEMBERS)
    log.warning(
        "DEMO MODE: WB_APP_DB is not set, so members come from the demo directory %s "
        "and anyone can sign in as them at /demo/login. Never run this in production.",
        path,
    )
    return path


def demo_secret(data_dir: Path) -> str:
    """A random signing secret kept beside the demo data, shared by all workers."""
    path = secret_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f"{path.name}.{os.getpid()}")
    candidate.write_text(secrets.token_urlsafe(32))
    os.chmod(candidate, 0o600)
    try:
        os.link(candidate, path)  # atomic: the first worker's secret wins
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return path.read_text().strip()
