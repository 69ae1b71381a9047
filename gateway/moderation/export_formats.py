"""How an export's records become NDJSON, CSV or one JSON document, piece by piece.

Every format carries the same records in the same order: a manifest, then each conversation
followed by its messages, then an `end` record with the counts. A file without its `end`
record was cut short. Encoders return text for one record at a time, so the whole file never
exists in memory.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal, NamedTuple, Protocol

ExportFormat = Literal["ndjson", "csv", "json"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("ndjson", "csv", "json")
Record = dict[str, Any]

CSV_COLUMNS = (
    "record",
    "conversation_id",
    "message_id",
    "sender_id",
    "recipient_id",
    "created_at",
    "body_length",
    "body_sha256",
    "body",
    "details",
)


class MessageRecord(NamedTuple):
    id: int
    conversation_id: int
    sender_id: int
    recipient_id: int
    created_at: str
    body_length: int
    body_sha256: str
    body: str | None  # None: withheld by the scope


def _dumps(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def _message_json(m: MessageRecord) -> str:
    # The hot path (one call per message): formatted directly, since every field but the
    # body is a number, a hex digest or a timestamp the gateway wrote, none needing escapes.
    body = "null" if m.body is None else _encode_string(m.body)
    return (
        f'{{"type":"message","id":{m.id},"conversation_id":{m.conversation_id},'
        f'"sender_id":{m.sender_id},"recipient_id":{m.recipient_id},'
        f'"created_at":"{m.created_at}","body_length":{m.body_length},'
        f'"body_sha256":"{m.body_sha256}","body":{body}}}'
    )


class Encoder(Protocol):
    media_type: str
    extension: str

    def begin(self, manifest: Record) -> str: ...
    def conversation(self, record: Record, first: bool) -> str: ...
    def messages(self, page: list[MessageRecord], first: bool) -> str: ...
    def conversation_end(self) -> str: ...
    def end(self, trailer: Record) -> str: ...


class NdjsonEncoder:
    """One JSON object per line, each with a `type`: easy to grep, stream and append-check."""

    media_type = "application/x-ndjson"
    extension = "ndjson"

    def begin(self, manifest: Record) -> str:
        return _dumps(manifest) + "\n"

    def conversation(self, record: Record, first: bool) -> str:
        return _dumps(record) + "\n"

    def messages(self, page: list[MessageRecord], first: bool) -> str:
        return "".join([_message_json(m) + "\n" for m in page])

    def conversation_end(self) -> str:
        return ""

    def end(self, trailer: Record) -> str:
        return _dumps(trailer) + "\n"


class JsonEncoder:
    """One document: `{"manifest", "conversations": [{..., "messages": [...]}], "end"}`."""

    media_type = "application/json"
    extension = "json"

    def begin(self, manifest: Record) -> str:
        return '{"manifest":' + _dumps(manifest) + ',"conversations":['

    def conversation(self, record: Record, first: bool) -> str:
        # The record's closing brace is replaced by the opening of its messages list.
        return ("" if first else ",") + _dumps(record)[:-1] + ',"messages":['

    def messages(self, page: list[MessageRecord], first: bool) -> str:
        return ("" if first else ",") + ",".join([_message_json(m) for m in page])

    def conversation_end(self) -> str:
        return "]}"

    def end(self, trailer: Record) -> str:
        return '],"end":' + _dumps(trailer) + "}\n"


class CsvEncoder:
    """RFC 4180 rows under one header; `record` says what a row is, `details` holds JSON for
    the manifest, conversation and end rows. An empty `body` means the scope withheld it
    (stored bodies are never empty)."""

    media_type = "text/csv; charset=utf-8"
    extension = "csv"

    def _row(self, *values: Any) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(values)
        return buffer.getvalue()

    def begin(self, manifest: Record) -> str:
        return self._row(*CSV_COLUMNS) + self._row(
            "manifest", "", "", "", "", manifest["generated_at"], "", "", "", _dumps(manifest)
        )

    def conversation(self, record: Record, first: bool) -> str:
        details = {k: v for k, v in record.items() if k not in ("type", "id", "created_at")}
        return self._row(
            "conversation",
            record["id"],
            "",
            "",
            "",
            record["created_at"],
            "",
            "",
            "",
            _dumps(details),
        )

    def messages(self, page: list[MessageRecord], first: bool) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(
            (
                "message",
                m.conversation_id,
                m.id,
                m.sender_id,
                m.recipient_id,
                m.created_at,
                m.body_length,
                m.body_sha256,
                "" if m.body is None else m.body,
                "",
            )
            for m in page
        )
        return buffer.getvalue()

    def conversation_end(self) -> str:
        return ""

    def end(self, trailer: Record) -> str:
        return self._row("end", "", "", "", "", "", "", "", "", _dumps(trailer))


def encoder_for(name: ExportFormat) -> Encoder:
    encoders: dict[ExportFormat, Encoder] = {
        "ndjson": NdjsonEncoder(),
        "csv": CsvEncoder(),
        "json": JsonEncoder(),
    }
    return encoders[name]
