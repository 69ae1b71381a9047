"""A minimal Server-Sent Events client over one HTTP/1.1 connection.

Written against plain sockets so that thousands of streams stay cheap inside one Locust
process (gevent makes the blocking calls cooperative) and so each frame can be timed the
moment its bytes arrive. It reads a 200 response with chunked transfer encoding (or a
body that ends with the connection) and parses frames line by line as the SSE spec says.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

RECEIVE_BYTES = 65536


class StreamError(Exception):
    """The stream could not be opened, or broke in a way a client would notice."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE frame: an event (with id, type and data) or a comment such as a heartbeat."""

    received_at: float  # time.time() when its last byte arrived
    id: str | None = None
    event: str = "message"
    data: str = ""
    comment: str | None = None

    @property
    def is_comment(self) -> bool:
        return self.comment is not None and not self.data


class FrameParser:
    """Turns SSE lines into frames as the spec reads them: fields gather until a blank line
    dispatches an event; a comment line (a heartbeat) stands on its own, blank line or not."""

    def __init__(self) -> None:
        self._id: str | None = None
        self._event = "message"
        self._data: list[str] = []
        self._has_fields = False

    def line(self, line: str, received_at: float) -> Frame | None:
        line = line.removesuffix("\r")
        if not line:
            return self._dispatch(received_at)
        if line.startswith(":"):
            return Frame(received_at, comment=line[1:].strip())
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name != "retry":
            return None
        self._has_fields = True
        return None

    def _dispatch(self, received_at: float) -> Frame | None:
        if not self._has_fields:
            return None
        frame = Frame(received_at, self._id, self._event, "\n".join(self._data))
        self._id, self._event, self._data, self._has_fields = None, "message", [], False
        return frame


def parse_frames(raw: bytes, received_at: float) -> list[Frame]:
    """Every complete frame in `raw` (for tests and one-off parsing)."""
    parser = FrameParser()
    frames = [parser.line(line, received_at) for line in raw.decode("utf-8").split("\n")]
    return [frame for frame in frames if frame is not None]


class ChunkedDecoder:
    """Turns the bytes of a chunked body into its payload, incrementally."""

    def __init__(self) -> None:
        self._raw = bytearray()
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        self._raw += data
        payload = bytearray()
        while not self.finished:
            line_end = self._raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(bytes(self._raw[:line_end]).split(b";")[0], 16)
            if size == 0:
                self.finished = True
                break
            chunk_end = line_end + 2 + size
            if len(self._raw) < chunk_end + 2:
                break  # the rest of this chunk has not arrived yet
            payload += self._raw[line_end + 2 : chunk_end]
            del self._raw[: chunk_end + 2]
        return bytes(payload)


class SSEConnection:
    """`GET` an event stream and iterate its frames until the server or `close()` ends it."""

    def __init__(
        self,
        base_url: str,
        path: str,
        headers: dict[str, str],
        *,
        connect_timeout: float = 10.0,
        read_timeout: float | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = path
        self.headers = headers
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._sock: socket.socket | None = None
        self._body = bytearray()
        self._decoder: ChunkedDecoder | None = None
        self._received_at = 0.0

    def open(self) -> None:
        """Connect and read the response head; raises StreamError unless it is a 200 stream."""
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        self._sock = sock
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines += ["Accept: text/event-stream", "Cache-Control: no-cache", "", ""]
        sock.sendall("\r\n".join(lines).encode("latin-1"))
        head = bytearray()
        while b"\r\n\r\n" not in head:
            data = sock.recv(RECEIVE_BYTES)
            if not data:
                raise StreamError("connection closed before the response head")
            head += data
        head_bytes, _, rest = bytes(head).partition(b"\r\n\r\n")
        status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        response_headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        if status != 200:
            raise StreamError(f"stream answered {status}")
        if "chunked" in response_headers.get("transfer-encoding", "").lower():
            self._decoder = ChunkedDecoder()
        sock.settimeout(self.read_timeout)
        self._take(rest)

    def frames(self) -> Iterator[Frame]:
        """Frames as they arrive; returns when the server ends the stream."""
        sock = self._sock
        if sock is None:
            raise StreamError("stream is not open")
        parser = FrameParser()
        while True:
            while (end := self._body.find(b"\n")) >= 0:
                line = bytes(self._body[:end]).decode("utf-8")
                del self._body[: end + 1]
                frame = parser.line(line, self._received_at)
                if frame is not None:
                    yield frame
            if self._decoder is not None and self._decoder.finished:
                return
            try:
                data = sock.recv(RECEIVE_BYTES)
            except TimeoutError:
                raise StreamError("stream went silent") from None
            except OSError as error:
                raise StreamError(f"stream broke: {error}") from None
            if not data:
                return
            self._take(data)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _take(self, data: bytes) -> None:
        self._received_at = time.time()
        self._body += self._decoder.feed(data) if self._decoder is not None else data
