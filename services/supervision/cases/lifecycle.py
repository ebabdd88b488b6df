"""The case lifecycle (案件流转): a pure, table-driven state machine. No I/O.

``decide(case, request, actor, now, policy)`` takes the stored case (or None), one request
(a SupervisionService request message, a city evaluation, a routing decision or a re-dispatch)
and who asks, and returns the kit's :class:`~hotline.commands.Decision`: the case after the
transition, one typed event per transition (lifecycle.proto) and, when a reply passes review,
the result for the city (回传). It refuses with a :class:`~hotline.commands.DomainError`:

* ``not_found`` - no such case, or a unit asks about a case it neither handles nor assists;
* ``permission_denied`` - a unit acting for another unit (only the primary replies, only an
  assisting unit contributes) or a unit doing the office's part;
* ``invalid_argument`` - a malformed request (no reason, 12 extension days, no reply text...);
* ``failed_precondition`` - the action is not allowed in the case's state (the message names
  the states that allow it, from :data:`ALLOWED`), or a rule of that state is not met
  (a second extension, a return after its limit, assisting units still to contribute...).

The transitions (events.proto ``CaseState``; the table :data:`ALLOWED` is the reference)::

    AWAITING_SIGN_OFF  --sign_off-->            IN_PROGRESS (or SENT_BACK when redoing)
    AWAITING_SIGN_OFF, IN_PROGRESS --request_return--> RETURN_REQUESTED
    RETURN_REQUESTED   --refuse_return-->       where it was;  any open state --redispatch--> ARCHIVED + new case
    IN_PROGRESS, SENT_BACK --request_extension--> EXTENSION_REQUESTED --decide_extension--> back (deadline moved)
    IN_PROGRESS, SENT_BACK --park-->            the same state, a park request (挂账申请; the clocks run)
    IN_PROGRESS, SENT_BACK --decide_park-->     PARKED when the office approves (the policy's park_stops
                                                clocks stop), else where it was (--report_progress--> PARKED)
    PARKED             --resume-->              IN_PROGRESS / SENT_BACK (the stopped limits move by the time parked)
    IN_PROGRESS, SENT_BACK, PARKED --reply-->   REPLIED
    AWAITING_SIGN_OFF, IN_PROGRESS, SENT_BACK, PARKED --direct_answer--> REPLIED (office, consultation, article)
    REPLIED            --review pass-->         REPORTED (CityResult to the city)
    REPLIED            --review fail-->         SENT_BACK (redo_round + 1, new limit)
    REPORTED           --evaluate-->            ARCHIVED (satisfied) or EVALUATED (unresolved / unsatisfied)
    EVALUATED          --decide_redo-->         SENT_BACK (redo) or ARCHIVED (closed with an explanation)
    any open state     --close_merged-->        ARCHIVED (并单: closes with its parent's result, CLOSURE_MERGED)

Deadlines in working days go through :class:`Deadlines` only (one call into the calendar).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeAlias
from zoneinfo import ZoneInfo

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from hotline import pb
from hotline.auth import Principal
from hotline.calendar import WorkCalendar
from hotline.commands import Decision, DomainError, Illegal, Invalid, NotFound
from hotline.envelope import JSON, Event
from hotline.policy import Role
from hotline.settings import LimitSettings
from hotline.v1 import (
    case_pb2,
    clock_events_pb2,
    events_pb2,
    knowledge_pb2,
    lifecycle_pb2,
    merging_pb2,
    park_pb2,
    routing_pb2,
    ticket_pb2,
)

CS = events_pb2  # CaseState values: CS.CASE_STATE_IN_PROGRESS ...
State: TypeAlias = events_pb2.CaseState.ValueType

AWAITING_SIGN_OFF = CS.CASE_STATE_AWAITING_SIGN_OFF
IN_PROGRESS = CS.CASE_STATE_IN_PROGRESS
RETURN_REQUESTED = CS.CASE_STATE_RETURN_REQUESTED
EXTENSION_REQUESTED = CS.CASE_STATE_EXTENSION_REQUESTED
PARKED = CS.CASE_STATE_PARKED
REPLIED = CS.CASE_STATE_REPLIED
SENT_BACK = CS.CASE_STATE_SENT_BACK
REPORTED = CS.CASE_STATE_REPORTED
EVALUATED = CS.CASE_STATE_EVALUATED
ARCHIVED = CS.CASE_STATE_ARCHIVED
STATES: tuple[State, ...] = (AWAITING_SIGN_OFF, IN_PROGRESS, RETURN_REQUESTED, EXTENSION_REQUESTED, PARKED,
                             REPLIED, SENT_BACK, REPORTED, EVALUATED, ARCHIVED)
LABELS = {
    AWAITING_SIGN_OFF: "待签收", IN_PROGRESS: "办理中", RETURN_REQUESTED: "退单申请中",
    EXTENSION_REQUESTED: "延期申请中",
    PARKED: "挂账", REPLIED: "已反馈待审核", SENT_BACK: "重办", REPORTED: "已回传待回访", EVALUATED: "已回访待决定",
    ARCHIVED: "已归档",
}


class Action(StrEnum):
    SIGN_OFF = "sign_off"  # 签收 (primary unit)
    ASSIST_SIGN_OFF = "assist_sign_off"  # 协办签收 (assisting unit, its sub-case)
    RECORD_CONTACT = "record_contact"  # 联系诉求人
    REPLY = "reply"  # 办结反馈
    REQUEST_EXTENSION = "request_extension"  # 延期申请
    DECIDE_EXTENSION = "decide_extension"  # 延期审批 (office)
    PARK = "park"  # 挂账申请 (the unit asks; issue #22)
    DECIDE_PARK = "decide_park"  # 挂账审批 (office)
    RESUME = "resume"  # 恢复办理 (the unit or the office)
    REPORT_PROGRESS = "report_progress"  # 挂账进展
    REQUEST_RETURN = "request_return"  # 退单申请
    REFUSE_RETURN = "refuse_return"  # routing kept the ticket with the unit
    REDISPATCH = "redispatch"  # routing dispatched the ticket again (dispatch_round + 1)
    REVIEW = "review"  # 审核 (office)
    EVALUATE = "evaluate"  # 回访 (the city)
    DECIDE_REDO = "decide_redo"  # 重办或结案 (office)
    CONTRIBUTE = "contribute"  # 协办意见 (assisting unit)
    WAIVE_ASSIST = "waive_assist"  # 免于协办 (office)
    DIRECT_ANSWER = "direct_answer"  # 直接答复: the office answers a consultation with a knowledge article
    CLOSE_MERGED = "close_merged"  # 随主单结案: a merged case (并单) closes with its parent (the levels wing asks)
    SUB_DISPATCH = "sub_dispatch"  # 加派: routing's SubDispatched; the community's limit becomes a clock of the case


HANDLING = frozenset({IN_PROGRESS, SENT_BACK})
ASSIST_OPEN = frozenset({AWAITING_SIGN_OFF, IN_PROGRESS, EXTENSION_REQUESTED, PARKED, SENT_BACK})
OPEN = frozenset(STATES) - {ARCHIVED}

# THE table: the states in which each action is allowed. Everything else is refused.
ALLOWED: dict[Action, frozenset[State]] = {
    Action.SIGN_OFF: frozenset({AWAITING_SIGN_OFF}),
    Action.ASSIST_SIGN_OFF: ASSIST_OPEN,
    Action.RECORD_CONTACT: frozenset({IN_PROGRESS, SENT_BACK, EXTENSION_REQUESTED, PARKED, RETURN_REQUESTED}),
    Action.REPLY: frozenset({IN_PROGRESS, SENT_BACK, PARKED}),
    Action.REQUEST_EXTENSION: HANDLING,
    Action.DECIDE_EXTENSION: frozenset({EXTENSION_REQUESTED}),
    Action.PARK: HANDLING,
    Action.DECIDE_PARK: HANDLING,
    Action.RESUME: frozenset({PARKED}),
    Action.REPORT_PROGRESS: frozenset({PARKED}),
    Action.REQUEST_RETURN: frozenset({AWAITING_SIGN_OFF, IN_PROGRESS}),
    Action.REFUSE_RETURN: frozenset({RETURN_REQUESTED}),
    Action.REDISPATCH: OPEN,
    Action.REVIEW: frozenset({REPLIED}),
    Action.EVALUATE: frozenset({REPORTED}),
    Action.DECIDE_REDO: frozenset({EVALUATED}),
    Action.CONTRIBUTE: ASSIST_OPEN,
    Action.WAIVE_ASSIST: ASSIST_OPEN,
    Action.DIRECT_ANSWER: frozenset({AWAITING_SIGN_OFF, IN_PROGRESS, SENT_BACK, PARKED}),
    Action.CLOSE_MERGED: OPEN,
    Action.SUB_DISPATCH: ASSIST_OPEN,
}

# Who acts: the primary unit, an assisting unit, the office, or the platform (consumers).
PRIMARY, ASSISTING, OFFICE, SYSTEM = "primary unit", "assisting unit", "office", "system"
ACTOR_OF: dict[Action, str] = {
    Action.SIGN_OFF: PRIMARY, Action.ASSIST_SIGN_OFF: ASSISTING, Action.RECORD_CONTACT: PRIMARY,
    Action.REPLY: PRIMARY, Action.REQUEST_EXTENSION: PRIMARY, Action.DECIDE_EXTENSION: OFFICE,
    Action.PARK: PRIMARY, Action.DECIDE_PARK: OFFICE, Action.RESUME: "primary unit or office",
    Action.REPORT_PROGRESS: PRIMARY, Action.REQUEST_RETURN: PRIMARY,
    Action.REFUSE_RETURN: SYSTEM, Action.REDISPATCH: SYSTEM, Action.REVIEW: OFFICE, Action.EVALUATE: SYSTEM,
    Action.DECIDE_REDO: OFFICE, Action.CONTRIBUTE: ASSISTING, Action.WAIVE_ASSIST: OFFICE,
    Action.DIRECT_ANSWER: OFFICE, Action.CLOSE_MERGED: SYSTEM, Action.SUB_DISPATCH: SYSTEM,
}
OFFICE_ROLES = frozenset({Role.OFFICE, Role.ADMIN})
CITY = case_pb2.Actor(subject="city:callback-centre", role=str(Role.SYSTEM))  # who evaluates (回访)
# a deputy's ticket: the deputy's rating, or the office's callback (deputy_closure.py), by evaluation id
EVALUATORS = {"deputy/": case_pb2.Actor(subject="system:deputy_liaison", role=str(Role.SYSTEM)),
              "office-callback/": case_pb2.Actor(subject="office:callback", role=str(Role.OFFICE))}


def evaluator(evaluation_id: str) -> case_pb2.Actor:
    return next((actor for prefix, actor in EVALUATORS.items() if evaluation_id.startswith(prefix)), CITY)


class Deadlines(Protocol):
    """The one door to the working-day calendar and the rule for periods."""

    def working_days_after(self, start: datetime, days: int) -> datetime: ...

    def extended(self, due: datetime, days: int) -> datetime: ...


@dataclass(frozen=True)
class PeriodDeadlines:
    """Deadlines by the rule for periods (calendar.py): 24:00 local of the N-th working day
    after the day the clock starts."""

    calendar: WorkCalendar

    def working_days_after(self, start: datetime, days: int) -> datetime:
        return pb.millis(self.calendar.working_days_end(start, days).astimezone(UTC))

    def extended(self, due: datetime, days: int) -> datetime:
        """A deadline moved by ``days`` working days (延期): counted from the day the old period
        ended on (a period ending at 24:00 ends on that day, not on the next)."""
        return self.working_days_after(due - timedelta(milliseconds=1), days)


@dataclass(frozen=True)
class Limits:
    """The lifecycle's limits: the extension cap comes from the case's SLA policy
    (services/supervision/cases/sla.py), the rest from settings.limits."""

    extension_max_working_days: int = 10  # 延期: at most 10 working days each
    max_extensions: int = 1  # 延期: how many a dispatch round may ask (the SLA policy's max_extensions)
    redo_working_days: int = 5  # 重办: the new limit when none is given
    redo_max_working_days: int = 30
    park_report_days: int = 30  # 挂账: a progress report every month (the SLA policy's park_progress, in days)
    park_stops: tuple[str, ...] = ("contact", "reply")  # the clocks a parked case stops (SLA policy park_stops)
    park_max_days: int = 731  # a target date at most two years ahead
    # 加派: the community's limit from the sub-dispatch (the SLA policy's sub_dispatch); None: 2 working days
    sub_dispatch_due: Callable[[datetime], datetime] | None = None
    contact_skew: timedelta = timedelta(minutes=5)  # a contact time may be this far ahead of the clock

    @classmethod
    def of(cls, settings: LimitSettings, extension_max_working_days: int = 10) -> Limits:
        return cls(extension_max_working_days=extension_max_working_days,
                   redo_working_days=settings.redo_working_days,
                   park_report_days=settings.park_report_days)


@dataclass(frozen=True)
class Policy:
    deadlines: Deadlines
    tz: ZoneInfo
    open_case: Callable[[events_pb2.TicketAssigned, datetime], events_pb2.Case]  # core.open_case, current policy
    limits: Limits = field(default_factory=Limits)
    results_topic: str = "city.results.v1"  # where CityResults go (full name, prefix applied)


def action_of(request: Message, case: events_pb2.Case | None, actor: Principal) -> Action:
    """Which action a request is; SignOff is the primary's or an assisting unit's by who signs."""
    if isinstance(request, lifecycle_pb2.SignOffRequest):
        if case is not None and actor.role == Role.UNIT and actor.unit_id != case.primary_unit.unit_id \
                and _assist(case, actor.unit_id) is not None:
            return Action.ASSIST_SIGN_OFF
        return Action.SIGN_OFF
    if isinstance(request, lifecycle_pb2.ReturnDecision):
        return Action.REFUSE_RETURN
    try:
        return REQUESTS[type(request)]
    except KeyError:
        raise TypeError(f"not a lifecycle request: {type(request).__name__}") from None


def refusal(action: Action, state: State) -> DomainError:
    allowed = ", ".join(f"{CS.CaseState.Name(s)} ({LABELS[s]})" for s in STATES if s in ALLOWED[action])
    return Illegal(f"{action} is not allowed while the case is {CS.CaseState.Name(state)} ({LABELS[state]}); "
                   f"it is allowed in: {allowed}")


def check_state(action: Action, case: events_pb2.Case) -> None:
    if case.state not in ALLOWED[action]:
        raise refusal(action, case.state)


def check_actor(action: Action, case: events_pb2.Case, actor: Principal) -> None:
    """Scope (a unit sees only cases it handles or assists: else not found) and own actions."""
    if actor.role == Role.UNIT:
        involved = actor.unit_id == case.primary_unit.unit_id or _assist(case, actor.unit_id) is not None
        if not involved:
            raise NotFound("case", case.ticket_id)
    who = ACTOR_OF[action]
    if who == "primary unit or office":
        if actor.role in OFFICE_ROLES:
            return
        who = PRIMARY
    if who == SYSTEM:
        if actor.role != Role.SYSTEM:
            raise DomainError("permission_denied", f"{action} is done by the platform, not by a person")
    elif who == OFFICE:
        if actor.role not in OFFICE_ROLES:
            raise DomainError("permission_denied", f"{action} is the district office's (区12345热线办) decision")
    elif actor.role != Role.UNIT:
        raise DomainError("permission_denied", f"{action} is done by the {who}")
    elif who == PRIMARY and actor.unit_id != case.primary_unit.unit_id:
        raise DomainError("permission_denied", f"{action} is done by the primary unit "
                                               f"{case.primary_unit.unit_id}, not by {actor.unit_id}")
    elif who == ASSISTING and _assist(case, actor.unit_id) is None:
        raise DomainError("permission_denied", f"{action} is done by an assisting unit (协办单位) of the case")


def decide(
    case: events_pb2.Case | None, request: Message, actor: Principal, now: datetime, policy: Policy,
) -> Decision[events_pb2.Case]:
    """Apply one request to the case: see the module doc."""
    ticket_id = str(getattr(request, "ticket_id", "") or getattr(request, "city_ticket_id", ""))
    if isinstance(request, events_pb2.TicketAssigned):
        ticket_id = request.assignment.ticket_id
    if isinstance(request, lifecycle_pb2.CityEvaluation):
        return _evaluate(case, request, now, policy)
    if case is None:
        raise NotFound("case", ticket_id)
    action = action_of(request, case, actor)
    check_actor(action, case, actor)
    validate(action, request, policy)
    if isinstance(request, lifecycle_pb2.ReturnDecision) and request.approved:
        return _approve_return(case, request, now)
    if isinstance(request, events_pb2.TicketAssigned) and request.assignment.dispatch_round <= case.dispatch_round:
        return Decision(None, answer=case, audit={"detail": "dispatch round already opened"})
    check_state(action, case)
    step = Step(case, actor, now, policy)
    HANDLERS[action](step, request)
    return step.decision()


# ------------------------------------------------------------------------------------ validation


def _reason(text: str, what: str = "a reason") -> None:
    if not text.strip():
        raise Invalid(f"{what} is required")
    if len(text) > 5000:
        raise Invalid(f"{what} is too long (at most 5,000 characters)")


def _attachments(items: Sequence[case_pb2.Attachment]) -> None:
    if len(items) > 20:
        raise Invalid("at most 20 attachments")
    for a in items:
        if not a.uri.strip() or len(a.uri) > 2000:
            raise Invalid("every attachment needs a uri (at most 2,000 characters)")


def _enum_set(value: int, enum: Any, what: str) -> None:
    if value == 0 or value not in enum.values():
        names = ", ".join(n for n in enum.keys() if not n.endswith("UNSPECIFIED"))
        raise Invalid(f"{what} is required (one of {names})")


def validate(action: Action, request: Any, policy: Policy) -> None:
    """Checks that need only the request (before the state is looked at)."""
    limits = policy.limits
    match action:
        case Action.RECORD_CONTACT:
            _enum_set(request.channel, case_pb2.ContactChannel, "channel")
            _enum_set(request.outcome, case_pb2.ContactOutcome, "outcome")
            if len(request.note) > 5000:
                raise Invalid("note is too long")
        case Action.REPLY:
            _enum_set(request.result, case_pb2.ReplyResult, "result")
            _reason(request.text, "the reply text (办理结果)")
            if request.result == case_pb2.REPLY_RESULT_NOT_RESOLVABLE:
                _reason(request.explanation, "an explanation (解释说明) of why it cannot be resolved")
            _attachments(request.attachments)
        case Action.DIRECT_ANSWER:
            _reason(request.text, "the answer text (答复内容)")
            if not request.article.article_id.strip() or request.article.version < 1:
                raise Invalid("a direct answer names the knowledge article (article_id and version) it answers with")
        case Action.REQUEST_EXTENSION:
            if not 1 <= request.working_days <= limits.extension_max_working_days:
                raise Invalid(f"an extension is 1 to {limits.extension_max_working_days} working days, "
                              f"not {request.working_days}")
            _reason(request.reason)
        case Action.DECIDE_EXTENSION:
            if request.working_days < 0:
                raise Invalid("working_days cannot be negative")
            if not request.approved:
                _reason(request.reason, "a reason for the rejection")
        case Action.PARK:
            _reason(request.plan, "a plan (解决计划)")
            _reason(request.reason)
            try:
                date.fromisoformat(request.target_date)
            except ValueError:
                raise Invalid(f"target_date must be YYYY-MM-DD, not {request.target_date!r}") from None
        case Action.DECIDE_PARK:
            if not request.approved:
                _reason(request.reason, "a reason for the refusal")
        case Action.REPORT_PROGRESS:
            _reason(request.progress, "the progress")
            _attachments(request.attachments)
        case Action.REQUEST_RETURN:
            _reason(request.reason, "a reason for the return (退单理由)")
        case Action.REVIEW | Action.DECIDE_REDO:
            if action == Action.DECIDE_REDO:
                _reason(request.reason, "what to redo" if request.redo else "an explanation (解释说明) for closing")
            elif not request.passed:
                _reason(request.reason, "what to redo (重办理由)")
            if not 0 <= request.redo_working_days <= limits.redo_max_working_days:
                raise Invalid(f"redo_working_days must be 0..{limits.redo_max_working_days}")
        case Action.CONTRIBUTE:
            _reason(request.text, "the contribution (协办意见)")
            _attachments(request.attachments)
        case Action.WAIVE_ASSIST:
            if not request.unit_id:
                raise Invalid("unit_id of the assisting unit is required")
            _reason(request.reason)
        case Action.SIGN_OFF | Action.ASSIST_SIGN_OFF:
            if len(request.note) > 5000:
                raise Invalid("note is too long")
        case _:
            pass


# ------------------------------------------------------------------------------------ transitions


def _ts(when: datetime) -> Timestamp:
    stamp = pb.ts(when)
    assert stamp is not None
    return stamp


def _actor(p: Principal) -> case_pb2.Actor:
    return case_pb2.Actor(subject=p.subject, role=str(p.role), unit_id=p.unit_id)


def _assist(case: events_pb2.Case, unit_id: str) -> case_pb2.AssistTask | None:
    for task in case.assists:
        if task.unit_id == unit_id:
            return task
    return None


def handling_state(case: events_pb2.Case) -> State:
    """Where a case handled by its unit sits: redoing (重办) after a redo, else in progress."""
    return SENT_BACK if case.redo_round > 0 else IN_PROGRESS


def result_id(case: events_pb2.Case) -> str:
    return f"{case.ticket_id}/result/{case.dispatch_round}/{case.redo_round}"


class Step:
    """One decision under way: the case being changed and the events it yields."""

    def __init__(self, before: events_pb2.Case, actor: Principal, now: datetime, policy: Policy) -> None:
        self.case = events_pb2.Case()
        self.case.CopyFrom(before)
        self.actor = actor
        self.now = now
        self.policy = policy
        self.events: list[Message] = []
        self.outbound: list[Event] = []  # for other topics: the city's result
        self.details: list[str] = []
        self.changed = True

    def emit(self, event_type: type[Message], state: State, reason: str = "", detail: str = "",
             actor: case_pb2.Actor | None = None, **fields: Any) -> Message:
        """Move the case to ``state`` and record the event of this transition."""
        self.case.state = state
        self.case.revision += 1
        self.case.updated_at.CopyFrom(_ts(self.now))
        snapshot = events_pb2.Case()
        snapshot.CopyFrom(self.case)
        common = {"case": snapshot, "actor": actor or _actor(self.actor), "reason": reason,
                  "occurred_at": pb.ts(self.now)}
        names = event_type.DESCRIPTOR.fields_by_name  # CaseOpened (events.proto) carries the case only
        event = event_type(**{k: v for k, v in common.items() if k in names}, **fields)
        self.events.append(event)
        self.details.append(detail or event_type.DESCRIPTOR.name)
        return event

    def working_days(self, days: int, start: datetime | None = None) -> datetime:
        return self.policy.deadlines.working_days_after(start or self.now, days)

    def decision(self) -> Decision[events_pb2.Case]:
        if not self.changed:  # nothing to save (e.g. a stale or repeated 加派)
            return Decision(None, answer=self.case, audit={"detail": "; ".join(self.details)})
        return Decision(self.case, events=list(self.events), answer=self.case, outbound=list(self.outbound),
                        audit={"detail": "; ".join(self.details),
                               "events": [e.DESCRIPTOR.full_name for e in self.events]})


def _sign_off(step: Step, request: lifecycle_pb2.SignOffRequest) -> None:
    c = step.case
    c.signed_off_at.CopyFrom(_ts(step.now))
    on_time = step.now <= pb.dt(c.sign_off_due)
    step.emit(lifecycle_pb2.CaseSignedOff, IN_PROGRESS, request.note, f"签收 by {step.actor.unit_id}",
              unit_id=step.actor.unit_id, assisting=False, on_time=on_time)


def _assist_sign_off(step: Step, request: lifecycle_pb2.SignOffRequest) -> None:
    task = _assist(step.case, step.actor.unit_id)
    assert task is not None
    if task.state != case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF:
        raise Illegal(f"the sub-case of {task.unit_id} is {case_pb2.AssistState.Name(task.state)}, "
                      "not awaiting sign-off")
    task.state = case_pb2.ASSIST_STATE_SIGNED_OFF
    task.signed_off_at.CopyFrom(_ts(step.now))
    on_time = not task.HasField("sign_off_due") or step.now <= pb.dt(task.sign_off_due)
    step.emit(lifecycle_pb2.CaseSignedOff, step.case.state, request.note, f"协办签收 by {task.unit_id}",
              unit_id=task.unit_id, assisting=True, on_time=on_time)


def _record_contact(step: Step, request: lifecycle_pb2.RecordContactRequest) -> None:
    c = step.case
    at = pb.dt(request.contacted_at) if request.HasField("contacted_at") else step.now
    if at > step.now + step.policy.limits.contact_skew:
        raise Invalid("contacted_at is in the future")
    if c.HasField("received_at") and at < pb.dt(c.received_at):
        raise Invalid("contacted_at is before the ticket was received")
    contact = case_pb2.Contact(contacted_at=pb.ts(at), channel=request.channel, outcome=request.outcome,
                               note=request.note)
    first = not c.HasField("first_contact_at")
    if first:
        c.first_contact_at.CopyFrom(_ts(at))
        c.first_contact.CopyFrom(contact)
    c.last_contact.CopyFrom(contact)
    c.contacts += 1
    step.emit(lifecycle_pb2.ContactRecorded, c.state, request.note,
              f"联系 {case_pb2.ContactChannel.Name(request.channel)} {case_pb2.ContactOutcome.Name(request.outcome)}",
              contact=contact, first=first)


def _reply(step: Step, request: lifecycle_pb2.ReplyRequest) -> None:
    c = step.case
    if not c.HasField("first_contact_at"):
        raise Illegal("record the contact with the citizen (联系诉求人) before replying")
    waiting = [t.unit_id for t in c.assists
               if t.state not in (case_pb2.ASSIST_STATE_CONTRIBUTED, case_pb2.ASSIST_STATE_WAIVED)]
    if waiting:
        raise Illegal(f"assisting units have not contributed yet: {', '.join(waiting)} "
                      "(the office may waive them: WaiveAssist)")
    reply = case_pb2.Reply(result=request.result, text=request.text, explanation=request.explanation,
                           attachments=request.attachments, replied_at=pb.ts(step.now), redo_round=c.redo_round,
                           on_time=step.now <= pb.dt(c.reply_due))
    c.reply.CopyFrom(reply)
    c.replied_at.CopyFrom(_ts(step.now))
    step.emit(lifecycle_pb2.CaseReplied, REPLIED, "", f"办结反馈 {case_pb2.ReplyResult.Name(request.result)}",
              reply=reply)


def _direct_answer(step: Step, request: knowledge_pb2.DirectAnswerRequest) -> None:
    """直接答复: the office replies to a consultation (咨询) with a knowledge article. A reply like
    any other (CaseReplied, then the district review and the result to the city), carrying the
    article it quotes; no contact with the citizen is needed (the article answers the question)."""
    c = step.case
    if c.ticket_type != ticket_pb2.TICKET_TYPE_CONSULTATION:
        raise Illegal("only a consultation (咨询) can be answered directly from the knowledge base; "
                      f"this ticket is {ticket_pb2.TicketType.Name(c.ticket_type)}")
    waiting = [t.unit_id for t in c.assists
               if t.state not in (case_pb2.ASSIST_STATE_CONTRIBUTED, case_pb2.ASSIST_STATE_WAIVED)]
    if waiting:
        raise Illegal(f"assisting units have not contributed yet: {', '.join(waiting)} "
                      "(the office may waive them: WaiveAssist)")
    reply = case_pb2.Reply(result=case_pb2.REPLY_RESULT_RESOLVED, text=request.text, replied_at=pb.ts(step.now),
                           redo_round=c.redo_round, on_time=step.now <= pb.dt(c.reply_due), article=request.article)
    c.reply.CopyFrom(reply)
    c.replied_at.CopyFrom(_ts(step.now))
    step.emit(lifecycle_pb2.CaseReplied, REPLIED, "",
              f"直接答复 知识库《{request.article.title or request.article.article_id}》v{request.article.version}",
              reply=reply)


def _request_extension(step: Step, request: lifecycle_pb2.RequestExtensionRequest) -> None:
    c, most = step.case, step.policy.limits.max_extensions
    asked = max(c.extension.number, 1) if c.HasField("extension") else 0  # (a case of before numbering: 1)
    if asked >= most:
        raise Illegal(f"a dispatch round may ask {most} extension(s) (延期) under the SLA policy; this case "
                      f"asked {asked} ({case_pb2.ExtensionStatus.Name(c.extension.status)})")
    approved = approved_extensions(c)
    c.extension.CopyFrom(case_pb2.Extension(
        working_days=request.working_days, reason=request.reason, requested_at=pb.ts(step.now),
        status=case_pb2.EXTENSION_STATUS_REQUESTED, number=asked + 1, approved_before=approved))
    step.emit(lifecycle_pb2.ExtensionRequested, EXTENSION_REQUESTED, request.reason,
              f"延期申请 {request.working_days} 个工作日", extension=c.extension)


def approved_extensions(c: events_pb2.Case) -> int:
    """Extensions of this dispatch round approved so far."""
    ext = c.extension
    return ext.approved_before + (ext.status == case_pb2.EXTENSION_STATUS_APPROVED) if c.HasField("extension") else 0


def _decide_extension(step: Step, request: lifecycle_pb2.DecideExtensionRequest) -> None:
    c = step.case
    ext = c.extension
    if request.working_days > ext.working_days:
        raise Invalid(f"cannot grant more than the {ext.working_days} working days asked for")
    ext.decided_at.CopyFrom(_ts(step.now))
    ext.decision_reason = request.reason
    if request.approved:
        ext.status = case_pb2.EXTENSION_STATUS_APPROVED
        ext.granted_working_days = request.working_days or ext.working_days
        ext.previous_reply_due.CopyFrom(c.reply_due)
        c.reply_due.CopyFrom(_ts(step.policy.deadlines.extended(pb.dt(c.reply_due), ext.granted_working_days)))
        detail = f"延期批准 {ext.granted_working_days} 个工作日"
    else:
        ext.status = case_pb2.EXTENSION_STATUS_REJECTED
        detail = "延期驳回"
    step.emit(lifecycle_pb2.ExtensionDecided, handling_state(c), request.reason, detail,
              extension=ext, approved=request.approved)


PARK_REQUESTED, PARK_APPROVED, PARK_REFUSED, PARK_RESUMED = "requested", "approved", "refused", "resumed"


def _park(step: Step, request: lifecycle_pb2.ParkRequest) -> None:
    """挂账申请: the unit asks with its plan and target date; only the office parks the case
    (:func:`_decide_park`), so no unit stops its own clocks."""
    c = step.case
    if c.park.status == PARK_REQUESTED:
        raise Illegal("a park request (挂账申请) is already waiting for the office's decision")
    target = date.fromisoformat(request.target_date)
    today = step.now.astimezone(step.policy.tz).date()
    if not today < target <= today + timedelta(days=step.policy.limits.park_max_days):
        raise Invalid(f"target_date must be after today ({today}) and at most "
                      f"{step.policy.limits.park_max_days} days ahead")
    park = case_pb2.Park(plan=request.plan, target_date=request.target_date, status=PARK_REQUESTED,
                         requested_at=pb.ts(step.now))
    c.park.CopyFrom(park)
    step.emit(park_pb2.ParkRequested, c.state, request.reason, f"挂账申请 至 {request.target_date}", park=park)


def _decide_park(step: Step, request: park_pb2.DecideParkRequest) -> None:
    """挂账审批 (office): approved, the case is parked and the clocks the SLA policy names stop;
    refused, the case stays where it was."""
    c = step.case
    if c.park.status != PARK_REQUESTED:
        raise Illegal("there is no park request (挂账申请) to decide")
    c.park.decided_at.CopyFrom(_ts(step.now))
    c.park.decision_reason = request.reason
    if not request.approved:
        c.park.status = PARK_REFUSED
        step.emit(park_pb2.ParkDecided, c.state, request.reason, "挂账申请未获批准", park=c.park, approved=False)
        return
    c.park.status = PARK_APPROVED
    c.park.parked_at.CopyFrom(_ts(step.now))
    c.park.next_report_due.CopyFrom(_ts(step.now + timedelta(days=step.policy.limits.park_report_days)))
    c.park.ClearField("stopped_clocks")
    c.park.stopped_clocks.extend(step.policy.limits.park_stops)
    step.emit(lifecycle_pb2.CaseParked, PARKED, request.reason, f"挂账 至 {c.park.target_date}", park=c.park)


def _resume(step: Step, request: park_pb2.ResumeRequest) -> None:
    """恢复办理: the stopped clocks run again, their limits later by the time the case was parked."""
    c = step.case
    parked = step.now - pb.dt(c.park.parked_at) if c.park.HasField("parked_at") else timedelta(0)
    if "reply" in c.park.stopped_clocks and c.HasField("reply_due"):
        c.reply_due.CopyFrom(_ts(pb.dt(c.reply_due) + parked))
    if "contact" in c.park.stopped_clocks and c.HasField("contact_due"):
        c.contact_due.CopyFrom(_ts(pb.dt(c.contact_due) + parked))
    c.park.status = PARK_RESUMED
    c.park.resumed_at.CopyFrom(_ts(step.now))
    step.emit(park_pb2.CaseResumed, handling_state(c), request.reason,
              f"恢复办理（挂账 {parked.days} 天，时限顺延）", park=c.park)


def _report_progress(step: Step, request: lifecycle_pb2.ReportProgressRequest) -> None:
    c = step.case
    c.park.reports += 1
    c.park.last_progress = request.progress
    c.park.last_report_at.CopyFrom(_ts(step.now))
    c.park.next_report_due.CopyFrom(_ts(step.now + timedelta(days=step.policy.limits.park_report_days)))
    report = case_pb2.ProgressReport(progress=request.progress, attachments=request.attachments,
                                     reported_at=pb.ts(step.now), number=c.park.reports)
    step.emit(lifecycle_pb2.ProgressReported, PARKED, "", f"挂账进展 #{c.park.reports}", report=report)


def _request_return(step: Step, request: lifecycle_pb2.RequestReturnRequest) -> None:
    c = step.case
    if c.HasField("return_due") and step.now > pb.dt(c.return_due):
        raise Illegal(f"the return limit (退单时限) passed at {pb.dt(c.return_due).isoformat()}; "
                      "ask the office to re-dispatch instead")
    if c.return_request.status == case_pb2.RETURN_STATUS_REFUSED:
        raise Illegal("a return of this dispatch was already refused")
    ret = case_pb2.ReturnRequest(reason=request.reason, requested_at=pb.ts(step.now),
                                 status=case_pb2.RETURN_STATUS_REQUESTED, signed_off=c.state != AWAITING_SIGN_OFF)
    c.return_request.CopyFrom(ret)
    step.emit(lifecycle_pb2.ReturnRequested, RETURN_REQUESTED, request.reason, "退单申请", return_request=ret)


def _refuse_return(step: Step, request: lifecycle_pb2.ReturnDecision) -> None:
    c = step.case
    if request.dispatch_round and request.dispatch_round != c.dispatch_round:
        raise Illegal(f"the decision is about dispatch round {request.dispatch_round}, the case is in "
                      f"round {c.dispatch_round}")
    ret = c.return_request
    ret.status = case_pb2.RETURN_STATUS_REFUSED
    ret.decision_reason = request.reason
    ret.decided_at.CopyFrom(request.decided_at if request.HasField("decided_at") else _ts(step.now))
    back = handling_state(c) if ret.signed_off else AWAITING_SIGN_OFF
    step.emit(lifecycle_pb2.ReturnRefused, back, request.reason, "退单驳回",
              actor=request.actor if request.HasField("actor") else None, return_request=ret)


def _approve_return(case: events_pb2.Case, request: lifecycle_pb2.ReturnDecision,
                    now: datetime) -> Decision[events_pb2.Case]:
    """Routing approved the return: the re-dispatch will close the case; until it comes the
    dispatch clock (派单) runs (core.case_timers)."""
    detail = "return approved: the re-dispatch will close the case"
    if case.state != RETURN_REQUESTED or case.return_request.status != case_pb2.RETURN_STATUS_REQUESTED or \
            (request.dispatch_round and request.dispatch_round != case.dispatch_round):
        return Decision(None, answer=case, audit={"detail": detail})
    c = events_pb2.Case()
    c.CopyFrom(case)
    c.return_request.status = case_pb2.RETURN_STATUS_APPROVED
    c.return_request.decision_reason = request.reason
    c.return_request.decided_at.CopyFrom(request.decided_at if request.HasField("decided_at") else _ts(now))
    return Decision(c, answer=c, audit={"detail": detail})


def _review(step: Step, request: lifecycle_pb2.ReviewRequest) -> None:
    c = step.case
    review = case_pb2.Review(passed=request.passed, reason=request.reason, reviewed_at=pb.ts(step.now),
                             redo_round=c.redo_round)
    if request.passed:
        rid = result_id(c)
        c.review.CopyFrom(review)
        c.reported_at.CopyFrom(_ts(step.now))
        c.result_id = rid
        step.emit(lifecycle_pb2.ReviewDecided, REPORTED, request.reason, "审核通过，回传市平台",
                  review=review, passed=True, result_id=rid if c.city_ticket_id else "")
        if c.city_ticket_id:
            step.outbound.append(Event(step.policy.results_topic, c.city_ticket_id, city_result(c, step.now), rid,
                                       correlation_id=c.ticket_id, occurred_at=step.now, content_type=JSON))
        _apply_pending(step)
    else:
        days = request.redo_working_days or step.policy.limits.redo_working_days
        review.redo_working_days = days
        c.review.CopyFrom(review)
        _redo(c, step, days)
        step.emit(lifecycle_pb2.ReviewDecided, SENT_BACK, request.reason, f"审核不通过，重办 {days} 个工作日",
                  review=review, passed=False)


def _redo(c: events_pb2.Case, step: Step, days: int) -> None:
    c.redo_round += 1
    c.reply_due.CopyFrom(_ts(step.working_days(days)))
    c.ClearField("reply")
    c.ClearField("replied_at")


def city_result(c: events_pb2.Case, now: datetime) -> lifecycle_pb2.CityResult:
    ext = approved_extensions(c) > 0
    result = lifecycle_pb2.CityResult(
        result_id=result_id(c), city_ticket_id=c.city_ticket_id, ticket_id=c.ticket_id, result=c.reply.result,
        text=c.reply.text, explanation=c.reply.explanation, attachments=c.reply.attachments,
        handling_unit=c.primary_unit, assisting_units=c.assisting_units, replied_at=c.reply.replied_at,
        reviewed_at=pb.ts(now), reply_due=c.reply_due, on_time=c.reply.on_time, extended=ext,
        dispatch_round=c.dispatch_round, redo_round=c.redo_round)
    if c.reply.HasField("article"):
        result.article.CopyFrom(c.reply.article)
    for name in ("signed_off_at", "first_contact_at"):
        if c.HasField(name):
            getattr(result, name).CopyFrom(getattr(c, name))
    return result


def _decide_redo(step: Step, request: lifecycle_pb2.DecideRedoRequest) -> None:
    c = step.case
    if request.redo:
        days = request.redo_working_days or step.policy.limits.redo_working_days
        _redo(c, step, days)
        step.emit(lifecycle_pb2.RedoDecided, SENT_BACK, request.reason, f"回访不满意，重办 {days} 个工作日",
                  redo=True, redo_working_days=days)
    else:
        c.closing_explanation = request.reason
        step.emit(lifecycle_pb2.RedoDecided, EVALUATED, request.reason, "不再重办", redo=False)
        _close(step, case_pb2.CLOSURE_EXPLAINED, request.reason)


def _close(step: Step, closure: case_pb2.Closure.ValueType, reason: str, actor: case_pb2.Actor | None = None) -> None:
    c = step.case
    c.closed_at.CopyFrom(_ts(step.now))
    c.closure = closure
    step.emit(lifecycle_pb2.CaseClosed, ARCHIVED, reason, f"结案 {case_pb2.Closure.Name(closure)}", actor=actor,
              closure=closure)


def _close_merged(step: Step, request: merging_pb2.CloseMergedRequest) -> None:
    """并单: the merged case closes with its parent's result (its reply, or its closing
    explanation); a city ticket's result goes to the city (回传) like any passed reply."""
    c, parent = step.case, request.parent
    if parent.HasField("reply"):
        c.reply.CopyFrom(parent.reply)
    result = parent.reply.text or parent.closing_explanation
    c.closing_explanation = f"并单至 {parent.ticket_id}，随主件办结：{result}"[:2000]
    if c.city_ticket_id and parent.HasField("reply") and step.policy.results_topic:
        c.result_id = result_id(c)
        c.reported_at.CopyFrom(_ts(step.now))
        step.outbound.append(Event(step.policy.results_topic, c.city_ticket_id, city_result(c, step.now), c.result_id,
                                   correlation_id=c.ticket_id, occurred_at=step.now, content_type=JSON))
    step.details.append(f"closed with {parent.ticket_id}")
    _close(step, case_pb2.CLOSURE_MERGED, c.closing_explanation)


