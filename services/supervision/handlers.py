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
        stored = await self.store.get_many(list(batch))
        now = utcnow()
        new = [open_case(a, now, self.limits, self.calendar, self.tz) for _, a in batch.values()
               if a.assignment.ticket_id not in stored]
        existed = await self.store.insert_new(new)
        if existed:
            stored.update(await self.store.get_many(sorted(existed)))
        for case in new:
            if case.ticket_id not in existed:
                stored[case.ticket_id] = case
                OPENED.labels(events_pb2.UnitType.Name(case.primary_unit.unit_type)).inc()
                RECEIVED_TO_OPENED.observe(max(0.0, (now - pb.dt(case.received_at)).total_seconds()))
        return [
            Event(self.out_topic, tid, events_pb2.CaseOpened(case=stored[tid]), f"{tid}/opened/"
                  f"{stored[tid].dispatch_round}", record.correlation_id)
            for tid, (record, _) in batch.items()
        ]
