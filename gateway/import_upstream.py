"""Import WhiteBalloon's own direct messages into the gateway.

    python -m gateway.import_upstream PATH/TO/messages.db [--skip-thread ID ...]

with the gateway's usual environment: WB_MESSAGING_DB (where to import to) and, if set,
WB_APP_DB (only to name members in what it prints and to label the conversations it
announces to open clients).

What becomes what:

- Each upstream thread (`message_threads`, direct_key "low:high") becomes the conversation of
  the same pair, created by the thread's creator at the thread's time, with origin
  `{"type": "imported", "ref": "thread:<upstream id>"}`. A pair that already has a
  conversation with no messages in it (started through the gateway but never written in)
  gets the history in that conversation, which keeps its own origin.
- Its messages keep sender, body and time (converted to the gateway's format) and are stored
  in time order, ties broken by upstream id, so gateway message ids follow time within the
  conversation (the API pages by id) even where upstream ids do not.
- Each participant's `last_read_at` becomes their read pointer: the newest imported message
  of the thread created at or before it (none: no pointer). Pointers only ever move forward.

Running it again imports nothing twice: `imported_threads` and `imported_messages` (schema
migration 5) remember every upstream id. Messages added upstream to an already imported
thread since are appended if they are no older than everything in that conversation;
read pointers move forward to follow `last_read_at`.

Refusals, all or nothing. Every change of a run is one write transaction, committed only if
every thread can be imported: otherwise nothing is written, each refused thread is named
(with both usernames when WB_APP_DB is set, else ids) with the way forward, and the exit
status is 1. A thread is refused when its pair has messages written through the gateway and
the thread was never imported (its history would land after them, out of order), or when
messages added upstream since the last run are older than the newest message of the
conversation (members wrote in both places). `--skip-thread ID` leaves such a thread out;
its history stays in WhiteBalloon's database. A file that is not WhiteBalloon's messages.db
(missing, not SQLite, without the tables, or with rows the gateway cannot represent) is
reported with exit status 2 before messaging.db is even opened.

Is it safe while the gateway runs? Yes. The upstream file is opened read-only and read in
one snapshot. The import is one transaction through `MessagingStore.write`, which takes the
same process lock the gateway's workers take to write, so their sends simply wait for it
(a large import holds them for as long as it takes to insert); reads carry on against the
previous state (WAL) and see the import whole or not at all. The check for messages written
through the gateway happens inside that transaction, so a message sent a moment before is
seen and one sent after lands after the history. Open clients learn of the import through
the event log, like a send from another worker: each new conversation gets a
`conversation` event for both members, and history appended to a conversation they already
have gets `message` events (and `read` events where a read pointer moved). The workers' relays
read the log every WB_RELAY_POLL_SECONDS. Before go-live, with the gateway stopped, is
simplest: then there is nothing to refuse and nobody to notify.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from gateway.config import Database, Settings, database_argument
from gateway.exceptions import ConfigError, Unavailable
from gateway.live.events import PendingEvent
from gateway.messaging.actions import ReadState
from gateway.messaging.models import ConversationView, Member, Message, Origin
from gateway.store import Directory, MessagingStore
from gateway.store import imports as imports_store
from gateway.store import messaging as messaging_store
from gateway.store import moderation as moderation_store
from gateway.store.rows import TxConnection, parse_sqlalchemy_time
from gateway.timestamps import format_utc, utc_now

EXIT_REFUSED = 1
EXIT_UNUSABLE = 2

# Events per INSERT: 4 parameters each, well under SQLite's parameter limit.
_EVENT_CHUNK = 1000


class UnusableUpstream(Exception):
    """Not WhiteBalloon's messages.db, or rows the gateway cannot represent."""