def _contribute(step: Step, request: lifecycle_pb2.ContributeRequest) -> None:
    task = _assist(step.case, step.actor.unit_id)
    assert task is not None
    if task.state == case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF:
        raise Illegal("sign off the assisting sub-case (协办签收) before contributing")
    if task.state != case_pb2.ASSIST_STATE_SIGNED_OFF:
        raise Illegal(f"the sub-case of {task.unit_id} is already {case_pb2.AssistState.Name(task.state)}")
    task.state = case_pb2.ASSIST_STATE_CONTRIBUTED
    task.contributed_at.CopyFrom(_ts(step.now))
    task.contribution = request.text
    task.attachments.extend(request.attachments)
    step.emit(lifecycle_pb2.AssistContributed, step.case.state, "", f"协办意见 by {task.unit_id}", assist=task)


def _waive_assist(step: Step, request: lifecycle_pb2.WaiveAssistRequest) -> None:
    task = _assist(step.case, request.unit_id)
    if task is None:
        raise NotFound("assisting unit", request.unit_id)
    if task.state in (case_pb2.ASSIST_STATE_CONTRIBUTED, case_pb2.ASSIST_STATE_WAIVED):
        raise Illegal(f"the sub-case of {task.unit_id} is already {case_pb2.AssistState.Name(task.state)}")
    task.state = case_pb2.ASSIST_STATE_WAIVED
    task.waive_reason = request.reason
    step.emit(lifecycle_pb2.AssistWaived, step.case.state, request.reason, f"免于协办 {task.unit_id}", assist=task)


