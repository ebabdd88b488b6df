"""Metrics' consumer (all pipeline events -> roll-ups) and its Prometheus export."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from google.protobuf.message import Message
from prometheus_client import Gauge

from hotline.envelope import Event, Record
from hotline.logging import get_logger
from services.metrics import projection
from services.metrics.core import STAGES, StageReached, stage_of
from services.metrics.store import KpiStore, RollupStore

STAGE_EVENTS = ("hotline.v1.TicketReceived", "hotline.v1.TicketAssigned", "hotline.v1.CaseOpened")

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

    def decode(self, record: Record) -> StageReached | None:
        if record.event_type and record.event_type not in STAGE_EVENTS:
            return None  # lifecycle events share hotline.cases.v1: the KPI projection reads them
        return stage_of(record, self.tz)

    async def apply(self, items: list[tuple[Record, StageReached | None]]) -> list[Event]:
        await self.store.count([s for _, s in items if s is not None])
        return []


class KpiProjection:
    """Keeps the KPI facts (services/metrics/projection.py) from the ticket, assignment and case
    topics. Its own consumer group: rewinding it to offset 0 rebuilds the facts exactly."""

    def __init__(self, store: KpiStore) -> None:
        self.store = store

    def decode(self, record: Record) -> Message | None:
        return projection.decode(record)

    async def apply(self, items: list[tuple[Record, Message | None]]) -> list[Event]:
        await self.store.apply([u for _, m in items if m is not None for u in projection.updates(m)])
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
