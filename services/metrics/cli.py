"""``hotline report weekly|monthly --period 2026-W47|2026-11 --out DIR``: a report from the
metrics store (or from simulated lifecycles with ``--simulate``) as HTML, PDF and XLSX, with a
progress bar; ``--store`` also keeps it in the metrics store, where the API lists it."""

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
from services.metrics import report
from services.metrics.kpi import CaseFacts, KpiPolicy, Period
from services.metrics.simulate import lifecycles
from services.metrics.store import KpiStore

STEPS = ("facts", "figures", "charts", "html", "pdf", "xlsx", "saved")


def add_cli(sub: Any) -> None:
    p = sub.add_parser("report", help="weekly (周报) or monthly (月报) report: HTML, PDF and XLSX")
    p.add_argument("kind", choices=("weekly", "monthly"))
    p.add_argument("--period", required=True, help="2026-W47 (weekly) or 2026-11 (monthly), district time")
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
    if {"weekly": "week", "monthly": "month"}[args.kind] != period.kind:
        example = "week like 2026-W47" if args.kind == "weekly" else "month like 2026-11"
        print(f"hotline report: a {args.kind} report needs a {example}")
        return 2
    policy = KpiPolicy.load(settings.metrics.kpi_policy)
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
