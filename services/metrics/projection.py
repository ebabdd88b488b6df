"""The KPI projection's pure part: which fact fields one event sets, and how the stored facts
join into :class:`~services.metrics.kpi.CaseFacts` rows.

Facts are kept at three levels, each owned by the events that know them:

* ``ticket`` (key ``<ticket>``): type, address, repeat, received time — TicketReceived;
* ``dispatch`` (key ``<ticket>|<dispatch round>``): unit, category, list item, street, assigned
  time — TicketAssigned; the case's lane and its sign-off and first-contact limits — CaseOpened
  (the SLA policy decided them once: no lane or limit is worked out again here); sign-off,
  first contact, supervision level, return — the lifecycle events on hotline.cases.v1 and routing's ReturnDecision;
* ``handling`` (key ``<ticket>|<dispatch round>|<redo round>``): reply limit, reply, review
  (closure or redo), evaluation — CaseOpened and the lifecycle events.

An update only ``$set``s fields to values taken from the event, or raises a level or the reply
limit with ``$max``,
so applying an event twice changes nothing, and a replay from offset 0 (each ticket's events in
their order on its partition) ends in exactly the same documents. Fields written from two topics
(the unit from TicketAssigned and CaseOpened) get the same value from both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from hotline import pb
from hotline.envelope import EventTypes, Record
from hotline.v1 import (
    case_pb2,
    deputy_escalation_pb2,
    events_pb2,
    lifecycle_pb2,
    park_pb2,
    supervision_pb2,
    ticket_pb2,
)
from services.metrics.kpi import CaseFacts, KpiPolicy
from services.metrics.kpi_items import ITEM_EVENTS, RECORD_EVENTS, item_updates, record_updates

LEVELS = ("ticket", "dispatch", "handling", "whistle", "recurring", "supervision")  # the last three: kpi_items.py
NORMAL_LANE = "normal"  # a case no lane of the SLA policy's case_lanes matched (or not dispatched yet)
UNIT_TYPES = {events_pb2.UNIT_TYPE_STREET: "street", events_pb2.UNIT_TYPE_DEPARTMENT: "department",
              events_pb2.UNIT_TYPE_SOE: "soe", events_pb2.UNIT_TYPE_MANAGEMENT_COMMITTEE: "management_committee",
              events_pb2.UNIT_TYPE_COMMUNITY: "community"}
TICKET_TYPES = {ticket_pb2.TICKET_TYPE_COMPLAINT: "complaint", ticket_pb2.TICKET_TYPE_HELP: "help",
                ticket_pb2.TICKET_TYPE_CONSULTATION: "consultation", ticket_pb2.TICKET_TYPE_SUGGESTION: "suggestion",
                ticket_pb2.TICKET_TYPE_PRAISE: "praise"}
REPLY_RESULTS = {case_pb2.REPLY_RESULT_RESOLVED: "resolved", case_pb2.REPLY_RESULT_PARTLY_RESOLVED: "partly",
                 case_pb2.REPLY_RESULT_NOT_RESOLVABLE: "not_resolvable"}
RESOLUTIONS = {case_pb2.RESOLUTION_RESOLVED: "resolved", case_pb2.RESOLUTION_PARTLY_RESOLVED: "partly",
               case_pb2.RESOLUTION_UNRESOLVED: "unresolved"}
SATISFACTIONS = {case_pb2.SATISFACTION_SATISFIED: "satisfied", case_pb2.SATISFACTION_BASICALLY_SATISFIED: "basic",
                 case_pb2.SATISFACTION_UNSATISFIED: "unsatisfied", case_pb2.SATISFACTION_NOT_REACHED: "not_evaluated"}

# The events the projection reads; any other type on its topics is skipped (Skip), not dead-lettered.
EVENT_TYPES: dict[str, type[Message]] = {m.DESCRIPTOR.full_name: m for m in (
    events_pb2.TicketReceived, events_pb2.TicketAssigned, events_pb2.CaseOpened, lifecycle_pb2.ReturnDecision,
    lifecycle_pb2.CaseSignedOff, lifecycle_pb2.ContactRecorded, lifecycle_pb2.CaseReplied,
    lifecycle_pb2.ExtensionRequested, lifecycle_pb2.ExtensionDecided, lifecycle_pb2.CaseParked,
    lifecycle_pb2.ProgressReported, lifecycle_pb2.ReturnRequested, lifecycle_pb2.ReturnRefused,
    lifecycle_pb2.ReviewDecided, lifecycle_pb2.CaseEvaluated, lifecycle_pb2.RedoDecided, lifecycle_pb2.CaseClosed,
    lifecycle_pb2.AssistContributed, lifecycle_pb2.AssistWaived,
    deputy_escalation_pb2.CaseEscalatedByDeputy,  # raises the supervision level (督办) like any case event
    supervision_pb2.SupervisionRaised,  # any raised level (督办), also of a case closed before it was applied
    *ITEM_EVENTS,  # whistles (吹哨报到) and 屡办不成 items: services/metrics/kpi_items.py
    *RECORD_EVENTS,  # each 督办 record of the case's supervision snapshot (issue #22 figures)
    park_pb2.CaseResumed,  # a parked case resumed: its reply limit moved by the time parked (issue #22)
)}


@dataclass(frozen=True)
class FactUpdate:
    level: str  # ticket | dispatch | handling
    key: str
    set: Mapping[str, Any] = field(default_factory=dict)
    max: Mapping[str, Any] = field(default_factory=dict)


TYPES = EventTypes(*EVENT_TYPES.values())


def decode(record: Record) -> Message:
    """The event; raises Skip for a type the projection does not read (the loop counts it)."""
    return TYPES.decode(record)


def _t(stamp: Any, has: bool = True) -> datetime | None:
    return pb.dt(stamp) if has and (stamp.seconds or stamp.nanos) else None


def _later(reply_due: Any) -> dict[str, datetime]:
    """A reply limit only ever moves later (an approved extension), so it is raised with
    ``$max``: a CaseOpened delivered again after the extension (at-least-once) cannot undo it."""
    due = _t(reply_due)
    return {"reply_due": due} if due else {}


def _dkey(ticket_id: str, dispatch_round: int) -> str:
    return f"{ticket_id}|{max(dispatch_round, 1)}"


def _hkey(ticket_id: str, dispatch_round: int, redo_round: int) -> str:
    return f"{_dkey(ticket_id, dispatch_round)}|{redo_round}"


def _unit(unit: events_pb2.Unit) -> dict[str, Any]:
    return {"unit_id": unit.unit_id, "unit_name": unit.name, "unit_type": UNIT_TYPES.get(unit.unit_type, "")}


def updates(event: Message) -> list[FactUpdate]:
    """The fact updates one event makes (see the module doc)."""
    records = [FactUpdate(level, key, fields) for level, key, fields in record_updates(event)]
    return [*_updates(event), *records]


def _updates(event: Message) -> list[FactUpdate]:
    if (items := item_updates(event)) is not None:
        return [FactUpdate(level, key, fields) for level, key, fields in items]
    if isinstance(event, events_pb2.TicketReceived):
        t = event.ticket
        return [FactUpdate("ticket", t.ticket_id, {
            "ticket_type": TICKET_TYPES.get(t.ticket_type, ""), "address": t.address, "reported_street": t.street,
            "repeat": bool(t.repeat_of), "received_at": _t(t.received_at)})]
    if isinstance(event, events_pb2.TicketAssigned):
        a = event.assignment
        return [FactUpdate("dispatch", _dkey(a.ticket_id, a.dispatch_round), {
            **_unit(a.primary_unit), "category": a.category, "list_item": a.rule_id, "street": event.street,
            "assigned_at": _t(a.assigned_at)})]
    if isinstance(event, events_pb2.CaseOpened):
        c = event.case
        return [
            FactUpdate("dispatch", _dkey(c.ticket_id, c.dispatch_round),
                       {**_unit(c.primary_unit), "sign_off_due": _t(c.sign_off_due),
                        "contact_due": _t(c.contact_due), "lane": c.lane or NORMAL_LANE},
                       {"supervision_level": c.supervision_level}),
            FactUpdate("handling", _hkey(c.ticket_id, c.dispatch_round, 0), {}, _later(c.reply_due)),
        ]
    if isinstance(event, lifecycle_pb2.ReturnDecision):
        if not event.approved:
            return []
        return [FactUpdate("dispatch", _dkey(event.ticket_id, event.dispatch_round), {"returned": True})]
    case = getattr(event, "case", None)
    if not isinstance(case, events_pb2.Case) or not case.ticket_id:  # (a SupervisionRaised of before it had one)
        return []
    return _lifecycle(event, case)


def _lifecycle(event: Message, c: events_pb2.Case) -> list[FactUpdate]:
    tid, dr = c.ticket_id, c.dispatch_round
    at = _t(getattr(event, "occurred_at"))  # noqa: B009 - every lifecycle event has it
    out = [FactUpdate("dispatch", _dkey(tid, dr), {}, {"supervision_level": c.supervision_level})]

    def handling(redo_round: int, values: dict[str, Any]) -> None:
        out.append(FactUpdate("handling", _hkey(tid, dr, redo_round), values))

    def next_handling() -> None:  # a redo: the new round's limit
        out.append(FactUpdate("handling", _hkey(tid, dr, c.redo_round), {}, _later(c.reply_due)))

    if isinstance(event, lifecycle_pb2.CaseSignedOff) and not event.assisting:
        out.append(FactUpdate("dispatch", _dkey(tid, dr), {"signed_off_at": _t(c.signed_off_at) or at}))
    elif isinstance(event, lifecycle_pb2.ContactRecorded) and event.first:
        out.append(FactUpdate("dispatch", _dkey(tid, dr),
                              {"first_contact_at": _t(c.first_contact_at) or _t(event.contact.contacted_at) or at}))
    elif isinstance(event, lifecycle_pb2.CaseReplied):
        r = event.reply
        handling(r.redo_round, {"replied_at": _t(r.replied_at) or at, "reply_result": REPLY_RESULTS.get(r.result, ""),
                                **({"direct_answer": True} if r.article.article_id else {})})
    elif isinstance(event, lifecycle_pb2.ExtensionDecided) and event.approved or \
            isinstance(event, park_pb2.CaseResumed):
        out.append(FactUpdate("handling", _hkey(tid, dr, c.redo_round), {}, _later(c.reply_due)))
    elif isinstance(event, lifecycle_pb2.ReviewDecided):
        reviewed = event.review.redo_round
        if event.passed:  # 办结: the reply passed the review; it is on time when made by its limit
            handling(reviewed, {"closed_at": _t(c.reply.replied_at) or at})
        else:
            handling(reviewed, {"redone": True})
            next_handling()
    elif isinstance(event, lifecycle_pb2.CaseEvaluated):
        e = event.evaluation
        satisfaction = SATISFACTIONS.get(e.satisfaction, "")
        resolution = RESOLUTIONS.get(e.resolution, "not_reached" if satisfaction == "not_evaluated" else "")
        handling(e.redo_round, {"evaluated_at": _t(e.evaluated_at) or at, "resolution": resolution,
                                "satisfaction": satisfaction})
    elif isinstance(event, lifecycle_pb2.RedoDecided) and event.redo:
        handling(c.redo_round - 1, {"redone": True})
        next_handling()
    elif isinstance(event, lifecycle_pb2.CaseClosed) and event.closure == case_pb2.CLOSURE_REDISPATCHED:
        out.append(FactUpdate("dispatch", _dkey(tid, dr), {"returned": True}))
    return out


def fold(batch: Iterable[FactUpdate]) -> dict[tuple[str, str], FactUpdate]:
    """The updates of a batch merged per document, in order: one write per document."""
    merged: dict[tuple[str, str], FactUpdate] = {}
    for u in batch:
        before = merged.get((u.level, u.key))
        if before is None:
            merged[(u.level, u.key)] = FactUpdate(u.level, u.key, dict(u.set), dict(u.max))
            continue
        sets = {**before.set, **u.set}
        maxes = dict(before.max)
        for name, value in u.max.items():
            maxes[name] = max(value, maxes.get(name, value))
        merged[(u.level, u.key)] = FactUpdate(u.level, u.key, sets, maxes)
    return merged


def assemble(tickets: Mapping[str, Mapping[str, Any]], dispatches: Mapping[str, Mapping[str, Any]],
             handlings: Mapping[str, Mapping[str, Any]], policy: KpiPolicy) -> list[CaseFacts]:
    """Join the stored levels into one CaseFacts row per handling (a dispatch without a handling
    document yet is its redo round 0)."""
    rounds: dict[str, list[tuple[int, Mapping[str, Any]]]] = {key: [] for key in dispatches}
    for key, doc in handlings.items():
        dkey, _, redo = key.rpartition("|")
        rounds.setdefault(dkey, []).append((int(redo), doc))
    dispatched = {key.rpartition("|")[0] for key in rounds}
    for ticket_id in tickets:  # a ticket not dispatched yet still counts as received
        if ticket_id not in dispatched:
            rounds[_dkey(ticket_id, 1)] = []
    rows = []
    for dkey, handled in sorted(rounds.items()):
        ticket_id, _, dispatch_round = dkey.rpartition("|")
        t, d = tickets.get(ticket_id, {}), dispatches.get(dkey, {})
        common = dict(
            ticket_id=ticket_id, dispatch_round=int(dispatch_round),
            ticket_type=t.get("ticket_type", ""), category=d.get("category", ""), list_item=d.get("list_item", ""),
            street=d.get("street") or t.get("reported_street", ""), address=t.get("address", ""),
            lane=d.get("lane") or NORMAL_LANE, repeat=bool(t.get("repeat", False)), received_at=t.get("received_at"),
            unit_id=d.get("unit_id", ""), unit_name=d.get("unit_name", ""), unit_type=d.get("unit_type", ""),
            supervision_level=int(d.get("supervision_level", 0)), assigned_at=d.get("assigned_at"),
            sign_off_due=d.get("sign_off_due"), signed_off_at=d.get("signed_off_at"),
            first_contact_due=d.get("contact_due"),  # the case's own 首次联系时限
            first_contact_at=d.get("first_contact_at"), returned=bool(d.get("returned", False)),
        )
        for redo_round, h in sorted(handled, key=lambda x: x[0]) or [(0, {})]:
            rows.append(CaseFacts(
                **common, redo_round=redo_round, reply_due=h.get("reply_due"), replied_at=h.get("replied_at"),
                reply_result=h.get("reply_result", ""), redone=bool(h.get("redone", False)),
                close_due=h.get("reply_due"), closed_at=h.get("closed_at"), evaluated_at=h.get("evaluated_at"),
                resolution=h.get("resolution", ""), satisfaction=h.get("satisfaction", ""),
                direct_answer=bool(h.get("direct_answer", False))))
    return rows


def apply(docs: dict[str, dict[str, dict[str, Any]]], update: FactUpdate) -> None:
    """The store's semantics of one update on in-memory documents (level -> key -> fields):
    ``$set`` then ``$max``, creating the document when missing."""
    doc = docs.setdefault(update.level, {}).setdefault(update.key, {})
    doc.update(update.set)
    for name, value in update.max.items():
        doc[name] = max(value, doc.get(name, value))
