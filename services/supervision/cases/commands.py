"""The lifecycle's command side: every transition, whoever asks (a unit or the office through
HTTP or gRPC, routing or the city through a consumer), becomes a kit Command run through the
CommandBus: one transaction saves the case, stages its events (and the city's result) in the
outbox, writes the audit entry that is the case history, and stores the answer under the
idempotency key.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from hotline import pb
from hotline.auth import Principal
from hotline.calendar import WorkCalendar
from hotline.clock import Clock
from hotline.commands import Command, CommandBus, Invalid
from hotline.mongo import Doc
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2
from services.supervision.cases import lifecycle
from services.supervision.cases.core import open_case
from services.supervision.cases.sla import Limits, SlaClock, Unit, limits_of
from services.supervision.cases.store import CaseClocks, CaseRepository, CaseStore, SlaPolicies, limits_of_doc

MAX_KEY = 200


def target_of(request: Message) -> str:
    if isinstance(request, events_pb2.TicketAssigned):
        return request.assignment.ticket_id
    if isinstance(request, lifecycle_pb2.CityEvaluation):
        return request.city_ticket_id
    return str(getattr(request, "ticket_id", ""))


def reason_of(request: Message) -> str:
    for name in ("reason", "note", "progress", "text", "comment"):
        if name in request.DESCRIPTOR.fields_by_name and (value := getattr(request, name)):
            return str(value)[:500]
    return ""


class CasePolicies:
    """The lifecycle's policy for one command on one case: the extension cap and count
    (max_extensions) of the SLA policy version the case started with, and a re-dispatch's case
    opened under the current version."""

    def __init__(self, base: lifecycle.Policy, store: CaseStore, clocks: CaseClocks) -> None:
        self.base = base
        self.store = store
        self.clocks = clocks

    @property
    def policies(self) -> SlaPolicies:
        return self.clocks.policies

    @property
    def calendar(self) -> WorkCalendar:
        return self.clocks.calendar

    async def for_case(self, ticket_id: str) -> lifecycle.Policy:
        return await self.for_limits(await self.store.limits(ticket_id, self.policies))

    async def for_doc(self, doc: Doc | None) -> lifecycle.Policy:
        """The same from the case document the command loaded (no read of its own)."""
        return await self.for_limits(await limits_of_doc(self.policies, doc) if doc is not None else None)

    async def for_limits(self, limits: Limits | None) -> lifecycle.Policy:
        current = await self.policies.current()
        cap = self.base.limits.extension_max_working_days
        if limits is not None and (period := limits.periods.get(SlaClock.EXTENSION)) and \
                period.unit == Unit.WORKING_DAYS:
            cap = period.amount
        calendar = self.calendar

        def opened(assigned: events_pb2.TicketAssigned, now: datetime) -> events_pb2.Case:
            return open_case(assigned, now, current, calendar)[0]

        most = limits.max_extensions if limits is not None else current.max_extensions
        stops = limits.park_stops if limits is not None else current.park_stops
        report_days = self.base.limits.park_report_days
        progress = (limits.periods if limits is not None else current.defaults).get(SlaClock.PARK_PROGRESS)
        if progress is not None and progress.unit == Unit.DAYS and progress.amount > 0:
            report_days = progress.amount  # 挂账进展: the SLA policy's period
        periods = limits if limits is not None else limits_of(current, [])

        def sub_dispatch_due(start: datetime) -> datetime:  # 加派: the policy's limit for the community
            return periods.due(SlaClock.SUB_DISPATCH, start, calendar)

        return replace(self.base, limits=replace(self.base.limits, extension_max_working_days=cap, max_extensions=most,
                                                 park_stops=tuple(c.value for c in stops),
                                                 park_report_days=report_days, sub_dispatch_due=sub_dispatch_due),
                       open_case=opened)


class CaseCommands:
    def __init__(self, bus: CommandBus, store: CaseStore, policies: CasePolicies, clock: Clock, topic: str) -> None:
        self.bus = bus
        self.store = store
        self.policies = policies
        self.policy = policies.base
        self.clock = clock
        self.topic = topic

    async def run(self, name: str, request: Message, actor: Principal, key: str) -> events_pb2.Case:
        """Run one lifecycle command; raises DomainError when the machine refuses it."""
        ticket_id = target_of(request)
        if not ticket_id:
            raise Invalid("ticket_id is required")
        command = Command(name, ticket_id, actor, key, reason_of(request))
        # evaluations waiting in the inbox can only apply when a review passes (or another evaluation comes)
        inbox = isinstance(request, lifecycle_pb2.ReviewRequest | lifecycle_pb2.CityEvaluation)
        repo = CaseRepository(self.store, self.policies.clocks, inbox)

        async def decide(case: events_pb2.Case | None) -> Any:
            # a case's policy version never changes: its limits come from the document just loaded
            policy = await self.policies.for_doc(repo.doc(ticket_id))
            return lifecycle.decide(case, request, actor, self.clock.now(), policy)
        answer: events_pb2.Case = await self.bus.run(command, repo, decide, self.topic)
        return answer

    async def office_callback(self, ticket_id: str, body: lifecycle_pb2.CityEvaluation, actor: Principal,
                              key: str) -> events_pb2.Case:
        """回访 by the office of a deputy's ticket the deputy did not rate within the deputy_callback
        limit (deputy_closure.py): the evaluation a city callback would be, through the same command."""
        from services.supervision.cases.deputy_closure import office_callback

        case = await self.store.get(ticket_id)
        limits = await self.store.limits(ticket_id, self.policies.policies)
        evaluation = office_callback(case, body, limits, self.policies.calendar, self.clock.now())
        return await self.run("office_callback", evaluation, actor, key)

    async def history(self, ticket_id: str) -> lifecycle_pb2.CaseHistory:
        entries = [history_entry(ticket_id, i, doc) for i, doc in enumerate(await self.store.history(ticket_id))]
        return lifecycle_pb2.CaseHistory(ticket_id=ticket_id, entries=entries)


def _state(doc: Any) -> events_pb2.CaseState.ValueType:
    name = (doc or {}).get("state", "")
    if name not in events_pb2.CaseState.keys():
        return events_pb2.CASE_STATE_UNSPECIFIED
    return events_pb2.CaseState.Value(name)


def history_entry(ticket_id: str, seq: int, doc: dict[str, Any]) -> lifecycle_pb2.CaseHistoryEntry:
    """One audit entry as a line of the case history (案件流转记录)."""
    before, after = doc.get("before") or {}, doc.get("after") or {}
    actor = doc.get("actor") or {}
    opened = doc.get("action") == "open_case"
    to_state = events_pb2.CASE_STATE_AWAITING_SIGN_OFF if opened else _state(after or before)
    latest = after or before
    dispatch_round = int(latest.get("dispatch_round", 0) or 0)
    if opened:  # the consumer's entry id is "<ticket>/opened/<round>"
        dispatch_round = int(str(doc.get("_id", "")).rsplit("/", 1)[-1] or 1) if "/opened/" in str(doc.get("_id")) \
            else 1
    at: datetime | None = doc.get("at")
    return lifecycle_pb2.CaseHistoryEntry(
        ticket_id=ticket_id, seq=seq, at=pb.ts(at) if at else None, action=str(doc.get("action", "")),
        actor=case_pb2.Actor(subject=str(actor.get("subject", "")), role=str(actor.get("role", "")),
                             unit_id=str(actor.get("unit_id", ""))),
        reason=str(doc.get("reason", "")), from_state=_state(before), to_state=to_state,
        dispatch_round=dispatch_round, redo_round=int(latest.get("redo_round", 0) or 0),
        event_type=",".join(doc.get("events", []) or (["hotline.v1.CaseOpened"] if opened else [])),
        detail=str(doc.get("detail", "")),
    )
