"""Wakes the other workers' relays the moment this worker commits events.

Without it, a message written through one worker reaches streams held by another only at
that worker's next poll of the event log (every `WB_RELAY_POLL_SECONDS`). Each worker
listens on a Linux abstract datagram socket named after the database and its pid, and
leaves its pid in a folder beside the database; after a commit it sends one byte to every
other worker listed there. The poll stays as the fallback: a lost datagram, another OS.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

PEERS_REFRESH_SECONDS = 1.0


class Doorbell:
    def __init__(self, database: Path, on_ring: Callable[[], None]) -> None:
        self._folder = database.with_name(database.name + ".workers")
        self._key = hashlib.sha256(str(database.resolve()).encode()).hexdigest()[:16]
        self._on_ring = on_ring
        self._socket: socket.socket | None = None
        self._peers: list[int] = []
        self._peers_read_at = float("-inf")
        self._ringing = False

    def open(self) -> None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(self._address(os.getpid()))
        except OSError as error:  # not Linux, or no abstract sockets: polling alone
            log.info("workers will find each other's events by polling only: %s", error)
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            (self._folder / str(os.getpid())).touch()
        except OSError as error:
            sock.close()
            log.warning("workers will find each other's events by polling only: %s", error)
            return
        self._socket = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)

    def ring(self) -> None:
        """Tell every other worker that new events are in the log."""
        if self._socket is None or self._ringing:
            return
        # Once per turn of the event loop: a committed batch publishes many sends at once.
        self._ringing = True
        asyncio.get_running_loop().call_soon(self._ring_now)

    def _ring_now(self) -> None:
        self._ringing = False
        if self._socket is None:
            return
        for pid in self._current_peers():
            try:
                self._socket.sendto(b"!", self._address(pid))
            except (ConnectionRefusedError, FileNotFoundError):
                self._forget(pid)  # that worker is gone
            except OSError:
                pass  # its buffer is full: it has been rung already

    def close(self) -> None:
        if self._socket is None:
            return
        asyncio.get_running_loop().remove_reader(self._socket.fileno())
        self._socket.close()
        self._socket = None
        self._forget(os.getpid())

    def _address(self, pid: int) -> str:
        return f"\0whiteballoon-{self._key}-{pid}"

    def _current_peers(self) -> list[int]:
        now = time.monotonic()
        if now - self._peers_read_at > PEERS_REFRESH_SECONDS:
            me = os.getpid()
            with contextlib.suppress(OSError):
                self._peers = [
                    int(name)
                    for name in os.listdir(self._folder)
                    if name.isdigit() and int(name) != me
                ]
            self._peers_read_at = now
        return self._peers

    def _forget(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            (self._folder / str(pid)).unlink()
        self._peers = [peer for peer in self._peers if peer != pid]

    def _on_readable(self) -> None:
        assert self._socket is not None
        while True:  # one wake-up for however many rings arrived
            try:
                self._socket.recv(64)
            except (BlockingIOError, InterruptedError):
                break
        self._on_ring()
