"""``hotline report weekly|monthly|half_yearly|annual --period 2026-W47|2026-11|2026-H1|2026 --out DIR``:
a report from the metrics store (or from simulated lifecycles with ``--simulate``) as HTML, PDF
and XLSX, with a progress bar; ``--store`` also keeps it in the metrics store, where the API lists it."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hotline import mongo
from hotline.clock import SystemClock
from hotline.settings import get_settings
from services.metrics import annual, report
from services.metrics.kpi import CaseFacts, KpiPolicy, Period
from services.metrics.kpi_items import RecurringFacts, SupervisionFacts, WhistleFacts
from services.metrics.simulate import lifecycles, supervision_items
from services.metrics.store import KpiStore
from services.metrics.views import REPORT_PERIODS

STEPS = ("facts", "figures", "charts", "html", "pdf", "xlsx", "saved")


def add_cli(sub: Any) -> None:
    p = sub.add_parser("report", help="weekly (周报), monthly (月报), half-year or annual report: HTML, PDF and XLSX")
    p.add_argument("kind", choices=tuple(REPORT_PERIODS))
    p.add_argument("--period", required=True,
                   help="2026-W47 (weekly), 2026-11 (monthly), 2026-H1 (half_yearly) or 2026 (annual), district time")
    p.add_argument("--out", type=Path, default=Path("."), help="directory for the files (created if missing)")
    p.add_argument("--simulate", action="store_true", help="use simulated lifecycles instead of the store")
    p.add_argument("--per-day", type=int, default=60, help="tickets per day when simulating")
    p.add_argument("--store", action="store_true", help="also store the report in the metrics store")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    tz = ZoneInfo(settings.timezone)
    try:
        period = Period.parse(args.period, tz)
    except ValueError as exc:
        print(f"hotline report: {exc}")
        return 2
    if REPORT_PERIODS[args.kind] != period.kind:
        example = {"weekly": "week like 2026-W47", "monthly": "month like 2026-11", "half_yearly": "half like 2026-H1",
                   "annual": "year like 2026"}[args.kind]
        print(f"hotline report: a {args.kind} report needs a {example}")
        return 2
    policy = KpiPolicy.load(settings.metrics.kpi_policy)
    if args.kind in annual.KINDS_BY_NAME:
        return _annual(args, period, policy)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn()) as progress:
        task = progress.add_task(f"{report.KINDS[period.kind][1]} {period.label}", total=len(STEPS))

        def step(name: str) -> None:
            progress.update(task, advance=1, description=f"{report.KINDS[period.kind][1]} {period.label}: {name}")

        as_of = min(SystemClock().now(), period.end + timedelta(days=20)) if args.simulate else SystemClock().now()
        facts: list[CaseFacts] = (list(lifecycles(period, args.per_day, as_of=as_of, lead_days=400))
                                  if args.simulate else asyncio.run(_stored_facts(policy)))
        step("facts")
        data = report.build(facts, policy, period, as_of)
        step("figures")
        files = report.render(data, step)
        args.out.mkdir(parents=True, exist_ok=True)
        for fmt, content in files.items():
            (args.out / f"{data.id}.{fmt}").write_bytes(content)
        if args.store:
            asyncio.run(_save(report.meta(data, files, SystemClock().now()), files))
        step("saved")
    for fmt in files:
        print(args.out / f"{data.id}.{fmt}")
    return 0


def _annual(args: argparse.Namespace, period: Period, policy: KpiPolicy) -> int:
    """A half-year or annual report; simulated: three years growing by a fifth a year, with whistles
    and 屡办不成 items (services/metrics/simulate.py)."""
    if args.simulate:
        as_of = min(SystemClock().now(), period.end + timedelta(days=25))
        year = period.start.year
        facts = [f for i, y in enumerate((year - 2, year - 1, year))
                 for f in lifecycles(Period.parse(str(y), period.tz), max(1, round(args.per_day * 1.2 ** (i - 2))),
                                     seed=i, as_of=as_of, lead_days=0)]
        whistles, items = supervision_items(facts, seed=7, whistle_share=0.02, as_of=as_of)
        records: list[SupervisionFacts] = []  # the simulation raises no 督办 records
    else:
        as_of = SystemClock().now()
        facts, (whistles, items) = asyncio.run(_stored_facts(policy)), asyncio.run(_stored_items())
        records = asyncio.run(_stored_records())
    data = annual.build(facts, whistles, items, policy, period, as_of, records)
    files = annual.render(data)
    args.out.mkdir(parents=True, exist_ok=True)
    for fmt, content in files.items():
        (args.out / f"{data.id}.{fmt}").write_bytes(content)
        print(args.out / f"{data.id}.{fmt}")
    if args.store:
        asyncio.run(_save(annual.meta(data, files, SystemClock().now()), files))
    return 0


async def _stored_items() -> tuple[list[WhistleFacts], list[RecurringFacts]]:
    settings = get_settings()
    client = mongo.client(settings)
    try:
        return await KpiStore(mongo.database(client, settings, "metrics")).items()
    finally:
        await client.close()


async def _stored_records() -> list[SupervisionFacts]:
    settings = get_settings()
    client = mongo.client(settings)
    try:
        return await KpiStore(mongo.database(client, settings, "metrics")).records()
    finally:
        await client.close()


async def _stored_facts(policy: KpiPolicy) -> list[CaseFacts]:
    settings = get_settings()
    client = mongo.client(settings)
    try:
        return await KpiStore(mongo.database(client, settings, "metrics")).facts(policy)
    finally:
        await client.close()


async def _save(meta: dict[str, Any], files: dict[str, bytes]) -> None:
    settings = get_settings()
    client = mongo.client(settings)
    try:
        await KpiStore(mongo.database(client, settings, "metrics")).save_report(meta, files)
    finally:
        await client.close()
