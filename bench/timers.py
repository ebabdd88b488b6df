"""Benchmark of the durable timer scan (hotline/timers.py) over up to 1,000,000 open cases.

    .venv/bin/python bench/timers.py                          # 10k, 100k, 1M open cases
    .venv/bin/python bench/timers.py --sizes 10000,100000 --due 100

Open cases are stored as supervision stores them: the case document with its three clocks
(sign-off, first contact, reply) embedded, the earliest spread over the next 30 days. At each
size a few (``--due``) more cases are past their reply deadline. Against the real store:

* scan, few due: ``Timers.fire_due`` with supervision's own handler: claim the due cases, read
  them, stage DeadlineMissed + OverdueSupervisionRaised (the request for system supervision,
  applied by the escalation module) in the outbox, one transaction (median of --repeat);
* scan, none due: the same when nothing is due (what every idle interval costs);
* O(open) baseline: the same question ("which cases are past a deadline?") asked of a field no
  index covers (``reply_due``): a scan of every open case;
* opening 1,000 cases with their clocks vs without (the cost the clocks add to opening), and
  moving one clock of each of 1,000 cases (a lifecycle transition: read, merge, write).

It prints a table and writes JSON to bench/results/. It asserts nothing: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HOTLINE_ENV", "development")  # benchmarks mint development tokens (issue #19)

from hotline import kafka, mongo, pb  # noqa: E402
from hotline.calendar import WorkCalendar  # noqa: E402
from hotline.clock import ManualClock  # noqa: E402
from hotline.mongo import insert_missing  # noqa: E402
from hotline.outbox import INDEXES as OUTBOX_INDEXES  # noqa: E402
from hotline.outbox import Outbox  # noqa: E402
from hotline.settings import SlaSettings, get_settings  # noqa: E402
from hotline.timers import Timer, Timers  # noqa: E402
from hotline.v1 import events_pb2, ticket_pb2  # noqa: E402
from hotline_dev import infra  # noqa: E402
from services.supervision.cases.core import case_timers, open_case  # noqa: E402
from services.supervision.cases.handlers import DeadlineAlarms  # noqa: E402
from services.supervision.cases.sla import parse_policy  # noqa: E402
from services.supervision.cases.store import INDEXES, CaseStore, next_deadline, sla_extras  # noqa: E402

console = Console(width=160)
NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


class CaseFactory:
    """Case documents as supervision writes them, from one real opened case, renamed and shifted."""

    def __init__(self, timers: Timers) -> None:
        policy = parse_policy(json.loads(SlaSettings().policy_file.read_text("utf-8")))
        assigned = events_pb2.TicketAssigned(
            assignment=events_pb2.Assignment(ticket_id="X", primary_unit=events_pb2.Unit(
                unit_id="ST05", name="瑞金路街道", unit_type=events_pb2.UNIT_TYPE_STREET), category="物业管理",
                dispatch_round=1, assigned_at=pb.ts(NOW)),
            ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, urgency=ticket_pb2.URGENCY_NORMAL, received_at=pb.ts(NOW))
        calendar = WorkCalendar()
        self.case, self.limits = open_case(assigned, NOW, policy, calendar)
        self.clocks = case_timers(self.case, self.limits, calendar)
        self.base = {**pb.to_doc(self.case), "next_deadline": next_deadline(self.case), **sla_extras(self.limits)}
        self.timers = timers

    def doc(self, ticket_id: str, shift: timedelta, clocks: bool = True) -> dict[str, Any]:
        doc = copy.deepcopy(self.base)
        doc["_id"] = doc["ticket_id"] = ticket_id
        for name in ("sign_off_due", "contact_due", "reply_due"):
            doc[name] = doc[name] + shift
        if clocks:
            doc |= self.timers.fields(self.shifted(ticket_id, shift))
        return doc

    def shifted(self, ticket_id: str, shift: timedelta) -> list[Timer]:
        return [dataclasses.replace(t, subject=ticket_id, due_at=t.due_at + shift,
                                    warn_at=t.warn_at + shift if t.warn_at else None) for t in self.clocks]


async def timed(work: Awaitable[Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await work  # a coroutine does nothing until awaited: the clock covers all of it
    return time.perf_counter() - started, result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    infra.start(components=("store",))
    client = mongo.client(settings)
    db = client[f"bench_timers_{uuid.uuid4().hex[:6]}"]
    producer = kafka.producer(settings)  # staging only: never started
    clock = ManualClock(NOW)
    store = CaseStore(db)
    timers = store.clock_timers(Outbox(db, producer, "bench"), clock, DeadlineAlarms(store, "hotline.cases.v1"),
                                batch=args.batch)  # as supervision runs them: the stages written by cases/store.py
    factory = CaseFactory(timers)
    rows: list[dict[str, Any]] = []
    try:
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **INDEXES})
        loaded = 0
        for size in sorted(args.sizes):
            with console.status(f"loading {size:,} open cases…"):
                started = time.perf_counter()
                while loaded < size:
                    chunk = min(10_000, size - loaded)
                    # deterministic spread over the next 30 days: none due now
                    docs = [factory.doc(f"B{i:07d}", timedelta(minutes=(i * 7919) % (30 * 24 * 60)))
                            for i in range(loaded, loaded + chunk)]
                    await db["cases"].insert_many(docs, ordered=False)
                    loaded += chunk
                load_seconds = time.perf_counter() - started
            with console.status(f"{size:,}: scans…"):
                few, idle = [], []
                for rep in range(args.repeat):
                    late = [factory.doc(f"D{size}-{rep}-{i:04d}", timedelta(days=-10)) for i in range(args.due)]
                    await insert_missing(db["cases"], late)
                    seconds, claimed = await timed(timers.fire_due())
                    assert claimed == args.due, claimed
                    few.append(seconds)
                    seconds, claimed = await timed(timers.fire_due())
                    assert claimed == 0
                    idle.append(seconds)
                staged = await db["outbox"].count_documents({})
                await db["outbox"].delete_many({})
            with console.status(f"{size:,}: O(open) baseline (unindexed scan)…"):
                baseline, found = await timed(db["cases"].find({"reply_due": {"$lte": NOW - timedelta(days=20)}},
                                                               {"_id": 1}).to_list())
            with console.status(f"{size:,}: opening and moving 1,000…"):
                plain = [factory.doc(f"P{size}-{i:04d}", timedelta(0), clocks=False) for i in range(1000)]
                open_plain, _ = await timed(insert_missing(db["cases"], plain))
                with_clocks = [factory.doc(f"S{size}-{i:04d}", timedelta(0)) for i in range(1000)]
                open_clocks, _ = await timed(insert_missing(db["cases"], with_clocks))
                moved = [dataclasses.replace(t, due_at=t.due_at + timedelta(days=1))
                         for i in range(1000) for t in factory.shifted(f"S{size}-{i:04d}", timedelta(0))
                         if t.kind == "reply"]
                move_seconds, _ = await timed(timers.schedule(moved))
                ids = [d["_id"] for d in plain + with_clocks]
                for start in range(0, len(ids), 50):
                    await db["cases"].delete_many({"_id": {"$in": ids[start:start + 50]}})
            row = {
                "open": size, "due": args.due, "load_seconds": round(load_seconds, 1),
                "scan_few_due_ms": round(1000 * statistics.median(few), 1),
                "scan_none_due_ms": round(1000 * statistics.median(idle), 2),
                "events_staged_per_scan": staged // args.repeat,
                "baseline_unindexed_ms": round(1000 * baseline, 1), "baseline_found": len(found),
                "open_1000_without_clocks_ms": round(1000 * open_plain, 1),
                "open_1000_with_clocks_ms": round(1000 * open_clocks, 1),
                "move_1000_clocks_ms": round(1000 * move_seconds, 1),
            }
            rows.append(row)
            console.print(row)
    finally:
        await client.drop_database(db.name)
        await producer.stop()
        await client.close()
    table = Table(title=f"timer scan · {args.due} cases due per scan · median of {args.repeat}")
    for column in ("open cases", "scan, few due", "scan, none due", "O(open) scan (no index)",
                   "open 1,000 cases: without / with clocks", "move 1,000 clocks"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(f"{r['open']:,}", f"{r['scan_few_due_ms']} ms", f"{r['scan_none_due_ms']} ms",
                      f"{r['baseline_unindexed_ms']:,} ms",
                      f"{r['open_1000_without_clocks_ms']} / {r['open_1000_with_clocks_ms']} ms",
                      f"{r['move_1000_clocks_ms']} ms")
    console.print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"timers-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=2, default=str))
    console.print(f"written {path}")
    return {"rows": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--due", type=int, default=100, help="cases past a deadline at each scan")
    parser.add_argument("--batch", type=int, default=500, help="Timers batch (claims per transaction)")
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
