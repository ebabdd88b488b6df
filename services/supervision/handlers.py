"""Supervision's consumer (ticket assigned -> case opened with its deadlines and their timers)
and its timer handler (a fired clock -> DeadlineDueSoon / DeadlineMissed, and on the first
miss system supervision 系统督办)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram
from pymongo.asynchronous.client_session import AsyncClientSession

from hotline import observability as obs
from hotline import pb
from hotline.clock import Clock
from hotline.envelope import Event, Record
from hotline.timers import Fired, Timers
from hotline.v1 import events_pb2
from services.supervision.calendar import WorkCalendar
from services.supervision.core import (
    SYSTEM_SUPERVISION,
    deadline_events,
    first_missed,
    open_case,
    supervision_raised,
)
from services.supervision.store import CaseStore, PolicyStore, sla_extras

OPENED = Counter("hotline_cases_opened_total", "Cases opened, by the primary unit's type.", ["unit_type"])
RECEIVED_TO_OPENED = Histogram(
    "hotline_case_open_delay_seconds",
    "From the city receiving a ticket to the district opening its case.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
CALENDAR_AHEAD = Gauge("hotline_calendar_known_days_ahead",
                       "Days from today to the last day of the working-day calendar known from official data.")


class CaseOpening:
    def __init__(self, store: CaseStore, timers: Timers, policies: PolicyStore, calendar: WorkCalendar,
                 out_topic: str, clock: Clock) -> None:
        self.store = store
        self.timers = timers
        self.policies = policies
        self.calendar = calendar
        self.out_topic = out_topic
        self.clock = clock
        obs.at_zero(OPENED, [n for n in events_pb2.UnitType.keys() if n != "UNIT_TYPE_UNSPECIFIED"])

    def decode(self, record: Record) -> events_pb2.TicketAssigned:
        return record.decode(events_pb2.TicketAssigned)

    async def apply(self, items: list[tuple[Record, events_pb2.TicketAssigned]]) -> list[Event]:
        batch = {a.assignment.ticket_id: (r, a) for r, a in reversed(items)}
        now = self.clock.now()
        policy = await self.policies.current()
        opened = {tid: open_case(a, now, policy, self.calendar) for tid, (_, a) in batch.items()}
        cases = {tid: case for tid, (case, _, _) in opened.items()}
        extras = {tid: {**sla_extras(limits), **self.timers.fields(timers)}
                  for tid, (_, limits, timers) in opened.items()}
        existed = await self.store.insert_new(list(cases.values()), extras)  # a replay inserts nothing
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


class DeadlineAlarms:
    """What a fired case clock means (Timers' ``on_fire``), inside the scan's transaction."""

    def __init__(self, store: CaseStore, out_topic: str) -> None:
        self.store = store
        self.out_topic = out_topic

    async def __call__(self, fired: Sequence[Fired], session: AsyncClientSession) -> list[Event]:
        cases = await self.store.get_many(sorted({f.timer.subject for f in fired}), session)
        events = deadline_events(fired, cases, self.out_topic)
        to_raise = {tid: miss for tid, miss in first_missed(fired).items()
                    if tid in cases and cases[tid].supervision_level < SYSTEM_SUPERVISION}
        await self.store.raise_supervision(list(to_raise), SYSTEM_SUPERVISION, session)  # read and raised in one
        # transaction: once
        events += [supervision_raised(miss, cases[tid], self.out_topic) for tid, miss in to_raise.items()]
        return events
