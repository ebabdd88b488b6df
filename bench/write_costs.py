"""What each document the platform stores per ticket costs the store, measured one collection at a time.

    .venv/bin/python bench/write_costs.py                      # 2,000 tickets under max
    .venv/bin/python bench/write_costs.py --count 3000 --markdown

1. The five services run in a namespace of their own (bench/pipeline.py ``Namespace``) and take
   ``--count`` tickets as fast as they can (``scenario_max``); then they get ``--settle`` seconds
   more, so the consumers off the critical path (early warnings, case search, knowledge base,
   deputy liaison) store what they store for every ticket, and stop.
2. Every collection of the namespace's databases is counted: documents stored per ticket.
3. Each collection's documents (up to ``--sample``) are inserted again into an empty scratch
   collection carrying the SAME indexes, in batches of ``--batch`` (one ``insert_many`` each, as
   the consumers write a batch): the store process's CPU time (psutil, user+system) and the
   wall time per document. A document's cost is its own write plus its indexes' entries.
4. Per ticket: documents per ticket x cost per document, per collection, with what needs the
   write (the feature); the sum is set beside the store's CPU per ticket measured under max.

What it leaves out: updates in place (a KPI dispatch's limits, a case's state changes after the
opening) and transactions' own cost (commit, the registry: bench/README.md, "the convoy"); the
store-operation probe of bench/compare.py counts those per operation. Figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import Namespace, console, scenario_max  # noqa: E402

from hotline_dev import infra  # noqa: E402

# what needs each collection's write (service: collection -> feature); "?" for one not listed here
FEATURES = {
    "intake:tickets": "the ticket itself (工单), read by intake's API",
    "intake:audit": "audit trail: the receipt (who, when, before/after)",
    "intake:ticket_units": "handling units of a ticket (承办单位) for intake's ticket API",
    "intake:repeat_keys": "repeat-call detection (重复来电) by caller and address",
    "intake:outbox": "outbox: TicketReceived staged with the ticket (one document per batch)",
    "routing:assignments": "the routed ticket: rule, units, lane (派单)",
    "routing:audit": "audit trail: the routing decision",
    "routing:desk": "manual-dispatch desk (人工派单) for tickets no rule takes",
    "routing:outbox": "outbox: TicketAssigned (one document per batch)",
    "supervision:cases": "the case with its clocks (签收/联系/办结 deadlines, timers embedded)",
    "supervision:audit": "audit trail: the opening",
    "supervision:case_search": "case search: a ticket's text terms (pairs; uncommon ones indexed), inserted once",
    "supervision:case_search_items": "case search: the ticket's list item (清单事项)",
    "supervision:warning_facts": "early warnings (预警): a fact per ticket for the detectors' window",
    "supervision:warnings": "early warnings raised",
    "supervision:outbox": "outbox: CaseOpened (one document per batch)",
    "deputy_liaison:ticket_facts": "deputies' monthly lists (代表月报): receipt and category facts",
    "metrics:facts": "stage roll-ups' exactly-once keys (received / assigned / case opened)",
    "metrics:rollups": "stage roll-ups (counts per day and dimension)",
    "metrics:kpi_tickets": "KPI facts: the ticket (考核 receipts)",
    "metrics:kpi_dispatches": "KPI facts: the dispatch round (limits, lane)",
    "metrics:kpi_handlings": "KPI facts: the handling round",
    "metrics:kb_cases": "knowledge base: the case's text and units for similar cases (知识库)",
    "routing:policy_versions": "the routing rules in force (versioned policy data; once per run)",
    "supervision:policy_versions": "the SLA limits in force (versioned policy data; once per run)",
    "supervision:warning_writers": "early warnings: each writer's heartbeat (one per process)",
}


def index_entries(doc: dict[str, Any], key_spec: dict[str, Any], sparse: bool) -> int:
    """The entries ``doc`` puts in one index: one, or one per element of its array field
    (multikey); none in a sparse index it has no field of (partial filters are not applied)."""
    entries, present = 1, False
    for path in key_spec:
        value: Any = doc
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        present = True
        if isinstance(value, list):
            entries *= max(1, len({repr(v) for v in value}))
    return entries if present or not sparse else 0


def store_process() -> psutil.Process:
    for row in infra.status():
        if row["component"] == "store" and row.get("pid"):
            return psutil.Process(int(row["pid"]))
    raise SystemExit("the store is not running: .venv/bin/python -m hotline_dev.infra start store")


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def service_of(database: str, prefix: str) -> str:
    return database[len(prefix) + 1:] if database.startswith(prefix + "_") else database


async def settle(ns: Namespace, seconds: float) -> None:
    """Wait until no collection of the namespace has grown for ``seconds`` (at most 10x that)."""
    from hotline import mongo

    client = mongo.client(ns.settings)
    try:
        last: dict[str, int] = {}
        quiet_since = time.time()
        deadline = time.time() + 10 * seconds
        while time.time() < deadline:
            now = await census(client, ns.settings.mongo.database_prefix)
            if now != last:
                last, quiet_since = now, time.time()
            elif time.time() - quiet_since >= seconds:
                return
            await asyncio.sleep(1)
    finally:
        await client.close()


async def census(client: Any, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in await client.list_database_names():
        if not name.startswith(prefix + "_"):
            continue
        db = client[name]
        for collection in await db.list_collection_names():
            if not collection.startswith("system."):
                out[f"{service_of(name, prefix)}:{collection}"] = await db[collection].estimated_document_count()
    return out


async def measure(ns: Namespace, count: int, sample: int, batch: int) -> list[dict[str, Any]]:
    from pymongo import IndexModel

    from hotline import mongo

    prefix = ns.settings.mongo.database_prefix
    client = mongo.client(ns.settings)
    store = store_process()
    rows = []
    try:
        stored = await census(client, prefix)
        scratch = client[f"{prefix}_write_costs"]
        for key, n in sorted(stored.items()):
            service, collection = key.split(":", 1)
            if not n:
                continue
            source = client[f"{prefix}_{service}"][collection]
            docs = [d async for d in source.find({}).limit(sample)]
            target = scratch[f"{service}__{collection}"]
            await target.drop()
            models = []
            entries = len(docs)  # the _id index's
            async for index in await source.list_indexes():
                if index["name"] == "_id_":
                    continue
                entries += sum(index_entries(d, dict(index["key"]), bool(index.get("sparse"))) for d in docs)
                options = {k: v for k, v in index.items() if k in ("unique", "sparse", "partialFilterExpression",
                                                                     "expireAfterSeconds")}
                models.append(IndexModel(list(index["key"].items()), name=index["name"], **options))
            if models:
                await target.create_indexes(models)
            await target.insert_one({"_id": "__warm__"})  # the collection exists before the clock starts
            cpu0, wall0 = cpu_seconds(store), time.perf_counter()
            for i in range(0, len(docs), batch):
                await target.insert_many(docs[i:i + batch], ordered=False)
            cpu, wall = cpu_seconds(store) - cpu0, time.perf_counter() - wall0
            await target.drop()
            per_ticket = n / count
            rows.append({
                "service": service, "collection": collection, "documents": n, "per_ticket": round(per_ticket, 3),
                "indexes": len(models) + 1, "sampled": len(docs),
                "index_entries_per_document": round(entries / max(1, len(docs)), 1),
                "avg_bytes": round(sum(len(json.dumps(d, default=str)) for d in docs) / max(1, len(docs))),
                "store_cpu_ms_per_document": round(1000 * cpu / max(1, len(docs)), 3),
                "wall_ms_per_document": round(1000 * wall / max(1, len(docs)), 3),
                "store_cpu_ms_per_ticket": round(1000 * cpu / max(1, len(docs)) * per_ticket, 3),
                "feature": FEATURES.get(key, "?"),
            })
            console.print(f"  {key}: {per_ticket:.2f} per ticket, "
                          f"{rows[-1]['store_cpu_ms_per_document']:.2f} store CPU-ms per document")
        await client.drop_database(scratch.name)
    finally:
        await client.close()
    return rows


def table(rows: list[dict[str, Any]], result: dict[str, Any], store_cpu_ms: float | None) -> str:
    lines = ["| service | collection | documents per ticket | indexes | index entries per ticket | "
             "store CPU-ms per document | store CPU-ms per ticket | what needs it |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["store_cpu_ms_per_ticket"]):
        lines.append(f"| {r['service']} | {r['collection']} | {r['per_ticket']:.2f} | {r['indexes']} | "
                     f"{r['index_entries_per_document'] * r['per_ticket']:.1f} | "
                     f"{r['store_cpu_ms_per_document']:.2f} | {r['store_cpu_ms_per_ticket']:.2f} | {r['feature']} |")
    total_docs = sum(r["per_ticket"] for r in rows)
    total_entries = sum(r["index_entries_per_document"] * r["per_ticket"] for r in rows)
    total_ms = sum(r["store_cpu_ms_per_ticket"] for r in rows)
    lines.append(f"| **all** | | **{total_docs:.2f}** | | **{total_entries:.1f}** | | **{total_ms:.2f}** | |")
    lines.append("")
    lines.append(f"{result['tickets']} tickets end to end at {result['tickets_per_second']} tickets/s; the store's "
                 f"CPU under max: {store_cpu_ms:.2f} ms per ticket (the inserts above re-done alone: "
                 f"{total_ms:.2f} ms; the rest is reads, updates, transactions and the wire)."
                 if store_cpu_ms is not None else "")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    store = store_process()
    ns = Namespace()
    try:
        with console.status(f"starting {ns.tag}…"):
            ns.start()
        cpu0 = cpu_seconds(store)
        result = await scenario_max(ns, args.count, seed=11)
        store_cpu_ms = 1000 * (cpu_seconds(store) - cpu0) / args.count
        console.print(f"max: {result['tickets_per_second']} tickets/s; settling {args.settle:.0f} s…")
        await settle(ns, args.settle)
        for proc in ns.procs:
            proc.stop()
        rows = await measure(ns, args.count, args.sample, args.batch)
    finally:
        ns.stop()
    out = {"count": args.count, "max": result, "store_cpu_ms_per_ticket_under_max": round(store_cpu_ms, 3),
           "rows": rows, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = ROOT / "bench" / "results" / f"write-costs-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(table(rows, result, store_cpu_ms))
    console.print(f"written {path}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="tickets under max")
    parser.add_argument("--settle", type=float, default=8, help="seconds without a new document before measuring")
    parser.add_argument("--sample", type=int, default=2000, help="documents re-inserted per collection")
    parser.add_argument("--batch", type=int, default=500, help="documents per insert_many")
    parser.add_argument("--markdown", action="store_true", help="(the table is always printed)")
    asyncio.run(main(parser.parse_args()))