class Refused(Exception):
    """Threads that cannot be merged in order; nothing of the run was written."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} thread(s) refused")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    id: int
    sender_id: int
    body: str
    at: datetime  # naive UTC, full upstream precision


@dataclass(frozen=True, slots=True)
class Thread:
    id: int
    pair: tuple[int, int]
    created_by: int
    created_at: datetime
    messages: list[ThreadMessage]  # in time order, ties by upstream id
    last_read: dict[int, datetime]  # member -> last_read_at

    @property
    def peer_of_creator(self) -> int:
        low, high = self.pair
        return high if self.created_by == low else low


@dataclass(slots=True)
class Summary:
    threads_imported: int = 0
    threads_appended: int = 0  # imported before, with new messages this time
    threads_already: int = 0  # imported before, nothing new
    messages_imported: int = 0
    messages_already: int = 0
    read_positions: int = 0  # read pointers set or moved forward
    left_out: list[int] = field(default_factory=list)

    def report(self, source: Path, target: Database) -> str:
        lines = [
            f"Imported WhiteBalloon messages from {source} into {target}:",
            f"  threads:        {self.threads_imported} imported, "
            f"{self.threads_appended} with new messages, "
            f"{self.threads_already} already imported (skipped)",
            f"  messages:       {self.messages_imported} imported, "
            f"{self.messages_already} already imported (skipped)",
            f"  read positions: {self.read_positions} set or moved forward",
        ]
        if self.left_out:
            lines.append(
                "  left out (--skip-thread): " + ", ".join(str(t) for t in sorted(self.left_out))
            )
        return "\n".join(lines)


# Reading and checking the upstream file.


def _time(value: object, where: str) -> datetime:
    parsed = parse_sqlalchemy_time(value)
    if parsed is None:
        raise UnusableUpstream(f"{where} has an unreadable time {value!r}")
    return parsed


def _member_id(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise UnusableUpstream(f"{where} has an unreadable member id {value!r}")


def _pair(thread: imports_store.UpstreamThread, participants: list[int]) -> tuple[int, int]:
    key = thread.direct_key
    if isinstance(key, str):
        low, sep, high = key.partition(":")
        try:
            a, b = int(low), int(high)
        except ValueError:
            a = b = 0
        if sep and a != b:
            return (min(a, b), max(a, b))
    elif key is None and len(set(participants)) == 2:
        a, b = sorted(set(participants))
        return (a, b)
    raise UnusableUpstream(
        f"thread {thread.id} is not a conversation between two members (direct_key {key!r}, "
        f"participants {sorted(set(participants))})"
    )


def threads_of(upstream: imports_store.Upstream) -> list[Thread]:
    """The upstream rows as threads the gateway can store; UnusableUpstream otherwise."""
    participants: dict[int, list[tuple[int, object]]] = {}
    for p in upstream.participants:
        if isinstance(p.thread_id, int):
            where = f"participant {p.user_id!r} of thread {p.thread_id}"
            participants.setdefault(p.thread_id, []).append(
                (_member_id(p.user_id, where), p.last_read_at)
            )
    messages: dict[int, list[ThreadMessage]] = {}
    thread_ids = {t.id for t in upstream.threads}
    for m in upstream.messages:
        where = f"message {m.id}"
        if not isinstance(m.thread_id, int) or m.thread_id not in thread_ids:
            raise UnusableUpstream(f"{where} belongs to thread {m.thread_id!r}, which is missing")
        if not isinstance(m.body, str):
            raise UnusableUpstream(f"{where} has no text body")
        messages.setdefault(m.thread_id, []).append(
            ThreadMessage(m.id, _member_id(m.sender_id, where), m.body, _time(m.created_at, where))
        )
    threads = []
    for t in upstream.threads:
        members = participants.get(t.id, [])
        pair = _pair(t, [user for user, _ in members])
        created_by = _member_id(t.created_by, f"thread {t.id}")
        if created_by not in pair:
            raise UnusableUpstream(
                f"thread {t.id} was created by member {created_by}, who is not one of {pair}"
            )
        said = sorted(messages.get(t.id, []), key=lambda m: (m.at, m.id))
        for spoken in said:
            if spoken.sender_id not in pair:
                raise UnusableUpstream(
                    f"message {spoken.id} of thread {t.id} was sent by member "
                    f"{spoken.sender_id}, "
                    f"who is not one of {pair}"
                )
        last_read = {
            user: _time(read_at, f"participant {user} of thread {t.id}")
            for user, read_at in members
            if user in pair and read_at is not None
        }
        threads.append(
            Thread(t.id, pair, created_by, _time(t.created_at, f"thread {t.id}"), said, last_read)
        )
    return threads


def _require_file(path: Path, hint: str) -> None:
    if not path.exists():
        raise UnusableUpstream(f"{path}: no such file. {hint}")
    if not path.is_file():
        raise UnusableUpstream(f"{path} is not a file. {hint}")


async def read_threads(path: Path) -> list[Thread]:
    """Every thread of WhiteBalloon's messages.db at `path`, opened read-only."""
    hint = (
        "Give the path of WhiteBalloon's messages.db (its MESSAGING_DATABASE_URL, by default "
        "data/messages.db in WhiteBalloon's folder)."
    )
    _require_file(path, hint)
    try:
        conn = await imports_store.open_upstream(path)
    except sqlite3.Error as error:
        raise UnusableUpstream(f"{path} could not be opened: {error}. {hint}") from None
    try:
        try:
            missing = await imports_store.missing_upstream_columns(conn)
        except sqlite3.DatabaseError as error:
            raise UnusableUpstream(f"{path} is not an SQLite database ({error}). {hint}") from None
        if missing:
            what = "; ".join(
                f"table {table}"
                if len(columns) == len(imports_store.UPSTREAM_COLUMNS[table])
                else f"{table}.{', '.join(columns)}"
                for table, columns in missing.items()
            )
            raise UnusableUpstream(
                f"{path} is not WhiteBalloon's messages.db: it lacks {what}. {hint}"
            )
        upstream = await imports_store.read_upstream(conn)
    finally:
        await conn.close()
    return threads_of(upstream)