def _sub_dispatch(step: Step, request: routing_pb2.SubDispatched) -> None:
    """加派 (routing's SubDispatched): the street office sent the ticket on to a community; the
    community's limit is a clock of the case (core.case_timers) until the case leaves its units.
    The limit is the SLA policy's ``sub_dispatch`` from the sub-dispatch, or the street's own when
    shorter. Once per community and round (CaseSubDispatched; a stale or repeated one changes nothing)."""
    c = step.case
    if request.dispatch_round and request.dispatch_round != c.dispatch_round:
        step.details.append(f"加派 of round {request.dispatch_round} ignored: the case is in round {c.dispatch_round}")
        step.changed = False
        return
    community = request.community_unit.unit_id
    if not community:
        raise Invalid("the sub-dispatch names no community")
    if any(s.community_unit_id == community and s.dispatch_round == c.dispatch_round for s in c.sub_dispatches):
        step.details.append(f"加派 to {community} already recorded")
        step.changed = False
        return
    at = pb.dt(request.dispatched_at) if request.HasField("dispatched_at") else step.now
    limit = step.policy.limits.sub_dispatch_due
    due = limit(at) if limit is not None else step.working_days(2, at)
    if request.HasField("due"):
        due = min(due, pb.dt(request.due))
    task = c.sub_dispatches.add(community_unit_id=community, community_name=request.community_unit.name,
                                street_unit_id=request.street_unit.unit_id, dispatched_at=_ts(at), due=_ts(due),
                                reason=request.reason, dispatch_round=c.dispatch_round)
    step.emit(clock_events_pb2.CaseSubDispatched, c.state, request.reason,
              f"加派 {request.street_unit.unit_id} -> {community}, due {due.isoformat()}", task=task)


