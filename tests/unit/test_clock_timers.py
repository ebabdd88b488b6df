"""Every clock of the domain is a timer (issue #22): assisting units' sign-off and contribution run
as per-unit timers while the case is with its units; a fired stage names the unit it runs against;
each due-soon stage is also a 事前提醒 (DeadlineReminder) for the notifications topic."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hotline import pb
from hotline.timers import Fired, Stage
from hotline.v1 import deadlines_pb2, events_pb2, lifecycle_pb2, reminders_pb2
from services.supervision.cases import core
from services.supervision.cases import lifecycle as lc
from services.supervision.cases.sla import SlaClock, clock_of, limits_of, unit_kind
from tests.unit.test_lifecycle import CALENDAR, HELPER, NOW, OFFICE, SLA, TZ, UNIT, after, opened


def kinds(case: events_pb2.Case) -> dict[str, object]:
    limits = limits_of(SLA, case.sla_lanes)
    return {t.kind: t.due_at for t in core.case_timers(case, limits, CALENDAR)}


def test_an_assisting_unit_signs_off_and_contributes_on_its_own_clocks() -> None:
    case = opened()  # primary ST01, assisting D07
    task = case.assists[0]
    running = kinds(case)
    assert running["assist_sign_off_d07"] == pb.dt(task.sign_off_due)
    assert running["assist_contribution_d07"] == pb.dt(task.contribution_due)
    signed = after(case, lifecycle_pb2.SignOffRequest(ticket_id="C1"), HELPER)
    assert "assist_sign_off_d07" not in kinds(signed) and "assist_contribution_d07" in kinds(signed)
    done = after(signed, lifecycle_pb2.ContributeRequest(ticket_id="C1", text="已配合"), HELPER)
    assert not any(k.startswith("assist_") for k in kinds(done))
    waived = after(case, lifecycle_pb2.WaiveAssistRequest(ticket_id="C1", unit_id="D07", reason="无需"), OFFICE)
    assert not any(k.startswith("assist_") for k in kinds(waived))


def test_per_unit_kinds_map_back_to_their_clock() -> None:
    assert unit_kind(SlaClock.ASSIST_SIGN_OFF, "CM0101") == "assist_sign_off_cm0101"
    assert clock_of("assist_contribution_cm0101") == SlaClock.ASSIST_CONTRIBUTION
    assert clock_of("reply") == SlaClock.REPLY
    with pytest.raises(ValueError):
        clock_of("nothing")


def test_a_fired_assist_clock_names_the_assisting_unit_and_reminds_it_before() -> None:
    case = opened()
    limits = limits_of(SLA, case.sla_lanes)
    timer = next(t for t in core.case_timers(case, limits, CALENDAR) if t.kind == "assist_sign_off_d07")
    soon = Fired(timer, Stage.DUE_SOON, timer.warn_at or NOW)
    due = Fired(timer, Stage.DUE, timer.due_at)
    (event,) = core.deadline_events([soon], {"C1": case}, "cases")
    d = event.message.deadline  # type: ignore[attr-defined]
    assert d.clock == deadlines_pb2.DEADLINE_CLOCK_ASSIST_SIGN_OFF and d.unit.unit_id == "D07"
    assert d.primary_unit.unit_id == "ST01" and d.clock_key == "assist_sign_off_d07"
    (reminder,) = core.reminders([soon, due], {"C1": case}, "notifications", TZ)  # due-soon only
    r = reminder.message
    assert isinstance(r, reminders_pb2.DeadlineReminder) and reminder.topic == "notifications"
    assert r.unit.unit_id == "D07" and "协办签收" in r.text and r.reminder_id == event.event_id
    again = core.reminders([soon], {"C1": case}, "notifications", TZ)[0]
    assert again.event_id == reminder.event_id  # deterministic: a redelivered stage is the same reminder
    (missed,) = core.first_missed([due]).values()
    raised = core.supervision_raised(missed, case, "cases")
    assert raised.message.level == 1 and "assist_sign_off" in raised.message.reason  # type: ignore[attr-defined]


def test_a_primary_clock_reminds_the_primary_unit() -> None:
    case = opened(assisting=())
    limits = limits_of(SLA, case.sla_lanes)
    timer = next(t for t in core.case_timers(case, limits, CALENDAR) if t.kind == "sign_off")
    (reminder,) = core.reminders([Fired(timer, Stage.DUE_SOON, NOW)], {"C1": case}, "n", TZ)
    assert reminder.message.unit.unit_id == "ST01" and "签收" in reminder.message.text  # type: ignore[attr-defined]


def test_a_parked_case_times_its_monthly_progress_report() -> None:
    case = after(opened(assisting=()), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    asked = after(case, lifecycle_pb2.ParkRequest(ticket_id="C1", plan="计划", target_date="2027-06-30", reason="x"))
    from hotline.v1 import park_pb2

    parked = after(asked, park_pb2.DecideParkRequest(ticket_id="C1", approved=True), OFFICE)
    assert parked.state == lc.PARKED
    running = kinds(parked)
    assert running == {"park_progress": NOW + timedelta(days=30)}
    reported = after(parked, lifecycle_pb2.ReportProgressRequest(ticket_id="C1", progress="设计完成"), UNIT,
                     now=NOW + timedelta(days=20))
    assert kinds(reported) == {"park_progress": NOW + timedelta(days=50)}  # the next month's report


def test_an_open_supervision_level_runs_on_its_own_limit() -> None:
    """督办: the open level's due (stamped on the case by the escalation store) is a timer of the
    case until the case is archived; its miss is a DeadlineMissed of the supervision clock."""
    case = after(opened(assisting=()), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    assert "supervision" not in kinds(case)
    case.supervision_level = 2
    case.supervision_raised_at.CopyFrom(pb.ts(NOW))
    due = CALENDAR.working_days_end(NOW, 5)
    case.supervision_due.CopyFrom(pb.ts(due))
    assert kinds(case)["supervision"] == due
    limits = limits_of(SLA, case.sla_lanes)
    timer = next(t for t in core.case_timers(case, limits, CALENDAR) if t.kind == "supervision")
    (missed,) = core.deadline_events([Fired(timer, Stage.DUE, due)], {"C1": case}, "cases")
    assert missed.message.deadline.clock == deadlines_pb2.DEADLINE_CLOCK_SUPERVISION  # type: ignore[attr-defined]
    case.state = lc.ARCHIVED
    assert "supervision" not in kinds(case)
