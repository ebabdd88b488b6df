"""Case search (services/supervision/cases/search.py), a ref's code vs the working tree's, on the same
2,000 simulated tickets in a scratch database each (dropped after): seconds to index the received and
the assigned tickets, and each query's time (best of 3) for words, one word, a list item, both.

    .venv/bin/python bench/case_search_queries.py [MONGO_URL] [REF]   # REF: main by default (issue #21)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import types
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymongo import AsyncMongoClient  # noqa: E402

from bench.pipeline import encoded_tickets  # noqa: E402
from hotline.auth import Principal  # noqa: E402
from hotline.directory import DIRECTORY_FILE, Directory  # noqa: E402
from hotline.policy import Role  # noqa: E402
from hotline.v1 import events_pb2, ticket_pb2  # noqa: E402
from services.supervision.cases import search as work  # noqa: E402
from services.supervision.cases.store import INDEXES as CASE_INDEXES  # noqa: E402
from services.supervision.cases.store import CaseStore  # noqa: E402

OFFICE = Principal(subject="bench", role=Role.OFFICE)
QUERIES = [work.Query(text="车位 占用"), work.Query(text="噪音"), work.Query(text="路灯不亮"),
           work.Query(rule_id="R-7"), work.Query(rule_id="R-7", text="小区")]


def module_at(ref: str) -> Any:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:services/supervision/cases/search.py"],
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("search_at_ref")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{ref}:search.py", "exec"), module.__dict__)  # noqa: S102 - our own file at a ref
    return module


async def measure(client: AsyncMongoClient[Any], name: str, mod: Any, tickets: list[Any]) -> None:
    db = client[f"bench_case_search_{name}_{uuid.uuid4().hex[:4]}"]
    try:
        indexes = {**CASE_INDEXES, **mod.INDEXES, "cases": [*CASE_INDEXES["cases"], *mod.INDEXES["cases"]]}
        for collection, models in indexes.items():
            await db[collection].create_indexes(models)
        await CaseStore(db).insert_new([events_pb2.Case(
            ticket_id=t.city_ticket_id, state=events_pb2.CASE_STATE_IN_PROGRESS,
            primary_unit=events_pb2.Unit(unit_id="DP01"), received_at=t.received_at) for t in tickets])
        search = mod.CaseSearch(db, Directory.from_file(DIRECTORY_FILE))
        received = [events_pb2.TicketReceived(ticket=ticket_pb2.Ticket(
            ticket_id=t.city_ticket_id, title=t.title, content=t.content, address=t.address)) for t in tickets]
        assigned = [events_pb2.TicketAssigned(assignment=events_pb2.Assignment(
            ticket_id=t.city_ticket_id, rule_id=f"R-{i % 40}")) for i, t in enumerate(tickets)]
        for label, messages in (("received", received), ("assigned", assigned)):
            began = time.perf_counter()
            for i in range(0, len(messages), 500):
                await search.remember(messages[i:i + 500])
            print(f"{name}: index {len(messages):,} {label}: {time.perf_counter() - began:.1f} s", flush=True)
        for q in QUERIES:
            times = []
            for _ in range(3):
                began = time.perf_counter()
                result = await search.search(mod.Query(text=q.text, rule_id=q.rule_id), OFFICE, datetime.now(UTC))
                times.append(time.perf_counter() - began)
            print(f"{name}: text={q.text!r} item={q.rule_id!r}: {result.total} found, "
                  f"best of 3 {min(times) * 1000:.0f} ms", flush=True)
    finally:
        await client.drop_database(db.name)


async def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "mongodb://127.0.0.1:27017/?directConnection=true"
    ref = sys.argv[2] if len(sys.argv) > 2 else "main"
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    tickets = [t for _, t in encoded_tickets(2000, 5)]
    try:
        await measure(client, ref, module_at(ref), tickets)
        await measure(client, "work", work, tickets)
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
