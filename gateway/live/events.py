"""Events: what a member's clients hear about, and their two wire formats.

Every event is a row of messaging.db's event log before anyone hears of it; its id orders all
of one member's events and is both the SSE `id:` and the polling cursor. The stream and the
polling endpoint carry the same `data` bytes, as stored, so a client may switch between them
at any cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

EventType = Literal["hello", "message", "conversation", "read", "reset"]
# Why the server ended a stream, told in its last frame: `event: closed`, `data: {"reason"}`.
# signed_out: the session ended (don't reconnect); evicted: the member opened more streams
# than WB_STREAMS_PER_MEMBER (poll instead); lagging: the client stopped reading; lifetime:
# streams are recycled; shutdown: the worker is stopping (reconnect elsewhere).
CloseReason = Literal["signed_out", "evicted", "lagging", "lifetime", "shutdown"]


def closed_frame(reason: CloseReason) -> bytes:
    """The final frame of a stream the server ends. No `id:`: it moves no cursor."""
    return f'event: closed\ndata: {{"reason":"{reason}"}}\n\n'.encode()


@dataclass(slots=True)
class Event:
    """One entry of a member's event log; `id` orders all of that member's events."""

    id: int
    user_id: int
    type: EventType
    data_json: str
    _frame: bytes | None = field(default=None, repr=False, compare=False)

    def sse_frame(self) -> bytes:
        """The event as one SSE frame, encoded once and shared by every stream of the member."""
        if self._frame is None:
            self._frame = f"id: {self.id}\nevent: {self.type}\ndata: {self.data_json}\n\n".encode()
        return self._frame

    def poll_json(self) -> str:
        """The event as one item of a polling response, its data spliced in as stored."""
        return f'{{"id":"{self.id}","type":"{self.type}","data":{self.data_json}}}'


def poll_response_json(events: list[Event], cursor: int) -> str:
    """The polling endpoint's body: `{"events": [...], "cursor": "..."}`."""
    return f'{{"events":[{",".join(e.poll_json() for e in events)}],"cursor":"{cursor}"}}'


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event decided by an action, written in the same transaction as its cause."""

    user_id: int
    type: EventType
    data: dict[str, Any]
