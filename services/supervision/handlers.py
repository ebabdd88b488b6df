"""Supervision's consumer: ticket assigned -> case opened with its deadlines."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from prometheus_client import Counter, Histogram

from hotline import observability as obs
from hotline import pb
from hotline.envelope import Event, Record
from hotline.mongo import utcnow
from hotline.settings import LimitSettings
from hotline.v1 import events_pb2
from services.supervision.core import WorkCalendar, open_case
from services.supervision.store import CaseStore

OPENED = Counter("hotline_cases_opened_total", "Cases opened, by the primary unit's type.", ["unit_type"])
RECEIVED_TO_OPENED = Histogram(
    "hotline_case_open_delay_seconds",
    "From the city receiving a ticket to the district opening its case.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)


class CaseOpening:
    def __init__(self, store: CaseStore, out_topic: str, limits: LimitSettings, tz: str) -> None:
        self.store = store
        self.out_topic = out_topic
        self.limits = limits
        self.calendar = WorkCalendar()
        self.tz = ZoneInfo(tz)
        obs.at_zero(OPENED, [n for n in events_pb2.UnitType.keys() if n != "UNIT_TYPE_UNSPECIFIED"])

    def decode(self, record: Record) -> events_pb2.TicketAssigned:
        return record.decode(events_pb2.TicketAssigned)

    async def apply(self, items: list[tuple[Record, events_pb2.TicketAssigned]]) -> list[Event]:
        batch = {a.assignment.ticket_id: (r, a) for r, a in reversed(items)}
        now = utcnow()
        cases = {tid: open_case(a, now, self.limits, self.calendar, self.tz) for tid, (_, a) in batch.items()}
        existed = await self.store.insert_new(list(cases.values()))  # insert first: a replay inserts nothing
        if existed:  # opened before: publish the stored case
            cases.update(await self.store.get_many(sorted(existed)))
        for tid, case in cases.items():
            if tid not in existed:
                OPENED.labels(events_pb2.UnitType.Name(case.primary_unit.unit_type)).inc()
                RECEIVED_TO_OPENED.observe(max(0.0, (now - pb.dt(case.received_at)).total_seconds()))
        return [
            Event(self.out_topic, tid, events_pb2.CaseOpened(case=cases[tid]),
                  f"{tid}/opened/{cases[tid].dispatch_round}", record.correlation_id)
            for tid, (record, _) in batch.items()
        ]
