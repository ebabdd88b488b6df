"""The lifecycle's command side: every transition, whoever asks (a unit or the office through
HTTP or gRPC, routing or the city through a consumer), is a typed command (:class:`SignOff`,
:class:`Reply`, ..., :class:`OpenCase`) through the service's message bus (hotline/bus.py) to
its one handler (:class:`CaseHandlers`, registered in main by :func:`register`): one
transaction saves the case, stages its events (and the city's result) in the outbox, writes
the audit entry that is the case history, and stores the answer under the idempotency key.

Opening a case is one command in every round: :class:`OpenCase` (routing's TicketAssigned)
opens round 1 and re-dispatches round >= 2 (lifecycle's redispatch) through the same handler;
the consumer sends a batch with ``handle_many`` (one transaction per batch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

from google.protobuf.message import Message

from hotline import pb
from hotline.bus import MessageBus, Request
from hotline.calendar import WorkCalendar
from hotline.clock import Clock
from hotline.commands import Command, Decision, DomainError, Invalid
from hotline.mongo import Doc
from hotline.policy import Role
from hotline.uow import Work
from hotline.v1 import case_pb2, events_pb2, knowledge_pb2, lifecycle_pb2, merging_pb2, park_pb2, routing_pb2
from services.supervision.cases import lifecycle
from services.supervision.cases.core import open_case
from services.supervision.cases.sla import Limits, SlaClock, Unit, limits_of
from services.supervision.cases.store import (
    CaseClocks,
    CaseRepository,
    CaseStore,
    SlaPolicies,
    limits_of_doc,
    sla_extras,
)

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


class CaseCommand(Request[Message]):
    """A lifecycle command: its body is the request message, its target the ticket id."""

    inbox: ClassVar[bool] = False  # evaluations waiting in the inbox may apply (a review, an evaluation)

    @property
    def ticket_id(self) -> str:
        return target_of(self.body)


class SignOff(CaseCommand, message=lifecycle_pb2.SignOffRequest):
    """签收 (primary unit) / 协办签收 (assisting unit)"""


class RecordContact(CaseCommand, message=lifecycle_pb2.RecordContactRequest):
    """联系诉求人"""


class Reply(CaseCommand, message=lifecycle_pb2.ReplyRequest):
    """办结反馈"""


class RequestExtension(CaseCommand, message=lifecycle_pb2.RequestExtensionRequest):
    """延期申请"""


class DecideExtension(CaseCommand, message=lifecycle_pb2.DecideExtensionRequest):
    """延期审批 (office)"""


class Park(CaseCommand, message=lifecycle_pb2.ParkRequest):
    """挂账申请"""


class DecidePark(CaseCommand, message=park_pb2.DecideParkRequest):
    """挂账审批 (office)"""


class Resume(CaseCommand, message=park_pb2.ResumeRequest):
    """恢复办理"""


class ReportProgress(CaseCommand, message=lifecycle_pb2.ReportProgressRequest):
    """挂账进展"""


class RequestReturn(CaseCommand, message=lifecycle_pb2.RequestReturnRequest):
    """退单申请"""


class Review(CaseCommand, message=lifecycle_pb2.ReviewRequest):
    """审核 (office)"""

    inbox = True


class DecideRedo(CaseCommand, message=lifecycle_pb2.DecideRedoRequest):
    """重办或结案 (office)"""


class Contribute(CaseCommand, message=lifecycle_pb2.ContributeRequest):
    """协办意见"""


class WaiveAssist(CaseCommand, message=lifecycle_pb2.WaiveAssistRequest):
    """免于协办 (office)"""


class DirectAnswer(CaseCommand, message=knowledge_pb2.DirectAnswerRequest):
    """直接答复 (office)"""


class ReturnDecision(CaseCommand, message=lifecycle_pb2.ReturnDecision):
    """routing kept or re-dispatched"""


class Evaluate(CaseCommand, message=lifecycle_pb2.CityEvaluation):
    """回访 (the city, a deputy)"""

    inbox = True


class OfficeCallback(CaseCommand, message=lifecycle_pb2.CityEvaluation):
    """回访 by the office (deputy_closure)"""

    inbox = True


class CloseMerged(CaseCommand, message=merging_pb2.CloseMergedRequest):
    """随主单结案: a case merged (并单) under a parent closes with the parent's result (the levels wing asks)"""


class SubDispatch(CaseCommand, message=routing_pb2.SubDispatched):
    """加派: the street sent a task to a community (routing); its limit is a clock of the case"""


class OpenCase(CaseCommand, message=events_pb2.TicketAssigned):
    """派单: round 1 opens, round >= 2 re-dispatches"""

    by_state = True  # a round already opened changes nothing: no stored answer (hotline/bus.py)


LIFECYCLE: tuple[type[CaseCommand], ...] = (
    SignOff, RecordContact, Reply, RequestExtension, DecideExtension, Park, DecidePark, Resume, ReportProgress,
    RequestReturn, Review, DecideRedo, Contribute, WaiveAssist, DirectAnswer, ReturnDecision, Evaluate,
    CloseMerged, SubDispatch)


