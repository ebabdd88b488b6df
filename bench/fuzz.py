"""Fuzz run: generated city records against the five services, every record accounted for.

    .venv/bin/python bench/fuzz.py                       # 10,000 records
    .venv/bin/python bench/fuzz.py --count 2000 --seed 3 --port-offset 11000

The records come from tests/fuzzing.py: tickets generated from the CityTicket schema (any
Unicode, NUL and other controls, emoji, CJK extension B) and mutations of them (wrong types,
missing/null/extra fields, huge strings, bad times, ids and enums, deep nesting, a BOM, GBK
and UTF-16 bytes, truncation, flipped bytes, escaped lone surrogates, duplicate ids), and
the city's evaluations (回访) of ~10 % of them published before their tickets (valid, repeated,
for tickets that never come, mutated): each parked by supervision or dead-lettered, none lost. It
starts the services in a namespace of their own (routing with models/classifier when it is
there), publishes the records, waits until every consumer group has caught up, then counts
each record by outcome (stored, duplicate, dead-lettered by reason) and checks: no record
unaccounted, none outside the outcomes its mutation allows, every valid one assigned, given
a case and counted by metrics, every stored text clean, no dead letter after intake, every
service process still alive. It prints the table, writes JSON to bench/results/ and exits 1
if a check fails. It asserts nothing else: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from pipeline import Namespace  # noqa: E402

from hotline_dev import infra  # noqa: E402
from tests import fuzzing  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 150)


def evaluation_table(report: fuzzing.EvaluationReport) -> Table:
    outcomes = sorted(report.outcomes, key=lambda o: (o not in (fuzzing.PARKED, fuzzing.KEPT_ON_CASE), o))
    t = Table(title=f"{report.records:,} city evaluations published before their tickets, by kind and outcome")
    t.add_column("kind")
    for o in outcomes:
        t.add_column(o if o in (fuzzing.PARKED, fuzzing.KEPT_ON_CASE, "lost") else f"dead: {o}", justify="right")
    t.add_column("total", justify="right")
    for kind in sorted(report.by_kind, key=lambda k: -sum(report.by_kind[k].values())):
        row = report.by_kind[kind]
        t.add_row(kind, *[f"{row[o]:,}" if row[o] else "" for o in outcomes], f"{sum(row.values()):,}")
    t.add_row("[bold]all", *[f"[bold]{report.outcomes[o]:,}" for o in outcomes], f"[bold]{report.records:,}")
    return t


def table(report: fuzzing.FuzzReport) -> Table:
    outcomes = sorted(report.outcomes, key=lambda o: (o not in (fuzzing.STORED, fuzzing.DUPLICATE), o))
    t = Table(title=f"{report.records:,} fuzzed city records by kind and outcome")
    t.add_column("kind")
    for o in outcomes:
        t.add_column(o if o in (fuzzing.STORED, fuzzing.DUPLICATE) else f"dead: {o}", justify="right")
    t.add_column("total", justify="right")
    for kind in sorted(report.by_kind, key=lambda k: -sum(report.by_kind[k].values())):
        row = report.by_kind[kind]
        t.add_row(kind, *[f"{row[o]:,}" if row[o] else "" for o in outcomes], f"{sum(row.values()):,}")
    t.add_row("[bold]all", *[f"[bold]{report.outcomes[o]:,}" for o in outcomes], f"[bold]{report.records:,}")
    return t


async def fuzz(count: int, seed: int, port_offset: int, timeout: float) -> int:
    infra.start(components=("kafka", "store"))
    ns = Namespace(port_offset=port_offset)
    classifier = (Path(ns.env["HOTLINE_MODEL_DIR"]) / "metadata.json").exists()
    started = time.monotonic()
    run = uuid.uuid4().hex[:6]
    records = fuzzing.generate_records(count, run, seed=seed)
    evaluations = fuzzing.generate_evaluations(records, run, seed=seed)
    console.print(f"generated {len(records):,} records ({sum(len(r.value) for r in records) / 2**20:.1f} MB, "
                  f"{sum(r.valid for r in records):,} made valid) and {len(evaluations):,} evaluations before their "
                  f"tickets ({sum(e.valid for e in evaluations):,} valid) in {time.monotonic() - started:.1f} s")
    try:
        with console.status(f"starting {ns.tag} (routing with the classifier: {classifier})"):
            ns.start()
        report = await fuzzing.run_fuzz(ns.settings, records, timeout=timeout, evaluations=evaluations)
        alive = {p.name: bool(p.proc and p.proc.poll() is None) for p in ns.procs}
        healthy = {p.name: p.healthy() for p in ns.procs}
    finally:
        ns.stop()

    console.print(table(report))
    ev = report.evaluations
    assert ev is not None
    console.print(evaluation_table(ev))
    checks = {
        "records unaccounted": report.unaccounted,
        "records outside their expected outcomes": len(report.unexpected),
        "valid records lost (not stored, assigned and given a case)": len(report.valid_lost),
        "stored tickets with control characters or not NFC": len(report.unclean),
        "dead letters after intake for fuzzed tickets": sum(report.downstream_dead.values()),
        "service processes that died": sum(not a for a in alive.values()),
        "services not healthy at the end": sum(not h for h in healthy.values()),
        "evaluations outside their expected outcomes": len(ev.unexpected),
        "valid evaluations lost (neither parked nor pending on their case)": len(ev.valid_lost),
    }
    stored = report.outcomes[fuzzing.STORED]
    counted_ok = report.counted == {"received": stored, "assigned": stored, "cases_opened": stored}
    checks["metrics counts differing from the stored tickets"] = 0 if counted_ok else 1
    result = Table(title="checks")
    result.add_column("check")
    result.add_column("value", justify="right")
    for name, value in checks.items():
        result.add_row(name, f"[{'green' if value == 0 else 'red'}]{value}")
    console.print(result)
    console.print(f"stored {stored:,}, duplicates {report.outcomes[fuzzing.DUPLICATE]:,}, dead-lettered "
                  f"{report.records - stored - report.outcomes[fuzzing.DUPLICATE]:,}; metrics counted "
                  f"{report.counted}; publish -> all caught up {report.seconds:.1f} s; routing with the classifier: "
                  f"{classifier}; alive: {alive}")
    for kind, outcome, head in [*report.unexpected[:10], *ev.unexpected[:10]]:
        console.print(f"[red]unexpected[/] {kind} -> {outcome}: {head!r}")
    out = ROOT / "bench" / "results" / f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "records": report.records, "seed": seed, "classifier": classifier, "seconds": round(report.seconds, 1),
        "outcomes": dict(report.outcomes), "by_kind": {k: dict(v) for k, v in report.by_kind.items()},
        "checks": checks, "counted": report.counted, "alive": alive,
        "downstream_dead": dict(report.downstream_dead), "valid_lost": report.valid_lost[:100],
        "evaluations": {"records": ev.records, "outcomes": dict(ev.outcomes),
                        "by_kind": {k: dict(v) for k, v in ev.by_kind.items()}, "valid_lost": ev.valid_lost[:100]},
    }, ensure_ascii=False, indent=2))
    console.print(f"written {out.relative_to(ROOT)}")
    return 0 if not any(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port-offset", type=int, default=int(os.environ.get("HOTLINE_BENCH_PORT_OFFSET", "10000")))
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the consumers to catch up")
    args = parser.parse_args()
    return asyncio.run(fuzz(args.count, args.seed, args.port_offset, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
