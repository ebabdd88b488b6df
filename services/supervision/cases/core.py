"""Supervision's pure domain logic: opening a case with its deadlines (时限) under the SLA
policy, the timers its clocks run on in each lifecycle state, the events a fired timer means,
and the city's callback evaluations (回访) read and validated. The lifecycle is in lifecycle.py.

Clocks and their start: sign-off and first contact run from the assignment (the unit has the
ticket), the reply from the city's receipt (a re-dispatch starts afresh from its assignment).
Limits come from the policy (sla.py), periods end by the rule for periods on the working-day
calendar (calendar.py).

Which clocks run is a pure function of the case (:func:`case_timers`): the store gives every
saved case exactly those timers (hotline/timers.py, embedded in the case document), in the same
transaction as the transition, so a lifecycle state change arms, moves or stops them::

    AWAITING_SIGN_OFF                  sign_off, contact, reply
    IN_PROGRESS, SENT_BACK             contact (until the first contact), reply
    EXTENSION_REQUESTED                contact (until made), reply, extension_decision (the office)
    RETURN_REQUESTED                   reply, return_decision (the office); once approved: dispatch
    PARKED                             park_progress (the monthly report), and contact / reply unless the
                                       SLA policy's park_stops stops them (挂账, approved by the office)
    REPORTED (a deputy's ticket)       deputy_callback (the office's: it may call back when the deputy has
                                       not rated the result by then)
    REPLIED, REPORTED, ...             none (the office's or the city's turn leave the count)

Beside those, while the case is with its units: each assisting unit's sign-off and contribution
(``assist_sign_off_<unit>``, ``assist_contribution_<unit>``), each community's 加派 limit of this
round (``sub_dispatch_<unit>``), and the open 督办 level's own limit (``supervision``).

A fired timer's stage becomes DeadlineDueSoon / DeadlineMissed; the first miss of a case below
level 1 asks for system supervision (OverdueSupervisionRaised, one event id per case), which the
four-level supervision module applies once (escalation_handlers.py: the level and its record).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hotline import pb
from hotline.calendar import WorkCalendar
from hotline.envelope import Event, PermanentError
from hotline.inbound import (
    TICKET_ID,
    parse_json,  # the city's JSON is read one way
)
from hotline.timers import Fired, Stage, Timer
from hotline.v1 import case_pb2, deadlines_pb2, events_pb2, lifecycle_pb2, reminders_pb2
from services.supervision.cases.deputy_closure import is_deputy_ticket
from services.supervision.cases.sla import CaseFacts, Limits, Policy, SlaClock, clock_of, limits_for, unit_kind

SYSTEM_SUPERVISION = 1  # 系统督办: raised automatically on the first missed deadline

CS = events_pb2
CONTACT_CLOCK = frozenset({CS.CASE_STATE_AWAITING_SIGN_OFF, CS.CASE_STATE_IN_PROGRESS, CS.CASE_STATE_SENT_BACK,
                           CS.CASE_STATE_EXTENSION_REQUESTED})
ASSIST_CLOCK = frozenset({CS.CASE_STATE_AWAITING_SIGN_OFF, CS.CASE_STATE_IN_PROGRESS, CS.CASE_STATE_SENT_BACK,
                          CS.CASE_STATE_EXTENSION_REQUESTED, CS.CASE_STATE_PARKED})
OFFICE_UNIT = events_pb2.Unit(unit_id="office", name="区12345热线办")  # who the office's own clocks run against
REPLY_CLOCK = frozenset({CS.CASE_STATE_AWAITING_SIGN_OFF, CS.CASE_STATE_IN_PROGRESS, CS.CASE_STATE_SENT_BACK,
                         CS.CASE_STATE_EXTENSION_REQUESTED, CS.CASE_STATE_RETURN_REQUESTED})


def open_case(
    assigned: events_pb2.TicketAssigned, now: datetime, policy: Policy, calendar: WorkCalendar,
) -> tuple[events_pb2.Case, Limits]:
    """The case a new assignment (or a re-dispatch) opens, and its limits."""
    a = assigned.assignment
    received = pb.dt(assigned.received_at) if assigned.HasField("received_at") else now
    assigned_at = pb.dt(a.assigned_at) if a.HasField("assigned_at") else now
    facts = CaseFacts.of(assigned, received, calendar)
    limits = limits_for(facts, policy)
    sign_off_due = limits.due(SlaClock.SIGN_OFF, assigned_at, calendar)
    contact_due = limits.due(SlaClock.CONTACT, assigned_at, calendar)
    start = received if a.dispatch_round <= 1 else assigned_at  # a re-dispatch starts afresh
    reply_due = limits.due(SlaClock.REPLY, start, calendar)
    assists = []
    if a.assisting_units:  # 协办 sub-cases: sign off like the primary, contribute within the policy's limit
        contribution_due = pb.ts(min(limits.due(SlaClock.ASSIST_CONTRIBUTION, received, calendar).astimezone(UTC),
                                     reply_due))
        waiting = case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF
        assists = [case_pb2.AssistTask(unit_id=u.unit_id, unit_name=u.name, state=waiting,
                                       sign_off_due=pb.ts(sign_off_due), contribution_due=contribution_due)
                   for u in a.assisting_units]
    case = events_pb2.Case(
        ticket_id=a.ticket_id,
        state=events_pb2.CASE_STATE_AWAITING_SIGN_OFF,
        primary_unit=a.primary_unit,
        assisting_units=a.assisting_units,
        ticket_type=assigned.ticket_type,
        category=a.category,
        urgency=assigned.urgency,
        received_at=pb.ts(received),
        opened_at=pb.ts(now),
        sign_off_due=pb.ts(sign_off_due),
        contact_due=pb.ts(contact_due),
        reply_due=pb.ts(reply_due),
        dispatch_round=a.dispatch_round,
        policy_version=limits.policy_version,
        sla_lanes=limits.lanes,
        lane=policy.case_lane(facts),  # one definition of the case's lane: the figures read it from the case
        city_ticket_id=assigned.city_ticket_id,
        assists=assists,
        return_due=pb.ts(limits.due(SlaClock.RETURN, assigned_at, calendar)),
    )
    return case, limits


def case_timers(case: events_pb2.Case, limits: Limits, calendar: WorkCalendar) -> list[Timer]:
    """The clocks that run for the case in its present state (see the module doc)."""
    timers: list[Timer] = []
    state = case.state
    opened = pb.dt(case.opened_at) if case.HasField("opened_at") else pb.dt(case.received_at)
    timers.extend(assist_timers(case, limits, opened))
    if state != CS.CASE_STATE_ARCHIVED and case.supervision_level > 0 and case.HasField("supervision_due"):
        raised = pb.dt(case.supervision_raised_at) if case.HasField("supervision_raised_at") else opened
        timers.append(clock_timer(case, SlaClock.SUPERVISION, raised, pb.dt(case.supervision_due), limits))
    if state == CS.CASE_STATE_PARKED:
        return timers + parked_timers(case, limits, opened)
    if state == CS.CASE_STATE_REPORTED and is_deputy_ticket(case) and case.HasField("reported_at"):
        reported = pb.dt(case.reported_at)  # 回访: the deputy rates, else the office calls back (deputy_closure.py)
        timers.append(clock_timer(case, SlaClock.DEPUTY_CALLBACK, reported,
                                  limits.due(SlaClock.DEPUTY_CALLBACK, reported, calendar), limits))
    if state == CS.CASE_STATE_AWAITING_SIGN_OFF:
        timers.append(clock_timer(case, SlaClock.SIGN_OFF, opened, pb.dt(case.sign_off_due), limits))
    if state in CONTACT_CLOCK and case.HasField("contact_due") and not case.HasField("first_contact_at"):
        timers.append(clock_timer(case, SlaClock.CONTACT, opened, pb.dt(case.contact_due), limits))
    if state in REPLY_CLOCK and case.HasField("reply_due"):
        # the span the reply clock last (re)started: the transition that moved it, else the receipt
        start = pb.dt(case.updated_at) if case.HasField("updated_at") else pb.dt(case.received_at)
        timers.append(clock_timer(case, SlaClock.REPLY, min(start, pb.dt(case.reply_due)), pb.dt(case.reply_due),
                                  limits))
    if state == CS.CASE_STATE_EXTENSION_REQUESTED and case.extension.HasField("requested_at"):
        asked = pb.dt(case.extension.requested_at)
        timers.append(clock_timer(case, SlaClock.EXTENSION_DECISION, asked,
                                  limits.due(SlaClock.EXTENSION_DECISION, asked, calendar), limits))
    if state == CS.CASE_STATE_RETURN_REQUESTED:
        ret = case.return_request
        if ret.status == case_pb2.RETURN_STATUS_REQUESTED and ret.HasField("requested_at"):
            asked = pb.dt(ret.requested_at)
            timers.append(clock_timer(case, SlaClock.RETURN_DECISION, asked,
                                      limits.due(SlaClock.RETURN_DECISION, asked, calendar), limits))
        elif ret.status == case_pb2.RETURN_STATUS_APPROVED and ret.HasField("decided_at"):
            decided = pb.dt(ret.decided_at)  # the office re-dispatches (派单) within the dispatch limit
            timers.append(clock_timer(case, SlaClock.DISPATCH, decided,
                                      limits.due(SlaClock.DISPATCH, decided, calendar), limits))
    return timers


def assist_timers(case: events_pb2.Case, limits: Limits, opened: datetime) -> list[Timer]:
    """协办: each assisting unit's sign-off (until it signs) and contribution (until it contributes
    or the office waives it), while the case is with its units."""
    if case.state not in ASSIST_CLOCK:
        return []
    timers = []
    for task in case.assists:
        if task.state == case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF and task.HasField("sign_off_due"):
            timers.append(clock_timer(case, SlaClock.ASSIST_SIGN_OFF, opened, pb.dt(task.sign_off_due), limits,
                                      unit_kind(SlaClock.ASSIST_SIGN_OFF, task.unit_id)))
        if task.state in (case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF, case_pb2.ASSIST_STATE_SIGNED_OFF) and \
                task.HasField("contribution_due"):
            timers.append(clock_timer(case, SlaClock.ASSIST_CONTRIBUTION, opened, pb.dt(task.contribution_due),
                                      limits, unit_kind(SlaClock.ASSIST_CONTRIBUTION, task.unit_id)))
    for sub in case.sub_dispatches:  # 加派: the community's limit, while this round is with the units
        if sub.dispatch_round == case.dispatch_round and sub.HasField("due") and sub.HasField("dispatched_at"):
            timers.append(clock_timer(case, SlaClock.SUB_DISPATCH, pb.dt(sub.dispatched_at), pb.dt(sub.due), limits,
                                      unit_kind(SlaClock.SUB_DISPATCH, sub.community_unit_id)))
    return timers


def parked_timers(case: events_pb2.Case, limits: Limits, opened: datetime) -> list[Timer]:
    """A parked case (挂账): its monthly progress report, and the clocks the policy does not stop."""
    stopped = set(case.park.stopped_clocks) if case.park.stopped_clocks else {c.value for c in limits.park_stops}
    timers = []
    if case.park.HasField("next_report_due"):
        last = case.park.last_report_at if case.park.HasField("last_report_at") else case.park.parked_at
        timers.append(clock_timer(case, SlaClock.PARK_PROGRESS, pb.dt(last), pb.dt(case.park.next_report_due),
                                  limits))
    if SlaClock.CONTACT.value not in stopped and case.HasField("contact_due") and not case.HasField("first_contact_at"):
        timers.append(clock_timer(case, SlaClock.CONTACT, opened, pb.dt(case.contact_due), limits))
    if SlaClock.REPLY.value not in stopped and case.HasField("reply_due"):
        start = pb.dt(case.received_at)
        timers.append(clock_timer(case, SlaClock.REPLY, min(start, pb.dt(case.reply_due)), pb.dt(case.reply_due),
                                  limits))
    return timers


def clock_timer(case: events_pb2.Case, clock: SlaClock, start: datetime, due: datetime, limits: Limits,
                kind: str = "") -> Timer:
    """The timer of one clock of a case. It carries nothing else: what its events say (unit,
    round, category) is read from the case when it fires (rare), not stored with every timer
    (every case opening would pay for that); only a clock whose miss raises no 督办 (the SLA
    policy's ``overdue_levels``) says so (``{"level": 0}``)."""
    level = limits.overdue_level(clock)
    return Timer(subject=case.ticket_id, kind=kind or clock.value, due_at=due,
                 warn_at=limits.warn_at(start, due), data={} if level == SYSTEM_SUPERVISION else {"level": level})


def deadline_of(fired: Fired, case: events_pb2.Case | None) -> deadlines_pb2.Deadline:
    t = fired.timer
    clock = clock_of(t.kind)
    d = deadlines_pb2.Deadline(ticket_id=t.subject, clock=clock.proto, due_at=pb.ts(t.due_at),
                               fired_at=pb.ts(fired.fired_at), clock_key=t.kind)
    if case is not None:
        d.primary_unit.CopyFrom(case.primary_unit)
        d.dispatch_round, d.category, d.policy_version = case.dispatch_round, case.category, case.policy_version
        task = next((a for a in case.assists if unit_kind(clock, a.unit_id) == t.kind), None)
        sub = next((s for s in case.sub_dispatches if unit_kind(clock, s.community_unit_id) == t.kind), None)
        if task is not None:  # an assisting unit's clock runs against that unit
            d.unit.CopyFrom(next((u for u in case.assisting_units if u.unit_id == task.unit_id),
                                 events_pb2.Unit(unit_id=task.unit_id, name=task.unit_name)))
        elif sub is not None:  # 加派: against the community
            d.unit.CopyFrom(events_pb2.Unit(unit_id=sub.community_unit_id, name=sub.community_name,
                                            unit_type=events_pb2.UNIT_TYPE_COMMUNITY))
        elif clock == SlaClock.DEPUTY_CALLBACK:  # the office's own clock
            d.unit.CopyFrom(OFFICE_UNIT)
    return d


def deadline_events(fired: Sequence[Fired], cases: Mapping[str, events_pb2.Case], topic: str) -> list[Event]:
    """DeadlineDueSoon / DeadlineMissed for each fired stage, with deterministic event ids."""
    events = []
    for f in fired:
        d = deadline_of(f, cases.get(f.timer.subject))
        due = f.timer.due_at.strftime("%Y%m%dT%H%M%S")
        event_id = f"{d.ticket_id}/deadline/{f.timer.kind}/{f.stage.value}/{d.dispatch_round}/{due}"
        message = deadlines_pb2.DeadlineDueSoon(deadline=d) if f.stage == Stage.DUE_SOON \
            else deadlines_pb2.DeadlineMissed(deadline=d)
        events.append(Event(topic, d.ticket_id, message, event_id, occurred_at=f.fired_at))
    return events


CLOCK_NAMES = {SlaClock.DISPATCH: "派单", SlaClock.SIGN_OFF: "签收", SlaClock.CONTACT: "首次联系",
               SlaClock.REPLY: "办结反馈", SlaClock.EXTENSION_DECISION: "延期审批",
               SlaClock.RETURN_DECISION: "退单审核", SlaClock.PARK_PROGRESS: "挂账进展报送",
               SlaClock.ASSIST_SIGN_OFF: "协办签收",
               SlaClock.ASSIST_CONTRIBUTION: "协办意见", SlaClock.DEPUTY_CALLBACK: "回访",
               SlaClock.SUPERVISION: "督办办理", SlaClock.SUB_DISPATCH: "加派办理",
               SlaClock.WHISTLE_REPORT_IN: "吹哨报到"}


def reminders(fired: Sequence[Fired], cases: Mapping[str, events_pb2.Case], topic: str, tz: Any) -> list[Event]:
    """事前提醒: one DeadlineReminder per due-soon stage, for the unit the clock runs against, on the
    notifications topic (same id as its DeadlineDueSoon: a republished one is the same reminder)."""
    out = []
    for e in deadline_events([f for f in fired if f.stage == Stage.DUE_SOON], cases, topic):
        d = e.message.deadline  # type: ignore[attr-defined]
        unit = d.unit if d.HasField("unit") else d.primary_unit
        name = CLOCK_NAMES.get(clock_of(d.clock_key or SlaClock.SIGN_OFF.value), "办理")
        due = pb.dt(d.due_at).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        text = (f"【12345事前提醒】{unit.name or unit.unit_id}：工单 {d.ticket_id} 的{name}时限将于 {due} 到期，"
                "请及时办理。")
        out.append(Event(topic, d.ticket_id, reminders_pb2.DeadlineReminder(
            reminder_id=e.event_id, ticket_id=d.ticket_id, unit=unit, clock=d.clock, due_at=d.due_at, text=text,
            occurred_at=d.fired_at, clock_key=d.clock_key), f"{e.event_id}/reminder", occurred_at=e.occurred_at))
    return out


def first_missed(fired: Sequence[Fired]) -> dict[str, Fired]:
    """Per case, the first missed deadline of this batch that raises a level (the SLA policy's
    ``overdue_levels``: the timer says ``level`` 0 when it raises none): the candidate for system
    supervision."""
    out: dict[str, Fired] = {}
    for f in fired:
        if f.stage == Stage.DUE and f.timer.data.get("level", SYSTEM_SUPERVISION) >= SYSTEM_SUPERVISION:
            out.setdefault(f.timer.subject, f)
    return out


def supervision_raised(f: Fired, case: events_pb2.Case | None, topic: str) -> Event:
    """Ask for system supervision (系统督办, level 1) because this deadline was missed: the
    escalation module raises it (the timers do not write the case's level). One event id per
    case, so a request repeated before it was applied is the same event."""
    d = deadline_of(f, case)
    message = deadlines_pb2.OverdueSupervisionRaised(
        ticket_id=d.ticket_id, level=SYSTEM_SUPERVISION, reason=f"deadline_missed:{f.timer.kind}", clock=d.clock,
        raised_at=d.fired_at, dispatch_round=d.dispatch_round)
    return Event(topic, d.ticket_id, message, f"{d.ticket_id}/supervision/{SYSTEM_SUPERVISION}",
                 occurred_at=f.fired_at)


EVALUATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-:./]{0,127}\Z")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_COMMENT_CHARS = 2000


