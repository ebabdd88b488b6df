"""The clocks issue #22 still missed (s2-22-clocks): a community's 加派 limit, the office's deputy
callback (回访) clock, the assisting units' contribution limit from the SLA policy, and what a
miss raises (the policy's ``overdue_levels``)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from hotline import pb
from hotline.auth import Principal
from hotline.timers import Fired, Stage
from hotline.v1 import deadlines_pb2, events_pb2, lifecycle_pb2, routing_pb2
from services.supervision.cases import core
from services.supervision.cases import lifecycle as lc
from services.supervision.cases.sla import PolicyError, SlaClock, clock_of, limits_of, parse_policy, unit_kind
from tests.unit.test_lifecycle import (
    CALENDAR,
    NOW,
    OFFICE,
    PASS,
    POLICY,
    REPLY,
    SLA,
    SYSTEM,
    T0,
    TZ,
    UNIT,
    after,
    assigned,
    handled,
    open_case,
    opened,
    refused,
)

ROUTING = Principal.system("routing")
COMMUNITY = events_pb2.Unit(unit_id="CM0101", name="瑞金新村社区", unit_type=events_pb2.UNIT_TYPE_COMMUNITY)


def timers(case: events_pb2.Case) -> dict[str, object]:
    limits = limits_of(SLA, case.sla_lanes)
    return {t.kind: t for t in core.case_timers(case, limits, CALENDAR)}


def sub_dispatched(round_: int = 1, due_days: int | None = None) -> routing_pb2.SubDispatched:
    s = routing_pb2.SubDispatched(ticket_id="C1", dispatch_round=round_,
                                  street_unit=events_pb2.Unit(unit_id="ST01", name="瑞金路街道"),
                                  community_unit=COMMUNITY, reason="社区先行处置", dispatched_at=pb.ts(NOW))
    if due_days is not None:
        s.due.CopyFrom(pb.ts(CALENDAR.working_days_end(NOW, due_days)))
    return s


def test_a_sub_dispatch_runs_the_communitys_limit_from_the_policy_until_the_case_leaves_its_units() -> None:
    case = after(opened(assisting=()), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    refused("permission_denied", case, sub_dispatched(), UNIT)  # routing's, not a unit's
    sent = after(case, sub_dispatched(due_days=5), ROUTING)  # the street asked 5: the policy's 2 is the cap
    policy_due = CALENDAR.working_days_end(NOW, SLA.defaults[SlaClock.SUB_DISPATCH].amount)
    assert SLA.defaults[SlaClock.SUB_DISPATCH].amount == 2
    (task,) = sent.sub_dispatches
    assert task.community_unit_id == "CM0101" and pb.dt(task.due) == policy_due and task.dispatch_round == 1
    timer = timers(sent)["sub_dispatch_cm0101"]
    assert timer.due_at == policy_due and timer.warn_at is not None and NOW < timer.warn_at < policy_due
    assert sent.state == case.state and sent.revision == case.revision + 1  # recorded, no change of state
    shorter = after(case, sub_dispatched(due_days=1), ROUTING)  # the street may name a shorter limit
    assert pb.dt(shorter.sub_dispatches[0].due) == CALENDAR.working_days_end(NOW, 1)
    again = lc.decide(sent, sub_dispatched(due_days=5), ROUTING, NOW, POLICY)
    assert again.state is None  # the same community and round: recorded once
    stale = lc.decide(sent, sub_dispatched(round_=7), ROUTING, NOW, POLICY)
    assert stale.state is None  # another round's
    replied = after(after(sent, lifecycle_pb2.RecordContactRequest(
        ticket_id="C1", channel=1, outcome=1)), REPLY)
    assert not any(k.startswith("sub_dispatch") for k in timers(replied))  # the reply ends it


def test_a_missed_sub_dispatch_names_the_community_and_raises_level_one() -> None:
    case = after(after(opened(assisting=()), lifecycle_pb2.SignOffRequest(ticket_id="C1")), sub_dispatched(),
                 ROUTING)
    timer = timers(case)["sub_dispatch_cm0101"]
    assert clock_of(timer.kind) == SlaClock.SUB_DISPATCH and unit_kind(SlaClock.SUB_DISPATCH, "CM0101") == timer.kind
    soon, due = Fired(timer, Stage.DUE_SOON, timer.warn_at), Fired(timer, Stage.DUE, timer.due_at)
    events = core.deadline_events([soon, due], {"C1": case}, "cases")
    assert [e.message.deadline.clock for e in events] == [deadlines_pb2.DEADLINE_CLOCK_SUB_DISPATCH] * 2  # type: ignore[attr-defined]
    assert {e.message.deadline.unit.unit_id for e in events} == {"CM0101"}  # type: ignore[attr-defined]
    (reminder,) = core.reminders([soon], {"C1": case}, "n", TZ)
    assert reminder.message.unit.unit_id == "CM0101" and "加派办理" in reminder.message.text  # type: ignore[attr-defined]
    (missed,) = core.first_missed([soon, due]).values()
    assert core.supervision_raised(missed, case, "cases").message.level == 1  # type: ignore[attr-defined]


def deputy_reported() -> events_pb2.Case:
    a = assigned(city="")
    a.assignment.ticket_id = "RD-1"
    case = open_case(a, T0)
    case.ClearField("assists")
    for request, actor in ((lifecycle_pb2.SignOffRequest(ticket_id="RD-1"), UNIT),
                           (lifecycle_pb2.RecordContactRequest(ticket_id="RD-1", channel=1, outcome=1), UNIT),
                           (lifecycle_pb2.ReplyRequest(ticket_id="RD-1", result=1, text="已办结"), UNIT),
                           (lifecycle_pb2.ReviewRequest(ticket_id="RD-1", passed=True), OFFICE)):
        case = after(case, request, actor)
    assert case.state == lc.REPORTED
    return case


def test_a_deputys_reported_result_runs_the_offices_callback_clock_which_raises_no_supervision() -> None:
    case = deputy_reported()
    timer = timers(case)["deputy_callback"]
    assert timer.due_at == CALENDAR.working_days_end(pb.dt(case.reported_at), 5)
    assert timer.warn_at is not None and timer.data == {"level": 0}  # the policy: an alarm, no 督办
    soon, due = Fired(timer, Stage.DUE_SOON, timer.warn_at), Fired(timer, Stage.DUE, timer.due_at)
    events = core.deadline_events([soon, due], {"RD-1": case}, "cases")
    assert {e.message.deadline.unit.unit_id for e in events} == {"office"}  # type: ignore[attr-defined]
    assert {e.message.deadline.clock for e in events} == {deadlines_pb2.DEADLINE_CLOCK_DEPUTY_CALLBACK}  # type: ignore[attr-defined]
    assert core.first_missed([soon, due]) == {}  # the office's own clock: no 督办 of the unit
    rated = after(case, lifecycle_pb2.CityEvaluation(
        evaluation_id="deputy/RD-1/1", city_ticket_id="RD-1", satisfaction=1, resolution=1,
        evaluated_at=pb.ts(NOW)), SYSTEM)
    assert "deputy_callback" not in timers(rated)  # rated: the clock stops
    city = after(after(handled(), REPLY), PASS, OFFICE)
    assert city.state == lc.REPORTED and "deputy_callback" not in timers(city)  # the city calls back its own


def test_assisting_units_contribute_within_the_policys_limit() -> None:
    doc = json.loads(json.dumps(SLA.doc))
    doc["defaults"]["assist_contribution"] = {"working_days": 1}
    one_day = parse_policy(doc)
    case = core.open_case(assigned(), T0, one_day, CALENDAR)[0]
    received = T0 - timedelta(minutes=5)
    assert pb.dt(case.assists[0].contribution_due) == CALENDAR.working_days_end(received, 1)
    shipped = opened()
    assert pb.dt(shipped.assists[0].contribution_due) == CALENDAR.working_days_end(received, 3)


def test_overdue_levels_are_checked() -> None:
    doc = json.loads(json.dumps(SLA.doc))
    assert parse_policy(doc).overdue_levels == {SlaClock.DEPUTY_CALLBACK: 0}
    for bad in ({"deputy_callback": 2}, {"nothing": 0}, ["reply"]):
        doc["overdue_levels"] = bad
        with pytest.raises(PolicyError, match="overdue_levels"):
            parse_policy(doc)
    doc["overdue_levels"] = {"sub_dispatch": 0}
    limits = limits_of(parse_policy(doc), [])
    assert limits.overdue_level(SlaClock.SUB_DISPATCH) == 0 and limits.overdue_level(SlaClock.REPLY) == 1


# ------------------------------------------------------------------------------ 吹哨报到


def test_a_whistle_runs_each_summoned_units_report_in_limit_until_it_reports_in() -> None:
    from hotline.v1 import supervision_pb2 as sv
    from services.supervision.levels import whistle_clocks as wc
    from services.supervision.levels import whistles as wh
    from tests.unit.test_escalation import PRIMARY, RULES, STREET, blow

    w = blow(ticket_id="C9")  # ST01 summons DP01 and DP02, 24 h (supervision_limits.json)
    running = {t.kind: t for t in wc.whistle_timers(w, SLA.due_soon_fraction)}
    assert set(running) == {"whistle_report_in_dp01", "whistle_report_in_dp02"}
    blown = pb.dt(w.blown_at)
    timer = running["whistle_report_in_dp02"]
    assert timer.due_at == blown + timedelta(hours=RULES.report_in_hours)
    assert timer.warn_at == blown + timedelta(hours=RULES.report_in_hours) * SLA.due_soon_fraction
    assert clock_of(timer.kind) == SlaClock.WHISTLE_REPORT_IN
    reported = wh.report_in(w, sv.ReportInRequest(whistle_id="WH-1"), PRIMARY, blown + timedelta(hours=1)).state
    assert reported is not None
    assert [t.kind for t in wc.whistle_timers(reported, 0.8)] == ["whistle_report_in_dp02"]  # DP01 reported in
    closed = wh.close(reported, sv.CloseWhistleRequest(whistle_id="WH-1", outcome="已处置"), STREET, blown).state
    assert closed is not None and wc.whistle_timers(closed, 0.8) == []  # closed: no clock runs

    soon, due = Fired(timer, Stage.DUE_SOON, timer.warn_at), Fired(timer, Stage.DUE, timer.due_at)
    names = {"DP02": "区城管局"}.get
    events = wc.whistle_events([soon, due], {"WH-1": w}, "cases", "notes", TZ, lambda u: names(u) or "")
    deadline_events = [e for e in events if e.topic == "cases"]
    assert [type(e.message).__name__ for e in deadline_events] == ["DeadlineDueSoon", "DeadlineMissed"]
    for e in deadline_events:
        d = e.message.deadline  # type: ignore[attr-defined]
        assert d.clock == deadlines_pb2.DEADLINE_CLOCK_WHISTLE_REPORT_IN and d.whistle_id == "WH-1"
        assert d.unit.unit_id == "DP02" and d.unit.name == "区城管局" and d.primary_unit.unit_id == "ST01"
        assert e.key == "C9" and d.ticket_id == "C9"
    (reminder,) = [e for e in events if e.topic == "notes"]
    assert reminder.message.unit.unit_id == "DP02"  # type: ignore[attr-defined]
    assert "区城管局" in reminder.message.text and "吹哨报到时限" in reminder.message.text  # type: ignore[attr-defined]
    again = wc.whistle_events([soon, due], {"WH-1": w}, "cases", "notes", TZ, lambda u: "")
    assert [e.event_id for e in again] == [e.event_id for e in events]  # deterministic ids: a rescan is the same
    loose = wc.whistle_events([due], {}, "cases", "", TZ, lambda u: "")  # a whistle without a ticket: keyed by it
    assert loose[0].key == "WH-1" and len(loose) == 1
