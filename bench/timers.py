"""Benchmark of the durable timer scan (hotline/timers.py) over up to 1,000,000 open cases.

    .venv/bin/python bench/timers.py                          # 10k, 100k, 1M pending timers
    .venv/bin/python bench/timers.py --sizes 10000,100000 --due 100

Each open case has a pending timer (its next deadline) spread over the next 30 days; at each
size a few (``--due``) are due now. For each size it measures, against the real store:

* scan, few due: ``Timers.fire_due`` claiming the due ones, building their DeadlineMissed
  events and staging them in the outbox, in one transaction (median of --repeat runs);
* scan, none due: the same when nothing is due (what every idle interval costs);
* O(open) baseline: the same "what is due?" question asked without the index (a query on
  ``due_at``, which no index covers: a scan of every open case), as a scan over all open
  cases would;
* scheduling: ``Timers.schedule`` of the 3 clocks of 1,000 new cases in one call
  (``replace=False``, as cases open) and moving one clock of each of 1,000 cases (read, merge, write).

It prints a table and writes JSON to bench/results/. It asserts nothing: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymongo.asynchronous.client_session import AsyncClientSession  # noqa: E402

from hotline import infra, kafka, mongo  # noqa: E402
from hotline.clock import ManualClock  # noqa: E402
from hotline.envelope import Event  # noqa: E402
from hotline.mongo import find_in  # noqa: E402
from hotline.outbox import INDEXES as OUTBOX_INDEXES  # noqa: E402
from hotline.outbox import Outbox  # noqa: E402
from hotline.settings import get_settings  # noqa: E402
from hotline.timers import INDEXES, Fired, Stage, Timer, Timers  # noqa: E402
from services.supervision.core import deadline_events  # noqa: E402

console = Console(width=150)
NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
DATA = {"round": 1}  # what supervision keeps with a case clock


def pending_doc(i: int, fire_at: datetime) -> dict[str, Any]:
    """What Timers.schedule stores for a case with a pending reply deadline (bulk-loaded for speed)."""
    clock = {"due_at": fire_at, "warn_at": None, "stage": Stage.DUE.value, "at": fire_at, "data": DATA}
    return {"_id": f"B{i:07d}", "v": 1, "fire_at": fire_at, "clocks": {"reply": clock}}


class OnFire:
    """Like supervision's: read the fired cases, build DeadlineMissed events (no case docs here)."""

    def __init__(self, db: Any) -> None:
        self.cases = db["cases"]

    async def __call__(self, fired: Sequence[Fired], session: AsyncClientSession) -> list[Event]:
        await find_in(self.cases, sorted({f.timer.subject for f in fired}), session=session)
        return deadline_events(fired, {}, "hotline.cases.v1")


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
    timers = Timers(db, Outbox(db, producer, "bench"), clock, OnFire(db), batch=args.batch)
    rows: list[dict[str, Any]] = []
    try:
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **INDEXES})
        loaded = 0
        for size in sorted(args.sizes):
            with console.status(f"loading {size:,} pending timers…"):
                started = time.perf_counter()
                while loaded < size:
                    chunk = min(10_000, size - loaded)
                    # deterministic spread over the next 30 days, never due now
                    docs = [pending_doc(i, NOW + timedelta(minutes=10 + (i * 7919) % (30 * 24 * 60)))
                            for i in range(loaded, loaded + chunk)]
                    await db["timers"].insert_many(docs, ordered=False)
                    loaded += chunk
                load_seconds = time.perf_counter() - started
            with console.status(f"{size:,}: scans…"):
                few, idle = [], []
                for rep in range(args.repeat):
                    due = [Timer(f"D{rep}-{i:04d}", "reply", NOW - timedelta(minutes=1 + i), None, DATA)
                           for i in range(args.due)]
                    await timers.schedule(due, replace=False)
                    seconds, claimed = await timed(timers.fire_due())
                    assert claimed == args.due, claimed
                    few.append(seconds)
                    seconds, claimed = await timed(timers.fire_due())
                    assert claimed == 0
                    idle.append(seconds)
                await db["outbox"].delete_many({})
                plan = await db["timers"].find({"fire_at": {"$lte": NOW}}).sort("fire_at", 1).limit(args.batch) \
                    .explain()
            with console.status(f"{size:,}: O(open) baseline (unindexed scan)…"):
                baseline, found = await timed(db["timers"].find({"due_at": {"$lte": NOW}}, {"_id": 1}).to_list())
            with console.status(f"{size:,}: scheduling 1,000…"):
                batch = [Timer(f"S{size}-{i:04d}", kind, NOW + timedelta(days=5), NOW + timedelta(days=4), DATA)
                         for i in range(1000) for kind in ("sign_off", "contact", "reply")]
                schedule_seconds, _ = await timed(timers.schedule(batch, replace=False))
                moved = [dataclasses.replace(t, due_at=t.due_at + timedelta(days=1))
                         for t in batch if t.kind == "reply"]
                replace_seconds, _ = await timed(timers.schedule(moved))
                subjects = [t.subject for t in moved]
                for start in range(0, len(subjects), 50):
                    await db["timers"].delete_many({"_id": {"$in": subjects[start:start + 50]}})
            row = {
                "open": size, "due": args.due, "load_seconds": round(load_seconds, 1),
                "scan_few_due_ms": round(1000 * statistics.median(few), 1),
                "scan_none_due_ms": round(1000 * statistics.median(idle), 2),
                "baseline_unindexed_ms": round(1000 * baseline, 1), "baseline_found": len(found),
                "schedule_1000_ms": round(1000 * schedule_seconds, 1),
                "replace_1000_ms": round(1000 * replace_seconds, 1),
                "plan": summary_of(plan),
            }
            rows.append(row)
            console.print(row)
    finally:
        await client.drop_database(db.name)
        await producer.stop()
        await client.close()
    table = Table(title=f"timer scan · {args.due} due per scan · median of {args.repeat}")
    for column in ("open cases", "scan, few due", "scan, none due", "O(open) scan (no index)",
                   "open 1,000 cases (3 clocks)", "move 1,000 clocks", "plan"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(f"{r['open']:,}", f"{r['scan_few_due_ms']} ms", f"{r['scan_none_due_ms']} ms",
                      f"{r['baseline_unindexed_ms']:,} ms", f"{r['schedule_1000_ms']} ms",
                      f"{r['replace_1000_ms']} ms", r["plan"])
    console.print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"timers-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=2, default=str))
    console.print(f"written {path}")
    return {"rows": rows}


def summary_of(plan: dict[str, Any]) -> str:
    """The winning plan's stages and how many keys/documents it examined."""
    text = json.dumps(plan.get("queryPlanner", {}).get("winningPlan", {}))
    stats = plan.get("executionStats", {})
    stages = [s for s in ("IXSCAN", "COLLSCAN", "FETCH", "SORT") if s in text]
    examined = stats.get("totalDocsExamined")
    return "+".join(stages) + (f" ({examined} docs)" if examined is not None else "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--due", type=int, default=100, help="timers due at each scan")
    parser.add_argument("--batch", type=int, default=500, help="Timers batch (claims per transaction)")
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