def _redispatch(step: Step, request: events_pb2.TicketAssigned) -> None:
    """Routing dispatched the ticket again: this unit's case closes, the next round's opens."""
    c = step.case
    if c.state == RETURN_REQUESTED and c.return_request.status != case_pb2.RETURN_STATUS_APPROVED:
        c.return_request.status = case_pb2.RETURN_STATUS_APPROVED
        c.return_request.decided_at.CopyFrom(_ts(step.now))
    reason = f"re-dispatched to {request.assignment.primary_unit.unit_id} (round {request.assignment.dispatch_round})"
    _close(step, case_pb2.CLOSURE_REDISPATCHED, reason)
    fresh = step.policy.open_case(request, step.now)
    fresh.revision = c.revision
    fresh.supervision_level = c.supervision_level  # 督办 follows the ticket to its next unit (escalation.py)
    fresh.pending_evaluations.extend(c.pending_evaluations)
    step.case = fresh
    step.emit(events_pb2.CaseOpened, AWAITING_SIGN_OFF, reason, f"派单 round {request.assignment.dispatch_round}")


# ------------------------------------------------------------------------------------ evaluations


def _result_round(rid: str) -> tuple[int, int] | None:
    parts = rid.rsplit("/", 3)
    try:
        return int(parts[-2]), int(parts[-1])
    except (ValueError, IndexError):
        return None


