"""Supervision's pure domain logic: opening a case with its deadlines (时限) under the SLA
policy, the timers those deadlines run on, and the events a fired timer means.

Clocks and their start: sign-off and first contact run from the assignment (the unit has the
ticket), the reply from the city's receipt. Limits come from the policy (sla.py), periods
end by the rule for periods on the working-day calendar (calendar.py).

For the case lifecycle, every clock is one timer (subject = ticket id, kind = the clock's name),
changed in the same transaction as the case (``Timers`` API in hotline/timers.py)::

    limits = await cases.limits(ticket_id, policies, session)  # the limits the case started with
    await timers.cancel(tid, [SlaClock.SIGN_OFF], session)    # signed off (签收)
    await timers.cancel(tid, [SlaClock.CONTACT], session)     # first contact made
    await timers.cancel(tid, [SlaClock.REPLY], session)       # replied (办结反馈)
    due = limits.due(SlaClock.EXTENSION_DECISION, now, calendar)                 # extension asked (延期)
    await timers.schedule([clock_timer(case, SlaClock.EXTENSION_DECISION, now, due, limits)], session)
    await timers.schedule([clock_timer(case, SlaClock.REPLY, start, new_due, limits)], session)  # moved
    # return asked (退单): RETURN_DECISION likewise; re-dispatch by the office: DISPATCH likewise

A fired timer's stage becomes DeadlineDueSoon / DeadlineMissed; the first miss of a case raises
it to system supervision (level 1), once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from hotline import pb
from hotline.envelope import Event
from hotline.timers import Fired, Stage, Timer
from hotline.v1 import deadlines_pb2, events_pb2
from services.supervision.calendar import WorkCalendar
from services.supervision.sla import CaseFacts, Limits, Policy, SlaClock, limits_for

SYSTEM_SUPERVISION = 1  # 系统督办: raised automatically on the first missed deadline


def open_case(
    assigned: events_pb2.TicketAssigned, now: datetime, policy: Policy, calendar: WorkCalendar
) -> tuple[events_pb2.Case, Limits, list[Timer]]:
    """The case a new assignment opens, its limits, and the timers of its clocks (sign-off,
    first contact, reply)."""
    a = assigned.assignment
    received = pb.dt(assigned.received_at) if assigned.HasField("received_at") else now
    assigned_at = pb.dt(a.assigned_at) if a.HasField("assigned_at") else now
    limits = limits_for(CaseFacts.of(assigned, received, calendar), policy)
    sign_off_due = limits.due(SlaClock.SIGN_OFF, assigned_at, calendar)
    contact_due = limits.due(SlaClock.CONTACT, assigned_at, calendar)
    reply_due = limits.due(SlaClock.REPLY, received, calendar)
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
    )
    timers = [
        clock_timer(case, SlaClock.SIGN_OFF, assigned_at, sign_off_due, limits),
        clock_timer(case, SlaClock.CONTACT, assigned_at, contact_due, limits),
        clock_timer(case, SlaClock.REPLY, received, reply_due, limits),
    ]
    return case, limits, timers


def clock_timer(case: events_pb2.Case, clock: SlaClock, start: datetime, due: datetime, limits: Limits) -> Timer:
    """The timer of one clock of a case (what the lifecycle schedules on its transitions). It
    carries nothing else: what its events say (unit, round, category) is read from the case when
    it fires (rare), not stored with every timer (every case opening would pay for that)."""
    return Timer(subject=case.ticket_id, kind=clock.value, due_at=due, warn_at=limits.warn_at(start, due))


def deadline_of(fired: Fired, case: events_pb2.Case | None) -> deadlines_pb2.Deadline:
    t = fired.timer
    d = deadlines_pb2.Deadline(ticket_id=t.subject, clock=SlaClock(t.kind).proto, due_at=pb.ts(t.due_at),
                               fired_at=pb.ts(fired.fired_at))
    if case is not None:
        d.primary_unit.CopyFrom(case.primary_unit)
        d.dispatch_round, d.category, d.policy_version = case.dispatch_round, case.category, case.policy_version
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


def first_missed(fired: Sequence[Fired]) -> dict[str, Fired]:
    """Per case, the first missed deadline of this batch: the candidate for system supervision."""
    out: dict[str, Fired] = {}
    for f in fired:
        if f.stage == Stage.DUE:
            out.setdefault(f.timer.subject, f)
    return out


def supervision_raised(f: Fired, case: events_pb2.Case | None, topic: str) -> Event:
    """The case goes to system supervision (系统督办, level 1) because this deadline was missed."""
    d = deadline_of(f, case)
    message = deadlines_pb2.SupervisionRaised(
        ticket_id=d.ticket_id, level=SYSTEM_SUPERVISION, reason=f"deadline_missed:{f.timer.kind}", clock=d.clock,
        raised_at=d.fired_at, dispatch_round=d.dispatch_round)
    return Event(topic, d.ticket_id, message, f"{d.ticket_id}/supervision/{SYSTEM_SUPERVISION}",
                 occurred_at=f.fired_at)