class CaseHandlers:
    """The one handler of each case command (see :func:`register`). ``done`` hooks run after
    the commit of a case that opened (the open counters)."""

    def __init__(self, store: CaseStore, policies: CasePolicies, clock: Clock, topic: str,
                 opened: Callable[[events_pb2.Case], None] | None = None) -> None:
        self.store = store
        self.policies = policies
        self.clock = clock
        self.topic = topic
        self.opened = opened

    def _work(self, command: CaseCommand, request: Message, decide: Any, repo: CaseRepository,
              done: Callable[[Any], None] | None = None) -> Work[events_pb2.Case]:
        ticket_id = command.ticket_id
        if not ticket_id:
            raise Invalid("ticket_id is required")
        reason = reason_of(request)
        if isinstance(request, events_pb2.TicketAssigned) and not reason:
            reason = f"assigned to {request.assignment.primary_unit.unit_id}"
        envelope = Command(command.name, ticket_id, command.actor, command.idempotency_key, reason)
        return Work(envelope, repo, decide, self.topic, done)

    async def _policy(self, repo: CaseRepository, case: events_pb2.Case | None) -> lifecycle.Policy:
        # a case's policy version never changes: its limits come from the document just loaded
        doc = repo.doc(case.ticket_id) if case is not None else None
        if doc is None and case is not None:  # a state without its document (the in-memory unit of work)
            doc = {"policy_version": case.policy_version, "sla_lanes": list(case.sla_lanes)}
        return await self.policies.for_doc(doc)

    async def lifecycle(self, command: CaseCommand) -> Work[events_pb2.Case]:
        """A unit's, the office's, routing's or the city's transition: lifecycle.decide."""
        repo = CaseRepository(self.store, self.policies.clocks, command.inbox)

        async def decide(case: events_pb2.Case | None) -> Decision[events_pb2.Case]:
            return lifecycle.decide(case, command.body, command.actor, self.clock.now(), await self._policy(repo, case))
        return self._work(command, command.body, decide, repo)

    async def office_callback(self, command: OfficeCallback) -> Work[events_pb2.Case]:
        """回访 by the office of a deputy's ticket the deputy did not rate within the deputy_callback
        limit (deputy_closure.py): the evaluation a city callback would be, decided on the case loaded."""
        from services.supervision.cases.deputy_closure import office_callback

        repo = CaseRepository(self.store, self.policies.clocks, inbox=True)

        async def decide(case: events_pb2.Case | None) -> Decision[events_pb2.Case]:
            now = self.clock.now()
            doc = repo.doc(command.ticket_id) if case is not None else None
            if doc is None and case is not None:
                doc = {"policy_version": case.policy_version, "sla_lanes": list(case.sla_lanes)}
            limits = await limits_of_doc(self.policies.policies, doc) if doc is not None else None
            assert isinstance(command.body, lifecycle_pb2.CityEvaluation)
            evaluation = office_callback(case, command.body, limits, self.policies.calendar, now)
            return lifecycle.decide(case, evaluation, command.actor, now, await self._policy(repo, case))
        return self._work(command, command.body, decide, repo)

    async def open_case(self, command: OpenCase) -> Work[events_pb2.Case]:
        """Routing assigned the ticket: round 1 opens its case under the current SLA policy with
        its clocks; a later round closes this unit's case and opens the next (lifecycle's
        redispatch). A round already opened changes nothing."""
        assigned = command.body
        assert isinstance(assigned, events_pb2.TicketAssigned)  # checked when the command was built
        repo = CaseRepository(self.store, self.policies.clocks)
        now = self.clock.now()

        async def decide(case: events_pb2.Case | None) -> Decision[events_pb2.Case]:
            dispatch_round = assigned.assignment.dispatch_round
            if command.actor.role != Role.SYSTEM:
                raise DomainError("permission_denied", "cases open when routing assigns a ticket, not by a person")
            if case is not None and dispatch_round <= case.dispatch_round:
                return Decision(None, answer=case, unchanged=True)
            if case is not None or dispatch_round > 1:  # re-dispatch (or NotFound: no round to close)
                decision = lifecycle.decide(case, assigned, command.actor, now, await self._policy(repo, case))
                return replace(decision, audit={**decision.audit, "action": "redispatch"})  # 重新派单 in the history
            policy = await self.policies.policies.current()
            opened, limits = open_case(assigned, now, policy, self.policies.calendar)
            repo.opening = sla_extras(limits)  # the city's limit, kept beside the case
            return Decision(opened, events=[events_pb2.CaseOpened(case=opened)], answer=opened,
                            audit={"detail": f"派单 round {dispatch_round}",
                                   "events": [events_pb2.CaseOpened.DESCRIPTOR.full_name]})

        def done(case: Any) -> None:
            if self.opened is not None and isinstance(case, events_pb2.Case):
                self.opened(case)
        return self._work(command, assigned, decide, repo, done)


def register(bus: MessageBus, handlers: CaseHandlers) -> None:
    """Supervision's case commands, one handler each (called from main)."""
    for command_type in LIFECYCLE:
        bus.register(command_type, handlers.lifecycle)
    bus.register(OfficeCallback, handlers.office_callback)
    bus.register(OpenCase, handlers.open_case)


class CaseCommands:
    """The case side of the bus for its adapters: ``handle`` a typed command; ``history``."""

    def __init__(self, bus: MessageBus, store: CaseStore, policies: CasePolicies, clock: Clock, topic: str) -> None:
        self.bus = bus
        self.store = store
        self.policies = policies
        self.policy = policies.base
        self.clock = clock
        self.topic = topic

    async def handle(self, command: CaseCommand) -> events_pb2.Case:
        answer: events_pb2.Case = await self.bus.handle(command)
        return answer

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
    dispatch_round = int(latest.get("dispatch_round", 0) or 0) or (1 if opened else 0)
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
