"""Opening a case under the SLA policy: its due times, its timers, and what a fired timer means."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hotline import pb
from hotline.calendar import WorkCalendar
from hotline.settings import SlaSettings
from hotline.timers import Fired, Stage, Timer
from hotline.v1 import deadlines_pb2, events_pb2, ticket_pb2
from services.supervision.cases import core
from services.supervision.cases.core import deadline_events, first_missed, supervision_raised
from services.supervision.cases.sla import Limits, Policy, limits_of, parse_policy

TZ = ZoneInfo("Asia/Shanghai")
POLICY = parse_policy(json.loads(SlaSettings().policy_file.read_text("utf-8")))
CAL = WorkCalendar()


def open_case(request: events_pb2.TicketAssigned, now: datetime, policy: Policy, calendar: WorkCalendar,
              ) -> tuple[events_pb2.Case, Limits, list[Timer]]:
    """A case as it opens, with the clocks its first state runs."""
    case, limits = core.open_case(request, now, policy, calendar)
    return case, limits, core.case_timers(case, limits, calendar)


def assigned(received: datetime, urgency: int = ticket_pb2.URGENCY_NORMAL, tags: tuple[str, ...] = (),
             days: int = 0, category: str = "物业管理") -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(
            ticket_id="T1", primary_unit=events_pb2.Unit(unit_id="ST01", name="瑞金路街道",
                                                         unit_type=events_pb2.UNIT_TYPE_STREET),
            category=category, assigned_at=pb.ts(received + timedelta(minutes=2)), dispatch_round=1),
        ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, urgency=urgency, received_at=pb.ts(received), tags=list(tags),
        time_limit_working_days=days)


def local(ts: object) -> datetime:
    return pb.dt(ts).astimezone(TZ)  # type: ignore[arg-type]


def test_a_case_gets_its_due_times_by_the_policy_and_the_rule_for_periods() -> None:
    received = datetime(2026, 11, 19, 10, tzinfo=TZ)  # Thursday
    case, limits, timers = open_case(assigned(received), received + timedelta(minutes=3), POLICY, CAL)
    assert local(case.reply_due) == datetime(2026, 11, 27, tzinfo=TZ)  # 24:00 of next Thursday
    assert local(case.sign_off_due) == datetime(2026, 11, 20, 10, 2, tzinfo=TZ)  # 24 clock hours after assignment
    assert local(case.contact_due) == datetime(2026, 11, 21, tzinfo=TZ)  # 1 working day: 24:00 Friday
    assert case.policy_version == POLICY.version
    assert list(case.sla_lanes) == []
    assert [t.key for t in timers] == ["T1/sign_off", "T1/contact", "T1/reply"]
    reply = timers[2]
    assert reply.due_at == pb.dt(case.reply_due)
    assert reply.warn_at == pb.dt(case.received_at) + (reply.due_at - pb.dt(case.received_at)) * 0.8
    assert reply.data == {}  # what the events say is read from the case when it fires
    assert limits_of(POLICY, case.sla_lanes) == limits  # rebuilt from what the case keeps


def test_saturday_tickets_and_urgent_and_holiday_tourist_lanes() -> None:
    saturday = datetime(2026, 11, 21, 15, tzinfo=TZ)
    case, _, _ = open_case(assigned(saturday), saturday, POLICY, CAL)
    assert local(case.reply_due) == datetime(2026, 11, 28, tzinfo=TZ)  # 24:00 Friday
    urgent, _, _ = open_case(assigned(saturday, urgency=ticket_pb2.URGENCY_URGENT), saturday, POLICY, CAL)
    assert local(urgent.sign_off_due) == datetime(2026, 11, 21, 17, 2, tzinfo=TZ)
    assert list(urgent.sla_lanes) == ["emergency"]
    national_day = datetime(2026, 10, 3, 11, tzinfo=TZ)
    tourist, _, _ = open_case(assigned(national_day, urgency=ticket_pb2.URGENCY_URGENT, tags=("旅游",)), national_day,
                           POLICY, CAL)
    assert local(tourist.reply_due) == datetime(2026, 10, 4, tzinfo=TZ)  # same day, 24:00
    assert local(tourist.sign_off_due) == datetime(2026, 10, 3, 11, 32, tzinfo=TZ)  # 30 minutes after assignment


def test_a_city_limit_is_kept() -> None:
    received = datetime(2026, 11, 23, 10, tzinfo=TZ)
    case, _, _ = open_case(assigned(received, days=10), received, POLICY, CAL)
    assert local(case.reply_due) == datetime(2026, 12, 8, tzinfo=TZ)


RECEIVED = datetime(2026, 11, 19, 10, tzinfo=TZ)
CASE, _, TIMERS = open_case(assigned(RECEIVED), RECEIVED, POLICY, CAL)


def fired(kind: str, stage: Stage, ticket: str = "T1") -> Fired:
    timers = TIMERS
    timer = next(t for t in timers if t.kind == kind)
    timer = dataclasses.replace(timer, subject=ticket)
    return Fired(timer, stage, datetime(2026, 11, 30, tzinfo=UTC))


def test_fired_stages_become_typed_events_with_deterministic_ids() -> None:
    events = deadline_events([fired("sign_off", Stage.DUE_SOON), fired("sign_off", Stage.DUE)], {"T1": CASE}, "cases")
    soon, missed = events
    assert isinstance(soon.message, deadlines_pb2.DeadlineDueSoon)
    assert isinstance(missed.message, deadlines_pb2.DeadlineMissed)
    d = missed.message.deadline
    assert (d.ticket_id, d.clock, d.dispatch_round, d.primary_unit.unit_id) == \
        ("T1", deadlines_pb2.DEADLINE_CLOCK_SIGN_OFF, 1, "ST01")
    assert d.primary_unit.unit_type == events_pb2.UNIT_TYPE_STREET
    assert (d.category, d.policy_version) == ("物业管理", POLICY.version)
    assert soon.event_id != missed.event_id
    again = deadline_events([fired("sign_off", Stage.DUE)], {"T1": CASE}, "cases")[0]  # fired again: same id
    assert again.event_id == missed.event_id
    assert all(e.key == "T1" and e.topic == "cases" for e in events)


def test_the_first_miss_of_each_case_is_the_supervision_candidate() -> None:
    batch = [fired("contact", Stage.DUE_SOON), fired("sign_off", Stage.DUE), fired("reply", Stage.DUE),
             fired("reply", Stage.DUE, ticket="T2")]
    firsts = first_missed(batch)
    assert {k: f.timer.kind for k, f in firsts.items()} == {"T1": "sign_off", "T2": "reply"}
    raised = supervision_raised(firsts["T1"], CASE, "cases")
    assert raised.event_id == "T1/supervision/1"
    assert isinstance(raised.message, deadlines_pb2.OverdueSupervisionRaised)
    assert (raised.message.level, raised.message.reason) == (1, "deadline_missed:sign_off")


async def test_the_timers_ask_for_level_one_and_leave_the_level_to_the_escalation_module() -> None:
    from services.supervision.cases.handlers import DeadlineAlarms

    supervised = events_pb2.Case()
    supervised.CopyFrom(CASE)
    supervised.ticket_id, supervised.supervision_level = "T2", 2

    class Cases:  # reads only: a write (the level) would fail here
        async def get_many(self, ids: list[str], session: object = None) -> dict[str, events_pb2.Case]:
            return {"T1": CASE, "T2": supervised}

    alarms = DeadlineAlarms(Cases(), "cases")  # type: ignore[arg-type]
    events = await alarms([fired("sign_off", Stage.DUE), fired("reply", Stage.DUE),
                           fired("reply", Stage.DUE, ticket="T2")], None)  # type: ignore[arg-type]
    asked = [e for e in events if isinstance(e.message, deadlines_pb2.OverdueSupervisionRaised)]
    assert [(e.key, e.event_id, e.message.clock) for e in asked] == [  # type: ignore[attr-defined]
        ("T1", "T1/supervision/1", deadlines_pb2.DEADLINE_CLOCK_SIGN_OFF)]  # T2 is supervised already
    assert CASE.supervision_level == 0
