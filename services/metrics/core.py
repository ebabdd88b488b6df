"""Metrics' pure logic: which roll-up counters one pipeline event moves.

A ticket passes three stages (received, assigned, case opened); each stage is counted once
per ticket, on the day (district local time) the city received the ticket, under a few
bounded dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from hotline import pb
from hotline.envelope import EventTypes, PermanentError, Record
from hotline.v1 import events_pb2, ticket_pb2

STAGES = ("received", "assigned", "case_opened")


@dataclass(frozen=True)
class StageReached:
    ticket_id: str
    stage: str
    day: str  # YYYY-MM-DD in the district's time zone
    dims: tuple[tuple[str, str], ...]  # (dimension, value) pairs this stage counts under


def local_day(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).date().isoformat()


EVENTS = EventTypes(events_pb2.TicketReceived, events_pb2.TicketAssigned, events_pb2.CaseOpened)


def stage_of(record: Record, tz: ZoneInfo) -> StageReached:
    """The stage an event marks; raises Skip for event types metrics does not count."""
    dims: tuple[tuple[str, str], ...]
    match EVENTS.decode(record):
        case events_pb2.TicketReceived(ticket=t):
            dims = (("all", "all"), ("ticket_type", ticket_pb2.TicketType.Name(t.ticket_type)), ("source", t.source))
            return StageReached(t.ticket_id, "received", local_day(pb.dt(t.received_at), tz), dims)
        case events_pb2.TicketAssigned() as a:
            dims = (
                ("all", "all"),
                ("ticket_type", ticket_pb2.TicketType.Name(a.ticket_type)),
                ("category", a.assignment.category or "未分类"),
                ("unit_type", events_pb2.UnitType.Name(a.assignment.primary_unit.unit_type)),
                ("method", a.assignment.method),
            )
            return StageReached(a.assignment.ticket_id, "assigned", local_day(pb.dt(a.received_at), tz), dims)
        case events_pb2.CaseOpened(case=c):
            dims = (("all", "all"), ("unit_type", events_pb2.UnitType.Name(c.primary_unit.unit_type)))
            return StageReached(c.ticket_id, "case_opened", local_day(pb.dt(c.received_at), tz), dims)
    raise PermanentError("wrong_event_type", f"metrics cannot count {record.event_type}")