# Names, for what is printed and for the conversations announced to open clients.


async def member_names(settings: Settings, ids: set[int]) -> dict[int, Member] | None:
    """The members of the main app's directory among `ids`; None without WB_APP_DB."""
    if settings.app_db is None:
        return None
    directory = await Directory.open(settings.app_db, 1)
    try:
        return await directory.members_by_id(ids)
    finally:
        await directory.close()


def _member(names: dict[int, Member] | None, user_id: int) -> Member:
    return (names or {}).get(user_id) or Member.former(user_id)


def _who(names: dict[int, Member] | None, pair: tuple[int, int]) -> str:
    if names is None:
        return f"members #{pair[0]} and #{pair[1]}"
    return " and ".join(
        names[user].username if user in names else f"member #{user} (not in WB_APP_DB)"
        for user in pair
    )


# The import: one write transaction.


def _problem(
    thread: Thread,
    new: list[ThreadMessage],
    imported_before: bool,
    history: imports_store.History | None,
    names: dict[int, Member] | None,
) -> str | None:
    if history is None or history.messages == 0:
        return None
    who = _who(names, thread.pair)
    skip = (
        f"To import everything else now, run again with --skip-thread {thread.id}: that "
        "thread's history stays in WhiteBalloon's messages.db."
    )
    if not imported_before and history.written_here:
        return (
            f"thread {thread.id} between {who}: they have already written "
            f"{history.written_here} message(s) to each other through the gateway (the newest "
            f"at {history.newest_at}), so this thread's {len(thread.messages)} older "
            "message(s) would land after them, out of order. The importer is meant to run "
            "before go-live (into a messaging.db where nobody has written yet); now that "
            f"these two have talked through the gateway, their old thread can only be left "
            f"out. {skip}"
        )
    if new and history.newest_at is not None and format_utc(new[0].at) < history.newest_at:
        return (
            f"thread {thread.id} between {who}: {len(new)} message(s) written in WhiteBalloon "
            f"since the last import begin at {format_utc(new[0].at)}, before the newest "
            f"message of their gateway conversation ({history.newest_at}), so they can't be "
            f"appended in order. They wrote in both places: stop WhiteBalloon's messaging "
            f"(ENABLE_DIRECT_MESSAGING=false) once the gateway is live. {skip}"
        )
    return None


def _events(
    conn: TxConnection,
    conversation_id: int,
    created: bool,
    added: list[Message],
    moved: list[int],
    names: dict[int, Member] | None,
) -> list[PendingEvent]:
    """What open clients hear: a new conversation, or history appended to one they have."""
    conversation = messaging_store.get_conversation_tx(conn, conversation_id)
    assert conversation is not None
    pending = []
    if created:
        for viewer in conversation.member_ids:
            unread, last_read, last_id = messaging_store.conversation_state_tx(
                conn, conversation_id, viewer
            )
            last = messaging_store.get_message_tx(conn, last_id) if last_id else None
            peer = _member(names, conversation.peer_of(viewer))
            view = ConversationView(conversation, peer, last, unread, last_read)
            pending.append(PendingEvent(viewer, "conversation", view.to_json()))
        return pending
    for message in added:
        data = message.to_json()
        pending.extend(PendingEvent(user, "message", data) for user in conversation.member_ids)
    for reader in moved:
        unread, last_read, _ = messaging_store.conversation_state_tx(conn, conversation_id, reader)
        state = ReadState(conversation_id, last_read, unread)
        pending.append(PendingEvent(reader, "read", state.to_json()))
    return pending


