"""How a Hypercorn worker stops: drain, never drop what it acknowledged.

Hypercorn's master stops its workers through a shared event and gives them
`graceful_timeout` to finish in-flight requests. But a worker also receives SIGTERM itself
(systemd signals the whole control group; the master terminates the remaining workers as
soon as one has exited), and by default SIGTERM ends a process at once, cutting off sends
that were already committed. So each worker handles SIGTERM instead:

- open streams end at once with `closed: shutdown`, so clients reconnect (to another worker,
  or to the restarted server) and resume from their cursor;
- requests in flight finish, and their answers are sent, within `graceful_timeout`.

The worker does not pass SIGTERM on to the master: whenever a worker gets one, the master
already has (systemd signals the whole group; otherwise it is the master itself terminating
its workers), and Hypercorn's master handles SIGTERM by setting its shared event under a
lock that is not reentrant, so a second SIGTERM arriving inside that handler (one from each
worker) deadlocked the master for good. A worker signalled on its own drains and exits, and
the master starts another in its place.

A worker whose master dies abruptly (kill -9) dies with it rather than keep the port, and
one that has not stopped `STOP_DEADLINE_SECONDS` after SIGTERM (something hung), or whose
event loop has not turned for as long, writes every thread's stack to its log and ends
itself and its master, so the supervisor restarts the server instead of leaving it half
alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Well past hypercorn.toml's graceful_timeout (5 s) and the shutdown hooks after it.
STOP_DEADLINE_SECONDS = 15.0


def handle_termination(end_streams: Callable[[], None]) -> None:
    """Install the worker's SIGTERM handler (Hypercorn workers only)."""
    master = os.getppid()
    loop = asyncio.get_running_loop()

    def signal_master(signum: signal.Signals) -> None:
        # Only while it is still our parent: once it has exited, its process id may already
        # belong to another process (ids wrap around, at 32768 on small machines).
        if master != 1 and os.getppid() == master:
            with contextlib.suppress(ProcessLookupError):
                os.kill(master, signum)

    def terminate() -> None:
        log.info("SIGTERM: ending open streams and finishing requests in flight")
        end_streams()

    def give_up() -> None:
        # Still here: something hung. Seen in practice: a sibling killed outright (kill -9)
        # while it held the lock of Hypercorn's shared shutdown event leaves that lock taken
        # forever, so this worker's loop and the master (signalling the event) both block.
        # Leave the stacks in the log, end the master too (its supervisor restarts the
        # server; systemd's KillMode=control-group ends what remains), and exit.
        faulthandler.dump_traceback(all_threads=True)
        signal_master(signal.SIGKILL)
        os._exit(1)

    def on_sigterm(signum: int, frame: object) -> None:
        # A plain handler, not the loop's, and a timer thread: both work while the loop is
        # blocked, so the stop deadline always holds. A flag, not `is_alive()`: a second
        # SIGTERM handled while `start()` waits for the thread saw it not alive yet and
        # started the same thread twice.
        if not deadline_started:
            deadline_started.append(True)
            deadline.start()
        loop.call_soon_threadsafe(terminate)

    deadline = threading.Timer(STOP_DEADLINE_SECONDS, give_up)
    deadline.daemon = True
    deadline_started: list[bool] = []

    signal.signal(signal.SIGTERM, on_sigterm)
    _die_with_master()
    # The same lock, taken by a sibling killed outright before any SIGTERM, blocks this
    # worker's loop too (Hypercorn checks the shutdown event from it): no signal ever comes,
    # and the server stops serving while it looks alive. A loop that has not turned for the
    # deadline is stuck the same way: give up likewise, so the supervisor restarts it.
    watch_for_stalls(loop, STOP_DEADLINE_SECONDS, give_up)


def watch_for_stalls(
    loop: asyncio.AbstractEventLoop, seconds: float, on_stall: Callable[[], None]
) -> Callable[[], None]:
    """Call `on_stall` (on a thread of its own) once the loop has not run a callback for
    `seconds`; every blocking call of the gateway runs on other threads, so only a stuck
    loop does that. Returns a function that stops watching."""
    beat = [time.monotonic()]
    stopped = threading.Event()
    interval = min(1.0, seconds / 4)

    def heartbeat() -> None:
        beat[0] = time.monotonic()
        if not stopped.is_set():
            loop.call_later(interval, heartbeat)

    def watch() -> None:
        while not stopped.wait(interval) and not loop.is_closed():
            # A loop that is not running (the worker is ending) is not stuck.
            if loop.is_running() and time.monotonic() - beat[0] > seconds:
                log.error("the event loop has not run for %.0f s: giving up", seconds)
                on_stall()
                return

    loop.call_soon(heartbeat)
    threading.Thread(target=watch, name="loop-watchdog", daemon=True).start()
    return stopped.set


def _die_with_master() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("could not tie this worker's life to its master's")
