"""Metrics' consumer (all pipeline events -> roll-ups) and its Prometheus export."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from google.protobuf.message import Message
from prometheus_client import Gauge

from hotline.envelope import Event, Record
from hotline.logging import get_logger
from hotline.settings import REPO_ROOT
from services.metrics import kpi, projection
from services.metrics.core import STAGES, StageReached, stage_of
from services.metrics.kpi import Period, period_label
from services.metrics.store import KpiStore, RollupStore
from services.metrics.views import Views

log = get_logger(__name__)

DISTRICT_TICKETS = Gauge(
    "hotline_district_tickets", "Tickets that reached a stage, all time, from the roll-ups.", ["stage"]
)
BY_DIMENSION = Gauge(
    "hotline_district_tickets_by_dimension",
    "Tickets that reached a stage, all time, by ticket_type, category, unit_type, method or source.",
    ["stage", "dimension", "value"],
)


class StageCounting:
    def __init__(self, store: RollupStore, tz: str) -> None:
        self.store = store
        self.tz = ZoneInfo(tz)

    def decode(self, record: Record) -> StageReached:
        return stage_of(record, self.tz)

    async def apply(self, items: list[tuple[Record, StageReached]]) -> list[Event]:
        await self.store.count([s for _, s in items])
        return []


class KpiProjection:
    """Keeps the KPI facts (services/metrics/projection.py) from the ticket, assignment and case
    topics. Its own consumer group: rewinding it to offset 0 rebuilds the facts exactly."""

    def __init__(self, store: KpiStore) -> None:
        self.store = store

    def decode(self, record: Record) -> Message:
        return projection.decode(record)

    async def apply(self, items: list[tuple[Record, Message]]) -> list[Event]:
        await self.store.apply([u for _, m in items for u in projection.updates(m)])
        return []


async def export_forever(store: RollupStore, every_seconds: float = 5.0) -> None:
    """Refresh the Prometheus gauges from the store (they survive restarts, unlike counters)."""
    while True:
        try:
            totals = await store.totals()
            for stage in STAGES:
                DISTRICT_TICKETS.labels(stage).set(totals.get("all", {}).get("all", {}).get(stage, 0))
            for dim, values in totals.items():
                if dim == "all":
                    continue
                for value, stages in values.items():
                    for stage, n in stages.items():
                        if n:
                            BY_DIMENSION.labels(stage, dim, value).set(n)
        except Exception as exc:
            log.warning("metrics export failed", error=repr(exc))
        await asyncio.sleep(every_seconds)


KPI_RATE = Gauge(
    "hotline_kpi_rate_ratio",
    "KPI rates of the current month (docs/kpis.md), 0..1, overall and by unit_type, category or lane.",
    ["rate", "dimension", "value"],
)
KPI_DENOMINATOR = Gauge(
    "hotline_kpi_denominator", "What each KPI rate of the current month divides by (rows counted).",
    ["rate", "dimension", "value"],
)
GAUGE_DIMENSIONS = ("unit_type", "category", "lane")
LIST_FILE = REPO_ROOT / "services" / "routing" / "data" / "responsibilities.json"


def gauge_categories(path: Path = LIST_FILE) -> frozenset[str]:
    """The categories of the first-responsible list: the only category label values (others: 其他)."""
    try:
        return frozenset(r["category"] for r in json.loads(path.read_text("utf-8"))["responsibilities"])
    except (OSError, ValueError, KeyError):
        return frozenset()


def kpi_gauge_tables(facts: list[kpi.CaseFacts], views: Views, month: Period, now: datetime,
                     categories: frozenset[str]) -> dict[str, kpi.KpiTable]:
    """The KPI gauges' tables of one month: overall and by each of GAUGE_DIMENSIONS."""
    bounded = [replace(f, category=f.category if f.category in categories else "其他") for f in facts]
    tables = {"all": kpi.compute(bounded, views.policy, views.tz, month.start, month.end, as_of=now)}
    for dim in GAUGE_DIMENSIONS:
        tables[dim] = kpi.compute(bounded, views.policy, views.tz, month.start, month.end, (dim,), as_of=now)
    return tables


async def export_kpis_forever(views: Views, every_seconds: float = 60.0) -> None:
    """Refresh the KPI gauges for the current month. Labels are bounded: rate x (unit type | list
    category or 其他 | lane); never a unit, ticket or person. Reads the current month's facts only
    (KpiStore.facts_within: by the anchors' months), not every fact ever stored."""
    categories = gauge_categories()
    while True:
        try:
            now = views.clock.now()
            month = Period.parse(period_label("month", now, views.tz), views.tz)
            facts = await views.facts_within(month.start, month.end)
            for dim, table in kpi_gauge_tables(facts, views, month, now, categories).items():
                groups = {("all",): table.total} if dim == "all" else table.groups
                for (value,), figs in groups.items():
                    for name in kpi.RATES:
                        r = figs.rate(name, views.policy)
                        KPI_DENOMINATOR.labels(name, dim, value or "unknown").set(r.denominator)
                        if r.value is not None:
                            KPI_RATE.labels(name, dim, value or "unknown").set(float(r.value))
        except Exception as exc:
            log.warning("KPI gauges failed", error=repr(exc))
        await asyncio.sleep(every_seconds)
