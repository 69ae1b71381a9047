"""The synthetic dataset: receiver and sender members, their conversations, their cookies.

Every member is public in the directory, so each receiver and its sender are mutually
visible and may talk. Receiver `i` talks to sender `i % senders`; each conversation is
started through the gateway's own API, as a member would start it. Each member signs in as
WhiteBalloon records a sign-in: an approved row of app.db's `sessions`, whose id is the
member's `wb_session_id` cookie (the load test's app.db is its own, so it may write there).

Two steps, because the directory must exist before the gateway starts:

    python -m loadtests.dataset directory APP_DB --scenario requirement
    python -m loadtests.dataset conversations --base-url URL --app-db APP_DB \\
        --scenario requirement --out run.json   # then: LOADTEST_CONFIG=run.json locust ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.store.stand_in import DirectoryEntry, create_directory, create_sessions
from loadtests.scenarios import SCENARIOS, Scenario

COOKIE_NAME = "wb_session_id"  # WhiteBalloon's own session cookie
CONVERSATION_CONCURRENCY = 16


@dataclass(frozen=True)
class ReceiverSpec:
    user_id: int
    cookie: str
    conversation_id: int
    sender_user_id: int


@dataclass(frozen=True)
class SenderSpec:
    user_id: int
    cookie: str
    conversation_ids: list[int]


@dataclass(frozen=True)
class Dataset:
    receivers: list[ReceiverSpec]
    senders: list[SenderSpec]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dataset:
        return cls(
            [ReceiverSpec(**r) for r in data["receivers"]],
            [SenderSpec(**s) for s in data["senders"]],
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything the locustfile needs, written by the runner, named by $LOADTEST_CONFIG."""

    scenario: Scenario
    dataset: Dataset
    base_url: str
    state_dir: str  # where the Locust process writes its tally and phase marks

    def save(self, path: Path) -> None:
        payload = {
            "scenario": self.scenario.to_json(),
            "dataset": self.dataset.to_json(),
            "base_url": self.base_url,
            "state_dir": self.state_dir,
        }
        path.write_text(json.dumps(payload))

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        data = json.loads(path.read_text())
        return cls(
            Scenario.from_json(data["scenario"]),
            Dataset.from_json(data["dataset"]),
            data["base_url"],
            data["state_dir"],
        )


def receiver_user_id(index: int) -> int:
    return index + 1


def sender_user_id(scenario: Scenario, index: int) -> int:
    return scenario.receivers + index + 1


def directory_entries(scenario: Scenario) -> list[DirectoryEntry]:
    receivers = [
        DirectoryEntry(receiver_user_id(i), f"lt-receiver-{i:05d}", sync_scope="public")
        for i in range(scenario.receivers)
    ]
    senders = [
        DirectoryEntry(sender_user_id(scenario, k), f"lt-sender-{k:04d}", sync_scope="public")
        for k in range(scenario.senders)
    ]
    return receivers + senders


async def build_directory(app_db: Path, scenario: Scenario) -> None:
    """The main app's database as the gateway will read it: all load-test members, public."""
    await create_directory(app_db, directory_entries(scenario))


async def create_conversations(base_url: str, app_db: Path, scenario: Scenario) -> Dataset:
    """Sign every member in (a `sessions` row each), then start every receiver's
    conversation with its sender through the API."""
    sender_ids = [sender_user_id(scenario, k) for k in range(scenario.senders)]
    receiver_ids = [receiver_user_id(i) for i in range(scenario.receivers)]
    sessions = await create_sessions(app_db, [*receiver_ids, *sender_ids])

    def cookie(user_id: int) -> str:
        return sessions[user_id]

    limit = asyncio.Semaphore(CONVERSATION_CONCURRENCY)

    async def start(client: httpx.AsyncClient, receiver_index: int) -> ReceiverSpec:
        receiver_id = receiver_user_id(receiver_index)
        sender_id = sender_ids[receiver_index % scenario.senders]
        async with limit:
            response = await client.post(
                "/api/conversations",
                json={"peer_id": receiver_id, "origin": {"type": "inbox", "ref": None}},
                headers={"Cookie": f"{COOKIE_NAME}={cookie(sender_id)}"},
            )
        response.raise_for_status()
        conversation_id = response.json()["conversation"]["id"]
        return ReceiverSpec(receiver_id, cookie(receiver_id), conversation_id, sender_id)

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        receivers = await asyncio.gather(*(start(client, i) for i in range(scenario.receivers)))
    senders = [
        SenderSpec(
            sender_id,
            cookie(sender_id),
            [r.conversation_id for r in receivers if r.sender_user_id == sender_id],
        )
        for sender_id in sender_ids
    ]
    return Dataset(list(receivers), senders)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.dataset", description=__doc__)
    steps = parser.add_subparsers(dest="step", required=True)
    directory = steps.add_parser("directory", help="write the main app's database (app.db)")
    directory.add_argument("app_db", type=Path)
    conversations = steps.add_parser("conversations", help="start conversations, write config")
    conversations.add_argument("--base-url", required=True)
    conversations.add_argument(
        "--app-db",
        type=Path,
        required=True,
        help="the load test's app.db (the gateway's WB_APP_DB)",
    )
    conversations.add_argument("--out", type=Path, required=True)
    conversations.add_argument("--state-dir", type=Path, default=Path("loadtests/results"))
    for step in (directory, conversations):
        step.add_argument("--scenario", choices=sorted(SCENARIOS), default="requirement")
    args = parser.parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    if args.step == "directory":
        asyncio.run(build_directory(args.app_db, scenario))
        print(f"{args.app_db}: {scenario.receivers + scenario.senders} public members")
        return 0
    dataset = asyncio.run(create_conversations(args.base_url, args.app_db, scenario))
    args.state_dir.mkdir(parents=True, exist_ok=True)
    RunConfig(scenario, dataset, args.base_url, str(args.state_dir.resolve())).save(args.out)
    print(f"{args.out}: {len(dataset.receivers)} conversations; LOADTEST_CONFIG={args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