def evaluation_of(e: lifecycle_pb2.CityEvaluation) -> case_pb2.Evaluation:
    return case_pb2.Evaluation(evaluation_id=e.evaluation_id, resolution=e.resolution, satisfaction=e.satisfaction,
                               comment=e.comment, evaluated_at=e.evaluated_at, result_id=e.result_id)


def _evaluate(case: events_pb2.Case | None, e: lifecycle_pb2.CityEvaluation, now: datetime,
              policy: Policy) -> Decision[events_pb2.Case]:
    """Apply the city's evaluation (回访) to the reported result, keep it for later when the
    result is not reported yet (events arrive out of order), or ignore it when its result was
    already evaluated or superseded. Never refused: the city's word is recorded either way."""
    if case is None:
        raise NotFound("case", e.city_ticket_id)  # the consumer keeps it in the inbox
    if any(p.evaluation_id == e.evaluation_id for p in case.pending_evaluations) or \
            case.evaluation.evaluation_id == e.evaluation_id:
        return Decision(None, answer=case, unchanged=True)  # a delivery again (e.g. replayed after the inbox)
    verdict = evaluation_fate(case, e)
    if verdict == "ignore":
        return Decision(None, answer=case, audit={"detail": f"evaluation {e.evaluation_id} ignored: its result "
                                                            "was already evaluated or superseded"})
    step = Step(case, Principal.system("supervision"), now, policy)
    step.case.pending_evaluations.append(evaluation_of(e))
    if verdict == "keep":
        step.details.append(f"evaluation {e.evaluation_id} kept until its result is reported")
        return step.decision()
    _apply_pending(step)
    return step.decision()