def parse_city_evaluation(raw: bytes, latest: datetime) -> lifecycle_pb2.CityEvaluation:
    """Parse and validate the city's callback evaluation (回访, the JSON mapping of
    CityEvaluation, docs/city-results.md) like intake does the city's tickets: PermanentError
    with reason ``malformed_json``, ``schema`` or ``missing_field``. ``latest``: the latest
    instant ``evaluated_at`` may name."""
    e = parse_json(raw, lifecycle_pb2.CityEvaluation)
    not_reached = e.satisfaction == case_pb2.SATISFACTION_NOT_REACHED
    missing = [name for name, present in (
        ("evaluation_id", bool(e.evaluation_id)), ("city_ticket_id", bool(e.city_ticket_id)),
        ("satisfaction", e.satisfaction != case_pb2.SATISFACTION_UNSPECIFIED),
        ("resolution", e.resolution != case_pb2.RESOLUTION_UNSPECIFIED or not_reached),
        ("evaluated_at", e.HasField("evaluated_at")),
    ) if not present]
    if missing:
        raise PermanentError("missing_field", "required field(s) missing: " + ", ".join(missing))
    for name, enum, value in (("satisfaction", case_pb2.Satisfaction, e.satisfaction),
                              ("resolution", case_pb2.Resolution, e.resolution)):
        if value not in enum.values():
            raise PermanentError("schema", f"{name} {value} is not a known value")
    if not EVALUATION_ID.match(e.evaluation_id):
        raise PermanentError("schema", f"evaluation_id {e.evaluation_id[:80]!r} is not 1-128 letters, digits, -_:./")
    if not TICKET_ID.match(e.city_ticket_id):
        raise PermanentError("schema", f"city_ticket_id {e.city_ticket_id[:80]!r} is not a ticket id")
    if len(e.result_id) > 200 or len(e.comment) > MAX_COMMENT_CHARS:
        raise PermanentError("schema", f"result_id or comment too long (comment at most {MAX_COMMENT_CHARS})")
    try:
        at = pb.dt(e.evaluated_at)
    except (ValueError, OverflowError) as exc:
        raise PermanentError("schema", f"evaluated_at out of range: {exc}") from exc
    if not EARLIEST <= at <= latest:
        raise PermanentError("schema", f"evaluated_at {at.isoformat()} is not between {EARLIEST.date()} and now")
    e.evaluated_at.CopyFrom(pb.normalized(e.evaluated_at))
    return e
