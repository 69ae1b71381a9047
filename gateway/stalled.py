"""Connections whose reader stopped reading are dropped, so they cannot pin memory.

Hypercorn has no write timeout: a response to a client that stops reading (a stream most of
all) waits forever for the socket to drain, holding the request's task, its subscription and
the kernel's send buffer. The kernel can bound this itself: with `TCP_USER_TIMEOUT`, a
connection whose sent data stays unacknowledged (a full receive window included) for that
long is aborted, the write fails, and the request ends. Accepted connections inherit it from
the listening socket, so each worker sets it on the listening sockets it was handed; a
dropped stream's client resumes from its cursor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

log = logging.getLogger(__name__)


def drop_stalled_connections(timeout_seconds: float) -> int:
    """Set TCP_USER_TIMEOUT on this process's server sockets; returns how many.

    Called at start-up, when Hypercorn has bound its sockets but may not listen on them yet.
    """
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is None:  # not Linux
        log.info("stalled clients are not dropped on this platform (no TCP_USER_TIMEOUT)")
        return 0
    done = 0
    for fd in _socket_fds():
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=os.dup(fd))
            try:
                if _is_server_socket(sock):
                    sock.setsockopt(socket.IPPROTO_TCP, option, int(timeout_seconds * 1000))
                    done += 1
            finally:
                sock.close()  # the duplicate only; the server's socket stays open
    return done


def _is_server_socket(sock: socket.socket) -> bool:
    """A TCP socket bound to an address and connected to nobody: one that accepts."""
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.getpeername()
    except OSError:
        return bool(sock.getsockname()[1] != 0)
    return False


def _socket_fds() -> list[int]:
    fds = []
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError, ValueError):
                if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                    fds.append(int(name))
    return fds