def evaluation_fate(case: events_pb2.Case, e: lifecycle_pb2.CityEvaluation | case_pb2.Evaluation) -> str:
    """apply (to the reported result now), keep (for a result not reported yet) or ignore."""
    current = (case.dispatch_round, case.redo_round)
    if e.result_id:
        if e.result_id == case.result_id:
            return "apply" if case.state == REPORTED else "ignore"
        wanted = _result_round(e.result_id)
        if wanted is None or not e.result_id.startswith(f"{case.ticket_id}/result/") or wanted < current:
            return "ignore"
        return "keep"
    if case.state == REPORTED:
        return "apply"
    return "ignore" if case.state in (EVALUATED, ARCHIVED) else "keep"


def _apply_pending(step: Step) -> None:
    """At REPORTED: apply the first kept evaluation that is for this result; drop the ones
    that can never apply."""
    c = step.case
    if c.state != REPORTED or not c.pending_evaluations:
        return
    kept = sorted(c.pending_evaluations, key=lambda p: (p.evaluated_at.seconds, p.evaluated_at.nanos))
    chosen = next((p for p in kept if evaluation_fate(c, p) == "apply"), None)
    c.ClearField("pending_evaluations")
    c.pending_evaluations.extend(p for p in kept if p is not chosen and evaluation_fate(c, p) == "keep")
    if chosen is None:
        return
    evaluation = case_pb2.Evaluation()
    evaluation.CopyFrom(chosen)
    evaluation.result_id = c.result_id
    evaluation.redo_round = c.redo_round
    c.evaluation.CopyFrom(evaluation)
    poor = evaluation.resolution == case_pb2.RESOLUTION_UNRESOLVED or \
        evaluation.satisfaction == case_pb2.SATISFACTION_UNSATISFIED
    step.emit(lifecycle_pb2.CaseEvaluated, EVALUATED if poor else REPORTED, evaluation.comment,
              f"回访 {case_pb2.Resolution.Name(evaluation.resolution)} "
              f"{case_pb2.Satisfaction.Name(evaluation.satisfaction)}",
              actor=evaluator(evaluation.evaluation_id), evaluation=evaluation, needs_decision=poor)
    if not poor:
        _close(step, case_pb2.CLOSURE_SATISFIED, "回访满意", actor=evaluator(evaluation.evaluation_id))


