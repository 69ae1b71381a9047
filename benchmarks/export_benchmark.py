"""Time the moderator export end to end: a member with 100,000 messages in 500 conversations.

    .venv/bin/python benchmarks/export_benchmark.py [--messages 100000] [--conversations 500]

Seeds a fresh messaging.db in a temporary directory (bulk insert through the store), starts
a real gateway with the shipped hypercorn.toml (one worker) on 127.0.0.1, downloads each
format through `GET /api/moderation/export` as an admin, checks the file's `end` record, and
prints the median and best seconds of `--repeat` downloads, the size, and the worker's
peak RSS (VmHWM) after each format. The RSS right after start-up is printed too: the export
should add little on top of it, and the same whatever the history size (compare with
--messages 10000 --conversations 50).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.store import MessagingStore
from gateway.store import moderation as moderation_store
from gateway.store.stand_in import DirectoryEntry, create_directory
from gateway.timestamps import utc_now
from tests.support.localserver import LocalGateway

MEMBER, ADMIN = 1, 100_000
RUNS = (("ndjson", "full"), ("csv", "full"), ("json", "full"), ("ndjson", "metadata"))


def seed_history(
    conn: sqlite3.Connection,
    member_id: int,
    peer_ids: list[int],
    per_conversation: int,
    start: str,
) -> None:
    """Bulk-insert conversations and messages for benchmarks, bypassing events and checks."""
    for peer in peer_ids:
        low, high = min(member_id, peer), max(member_id, peer)
        cursor = conn.execute(
            "INSERT INTO conversations (member_low, member_high, created_by, origin_type, "
            "origin_ref, created_at, updated_at) VALUES (?, ?, ?, ?, NULL, ?, ?)",
            (low, high, member_id, "profile", start, start),
        )
        conversation_id = cursor.lastrowid
        conn.executemany(
            "INSERT INTO messages (conversation_id, sender_id, body, client_id, created_at) "
            "VALUES (?, ?, ?, NULL, ?)",
            [
                (
                    conversation_id,
                    member_id if i % 2 else peer,
                    f"message {i} between {member_id} and {peer}: " + "lorem ipsum " * (i % 20),
                    start,
                )
                for i in range(per_conversation)
            ],
        )


async def seed(data_dir: Path, app_db: Path, messages: int, conversations: int) -> None:
    peers = list(range(2, conversations + 2))
    await create_directory(
        app_db,
        [
            DirectoryEntry(MEMBER, "subject", sync_scope="public"),
            DirectoryEntry(ADMIN, "admin", is_admin=True, sync_scope="public"),
            *(DirectoryEntry(p, f"peer{p}", sync_scope="public") for p in peers),
        ],
    )
    store = await MessagingStore.open(
        data_dir / "messaging.db", synchronous="NORMAL", read_connections=1, write_batch_size=1
    )
    now = utc_now()

    def tx(conn: sqlite3.Connection) -> None:
        seed_history(conn, MEMBER, peers, messages // conversations, now)
        # A few reports, so the `reported` scope has something to show.
        for conversation_id in (1, 2, 3):
            moderation_store.insert_report(
                conn,
                conversation_id=conversation_id,
                message_id=None,
                reporter_id=MEMBER,
                reported_id=peers[conversation_id - 1],
                category="spam",
                note="benchmark",
                now=now,
            )

    await store.write(tx)
    await store.close()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def memory_kib(pids: list[int], field: str) -> int:
    """The largest `field` (VmHWM: peak RSS, VmRSS: current) among the server's processes."""
    best = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    best = max(best, int(line.split()[1]))
        except OSError:
            continue
    return best


def end_record(tail: bytes, fmt: str) -> dict[str, int]:
    """The `end` record, read from the last bytes of the file (it is always last)."""
    text = tail.decode(errors="replace").rstrip("\r\n")
    if fmt == "json":
        value: dict[str, int] = json.loads(text.rsplit('"end":', 1)[1][:-1])
        return value
    last_line = text.rsplit("\n", 1)[1]
    if fmt == "ndjson":
        value = json.loads(last_line)
        return value
    [row] = csv.reader([last_line])
    value = json.loads(row[-1])
    return value


def download(url: str, cookie: str) -> tuple[int, bytes]:
    """Stream the export like a browser would save it: size and the last bytes only."""
    request = urllib.request.Request(url, headers={"Cookie": f"wb_session={cookie}"})
    size, tail = 0, b""
    with urllib.request.urlopen(request, timeout=120) as response:
        while chunk := response.read(1 << 20):
            size += len(chunk)
            tail = (tail + chunk)[-65536:]
    return size, tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="downloads per format")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-export-bench-") as tmp:
        root = Path(tmp)
        data_dir, app_db = root / "gw", root / "app.db"
        data_dir.mkdir()
        started = time.perf_counter()
        asyncio.run(seed(data_dir, app_db, args.messages, args.conversations))
        print(
            f"seeded {args.messages} messages in {args.conversations} conversations "
            f"in {time.perf_counter() - started:.1f}s"
        )
        with LocalGateway(data_dir, workers=1, env={"WB_APP_DB": str(app_db)}) as gateway:
            assert gateway._process is not None
            pids = descendants(gateway._process.pid)
            print(f"server RSS after start-up: {memory_kib(pids, 'VmRSS') / 1024:.1f} MiB")
            cookie = gateway.cookie_for(ADMIN)
            for fmt, scope in RUNS:
                query = urllib.parse.urlencode(
                    {"member_id": MEMBER, "format": fmt, "scope": scope, "reason": "benchmark"}
                )
                times = []
                for _ in range(args.repeat):
                    begin = time.perf_counter()
                    size, tail = download(gateway.url(f"/api/moderation/export?{query}"), cookie)
                    times.append(time.perf_counter() - begin)
                    exported = end_record(tail, fmt)["messages"]
                    assert exported == args.messages, (fmt, exported)
                peak = memory_kib(descendants(gateway._process.pid), "VmHWM") / 1024
                print(
                    f"{fmt:>6} {scope:<8} {exported} messages  "
                    f"median {statistics.median(times):5.2f}s  best {min(times):5.2f}s  "
                    f"{size / 2**20:5.1f} MiB  server peak RSS {peak:.1f} MiB"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