def _import(
    conn: TxConnection,
    threads: list[Thread],
    names: dict[int, Member] | None,
    skip: frozenset[int],
    now: str,
) -> Summary:
    summary = Summary()
    problems: list[str] = []
    pending: list[PendingEvent] = []
    done = imports_store.imported_threads(conn)
    known = imports_store.imported_messages(conn)
    for thread in threads:
        if thread.id in skip:
            summary.left_out.append(thread.id)
            continue
        new = [m for m in thread.messages if m.id not in known]
        conversation_id = done.get(thread.id)
        if conversation_id is not None:
            conversation = messaging_store.get_conversation_tx(conn, conversation_id)
        else:
            conversation = messaging_store.conversation_between_tx(conn, *thread.pair)
        history = (
            imports_store.conversation_history(conn, conversation.id) if conversation else None
        )
        problem = _problem(thread, new, conversation_id is not None, history, names)
        if problem is not None:
            problems.append(problem)
        if problems:
            continue  # nothing will be committed; only look for further refusals

        created = False
        if conversation is None:
            origin = Origin("imported", f"thread:{thread.id}")
            conversation, created = messaging_store.insert_conversation(
                conn,
                thread.created_by,
                thread.peer_of_creator,
                origin,
                format_utc(thread.created_at),
            )
            moderation_store.append_compliance(
                conn,
                "conversation_created",
                now,
                actor_id=thread.created_by,
                subject_id=thread.peer_of_creator,
                conversation_id=conversation.id,
                details={"origin": origin.to_json()},
            )
        if conversation_id is None:
            imports_store.record_imported_thread(conn, thread.id, conversation.id, now)
            summary.threads_imported += 1
        elif new:
            summary.threads_appended += 1
        else:
            summary.threads_already += 1

        rows = [
            imports_store.ImportedMessage(m.id, m.sender_id, m.body, format_utc(m.at)) for m in new
        ]
        ids = imports_store.insert_imported_messages(conn, conversation.id, thread.id, rows, now)
        known.update(zip((m.id for m in new), ids, strict=True))
        summary.messages_imported += len(new)
        summary.messages_already += len(thread.messages) - len(new)

        moved = []
        for reader, read_at in sorted(thread.last_read.items()):
            read = [known[m.id] for m in thread.messages if m.at <= read_at and m.id in known]
            if read and messaging_store.advance_read_pointer(
                conn, conversation.id, reader, max(read)
            ):
                moved.append(reader)
        summary.read_positions += len(moved)

        added = [
            Message(message_id, conversation.id, row.sender_id, row.body, row.created_at, None)
            for message_id, row in zip(ids, rows, strict=True)
        ]
        pending += _events(conn, conversation.id, created, added, moved, names)
    if problems:
        raise Refused(problems)
    for start in range(0, len(pending), _EVENT_CHUNK):
        messaging_store.insert_events(conn, pending[start : start + _EVENT_CHUNK], now)
    return summary


async def import_upstream(
    settings: Settings, source: Path, *, skip: frozenset[int] = frozenset()
) -> Summary:
    """Import `source` into WB_MESSAGING_DB; raises UnusableUpstream or Refused, having
    written nothing, or returns what was imported."""
    threads = await read_threads(source)
    ids = {user for thread in threads for user in thread.pair}
    names = await member_names(settings, ids)
    store = await MessagingStore.open(
        settings.messaging_db,
        synchronous=settings.sqlite_synchronous,
        read_connections=1,
        write_batch_size=1,
    )
    try:

        def tx(conn: TxConnection) -> Summary:
            return _import(conn, threads, names, skip, utc_now())

        return await store.write(tx)
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.import_upstream",
        description="Import WhiteBalloon's direct messages (its messages.db) into the "
        "gateway's messaging.db (WB_MESSAGING_DB). Safe to run again: nothing is imported "
        "twice. All or nothing: a thread that can't be merged in order refuses the run.",
    )
    parser.add_argument(
        "source",
        type=database_argument,
        metavar="PATH/TO/messages.db",
        help="a path, or WhiteBalloon's MESSAGING_DATABASE_URL (sqlite:///data/messages.db)",
    )
    parser.add_argument(
        "--skip-thread",
        type=int,
        action="append",
        default=[],
        metavar="ID",
        help="leave out this upstream thread (repeatable), e.g. one the import refused",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        summary = asyncio.run(
            import_upstream(settings, args.source, skip=frozenset(args.skip_thread))
        )
    except UnusableUpstream as error:
        print(f"error: {error}\nNothing was imported.", file=sys.stderr)
        return EXIT_UNUSABLE
    except Refused as refused:
        print(
            f"Nothing was imported: {len(refused.problems)} thread(s) can't be merged in order.",
            *(f"- {problem}" for problem in refused.problems),
            sep="\n",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    except (Unavailable, sqlite3.Error, psycopg.Error, OSError) as error:
        # messaging.db could not be opened or written (or WB_APP_DB read): the transaction
        # was never committed.
        print(f"error: {type(error).__name__}: {error}\nNothing was imported.", file=sys.stderr)
        return EXIT_REFUSED
    print(summary.report(args.source, settings.messaging_db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