Handler = Callable[[Step, Any], None]
HANDLERS: dict[Action, Handler] = {
    Action.SIGN_OFF: _sign_off, Action.ASSIST_SIGN_OFF: _assist_sign_off, Action.RECORD_CONTACT: _record_contact,
    Action.REPLY: _reply, Action.REQUEST_EXTENSION: _request_extension, Action.DECIDE_EXTENSION: _decide_extension,
    Action.PARK: _park, Action.DECIDE_PARK: _decide_park, Action.RESUME: _resume,
    Action.REPORT_PROGRESS: _report_progress, Action.REQUEST_RETURN: _request_return,
    Action.REFUSE_RETURN: _refuse_return, Action.REDISPATCH: _redispatch, Action.REVIEW: _review,
    Action.DECIDE_REDO: _decide_redo, Action.CONTRIBUTE: _contribute, Action.WAIVE_ASSIST: _waive_assist,
    Action.DIRECT_ANSWER: _direct_answer, Action.CLOSE_MERGED: _close_merged, Action.SUB_DISPATCH: _sub_dispatch,
}
REQUESTS: dict[type[Message], Action] = {
    lifecycle_pb2.RecordContactRequest: Action.RECORD_CONTACT, lifecycle_pb2.ReplyRequest: Action.REPLY,
    lifecycle_pb2.RequestExtensionRequest: Action.REQUEST_EXTENSION,
    lifecycle_pb2.DecideExtensionRequest: Action.DECIDE_EXTENSION, lifecycle_pb2.ParkRequest: Action.PARK,
    park_pb2.DecideParkRequest: Action.DECIDE_PARK, park_pb2.ResumeRequest: Action.RESUME,
    lifecycle_pb2.ReportProgressRequest: Action.REPORT_PROGRESS,
    lifecycle_pb2.RequestReturnRequest: Action.REQUEST_RETURN, lifecycle_pb2.ReviewRequest: Action.REVIEW,
    lifecycle_pb2.DecideRedoRequest: Action.DECIDE_REDO, lifecycle_pb2.ContributeRequest: Action.CONTRIBUTE,
    lifecycle_pb2.WaiveAssistRequest: Action.WAIVE_ASSIST, events_pb2.TicketAssigned: Action.REDISPATCH,
    lifecycle_pb2.CityEvaluation: Action.EVALUATE, knowledge_pb2.DirectAnswerRequest: Action.DIRECT_ANSWER,
    merging_pb2.CloseMergedRequest: Action.CLOSE_MERGED, routing_pb2.SubDispatched: Action.SUB_DISPATCH,
}
