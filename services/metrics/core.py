"""Metrics' pure logic: which roll-up counters one pipeline event moves.

A ticket passes stages (received, assigned, case opened, then the case lifecycle: signed off,
first contact, replied, reviewed, evaluated, closed...). Each stage is counted once per ticket
and round: per dispatch round (a re-dispatch counts assigned and case_opened again) and, for
the lifecycle stages, per redo round (重办) too, so a redone reply counts as a second reply.
Counts go on the day (district local time) the city received the ticket, under a few bounded
dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from hotline import pb
from hotline.envelope import EventTypes, PermanentError, Record, Skip
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, ticket_pb2

LIFECYCLE_STAGES = (
    "signed_off", "first_contact", "replied", "extension_requested", "extension_approved", "extension_rejected",
    "parked", "return_requested", "return_refused", "review_passed", "review_failed", "evaluated", "redo",
    "closed",
)
STAGES = ("received", "assigned", "case_opened", *LIFECYCLE_STAGES)


@dataclass(frozen=True)
class StageReached:
    ticket_id: str
    stage: str
    day: str  # YYYY-MM-DD in the district's time zone
    dims: tuple[tuple[str, str], ...]  # (dimension, value) pairs this stage counts under
    round: str = ""  # "<dispatch round>" or "<dispatch round>.<redo round>": a stage counts once per round

    @property
    def fact_id(self) -> str:
        return f"{self.ticket_id}|{self.stage}" + (f"|{self.round}" if self.round else "")


def local_day(when: datetime, tz: ZoneInfo) -> str:
    """The district's calendar day of an instant. An instant whose local day no date can hold
    (the last hours of 9999 east of UTC) is input that can never be counted: PermanentError."""
    try:
        return when.astimezone(tz).date().isoformat()
    except (OverflowError, ValueError) as exc:
        raise PermanentError("schema", f"{when.isoformat()} has no local day in {tz.key}: {exc}") from exc


EVENTS = EventTypes(
    events_pb2.TicketReceived, events_pb2.TicketAssigned, events_pb2.CaseOpened, lifecycle_pb2.CaseSignedOff,
    lifecycle_pb2.ContactRecorded, lifecycle_pb2.CaseReplied, lifecycle_pb2.ExtensionRequested,
    lifecycle_pb2.ExtensionDecided, lifecycle_pb2.CaseParked, lifecycle_pb2.ReturnRequested,
    lifecycle_pb2.ReturnRefused, lifecycle_pb2.ReviewDecided, lifecycle_pb2.CaseEvaluated, lifecycle_pb2.RedoDecided,
    lifecycle_pb2.CaseClosed,
)


def lifecycle_stage(event: Any) -> str | None:
    """The stage a lifecycle event marks (None: one metrics does not count, e.g. a second contact)."""
    match event:
        case lifecycle_pb2.CaseSignedOff(assisting=False):
            return "signed_off"
        case lifecycle_pb2.ContactRecorded(first=True):
            return "first_contact"
        case lifecycle_pb2.CaseReplied():
            return "replied"
        case lifecycle_pb2.ExtensionRequested():
            return "extension_requested"
        case lifecycle_pb2.ExtensionDecided(approved=approved):
            return "extension_approved" if approved else "extension_rejected"
        case lifecycle_pb2.CaseParked():
            return "parked"
        case lifecycle_pb2.ReturnRequested():
            return "return_requested"
        case lifecycle_pb2.ReturnRefused():
            return "return_refused"
        case lifecycle_pb2.ReviewDecided(passed=passed):
            return "review_passed" if passed else "review_failed"
        case lifecycle_pb2.CaseEvaluated():
            return "evaluated"
        case lifecycle_pb2.RedoDecided(redo=True):
            return "redo"
        case lifecycle_pb2.CaseClosed():
            return "closed"
    return None


def stage_of(record: Record, tz: ZoneInfo) -> StageReached:
    """The stage an event marks; raises Skip for event types metrics does not count."""
    dims: tuple[tuple[str, str], ...]
    match EVENTS.decode(record):
        case events_pb2.TicketReceived(ticket=t):
            dims = (("all", "all"), ("ticket_type", ticket_pb2.TicketType.Name(t.ticket_type)), ("source", t.source))
            return StageReached(t.ticket_id, "received", local_day(_instant(t.received_at), tz), dims)
        case events_pb2.TicketAssigned() as a:
            dims = (
                ("all", "all"),
                ("ticket_type", ticket_pb2.TicketType.Name(a.ticket_type)),
                ("category", a.assignment.category or "未分类"),
                ("unit_type", events_pb2.UnitType.Name(a.assignment.primary_unit.unit_type)),
                ("method", a.assignment.method),
            )
            return StageReached(a.assignment.ticket_id, "assigned", local_day(_instant(a.received_at), tz), dims,
                                str(a.assignment.dispatch_round or 1))
        case events_pb2.CaseOpened(case=c):
            dims = (("all", "all"), ("unit_type", events_pb2.UnitType.Name(c.primary_unit.unit_type)))
            return StageReached(c.ticket_id, "case_opened", local_day(_instant(c.received_at), tz), dims,
                                str(c.dispatch_round or 1))
        case event if (stage := lifecycle_stage(event)) is not None:
            c = event.case  # type: ignore[attr-defined]
            dims = (("all", "all"), ("unit_type", events_pb2.UnitType.Name(c.primary_unit.unit_type)))
            if isinstance(event, lifecycle_pb2.CaseEvaluated):
                dims += (("resolution", case_pb2.Resolution.Name(event.evaluation.resolution)),
                         ("satisfaction", case_pb2.Satisfaction.Name(event.evaluation.satisfaction)))
            return StageReached(c.ticket_id, stage, local_day(_instant(c.received_at), tz), dims,
                                f"{c.dispatch_round or 1}.{c.redo_round}")
        case _:
            raise Skip(record.event_type)  # a lifecycle event no stage is made of (e.g. a second contact)
    raise PermanentError("wrong_event_type", f"metrics cannot count {record.event_type}")


def _instant(stamp: Timestamp) -> datetime:
    """A protobuf timestamp as a datetime; one outside what a datetime holds is PermanentError."""
    try:
        return pb.dt(stamp)
    except (OverflowError, ValueError) as exc:
        raise PermanentError("schema", f"timestamp {stamp.seconds} s, {stamp.nanos} ns is out of range: {exc}") from exc
