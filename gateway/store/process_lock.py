"""An exclusive lock shared by the processes (Hypercorn workers) writing one database.

SQLite already serialises writers, but a writer that finds the database locked sleeps and
retries (1, 2, 5, ... up to 100 ms a try), so two busy workers lose most of their time to
sleeping. Taking a kernel lock on a file beside the database first queues them instead:
the waiter wakes the moment the holder releases it. It is also held while a worker opens
and migrates the database (`connections.connect_writer`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class ProcessLock:
    def __init__(self, path: Path) -> None:
        # Each process opens its own descriptor: flock excludes other open file descriptions.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> None:
        """Block until this process holds the lock: called on the writer's own thread, so
        the event loop keeps serving while another worker writes."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def close(self) -> None:
        os.close(self._fd)  # also releases the lock, should a waiter still hold it
