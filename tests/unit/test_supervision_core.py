from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hotline import pb
from hotline.settings import LimitSettings
from hotline.v1 import events_pb2, ticket_pb2
from services.supervision.core import WorkCalendar, open_case

TZ = ZoneInfo("Asia/Shanghai")


def test_working_days_skip_the_national_day_holiday_and_count_make_up_days() -> None:
    cal = WorkCalendar()
    # 2026: 10-01..10-07 off; Saturday 10-10 is a make-up workday (调休)
    assert not cal.is_workday(datetime(2026, 10, 5).date())
    assert cal.is_workday(datetime(2026, 10, 10).date())
    due = cal.add_working_days(datetime(2026, 9, 29, 10, 0, tzinfo=TZ), 5)
    assert due == datetime(2026, 10, 12, 10, 0, tzinfo=TZ)


def test_a_ticket_received_on_a_rest_day_counts_from_the_next_workday_morning() -> None:
    cal = WorkCalendar()
    due = cal.add_working_days(datetime(2026, 11, 28, 22, 0, tzinfo=TZ), 1)  # Saturday night
    assert due == datetime(2026, 11, 30, 9, 0, tzinfo=TZ)


def test_years_beyond_the_package_use_weekdays_and_the_override_file(tmp_path: Path) -> None:
    overrides = tmp_path / "o.json"
    overrides.write_text('{"holidays": ["2027-01-04"], "workdays": ["2027-01-09"]}')
    cal = WorkCalendar(overrides)
    assert not cal.is_workday(datetime(2027, 1, 4).date())
    assert cal.is_workday(datetime(2027, 1, 9).date())  # a Saturday made a workday
    assert not cal.is_workday(datetime(2027, 1, 10).date())


def assigned(urgency: int = ticket_pb2.URGENCY_NORMAL, tags: tuple[str, ...] = (), days: int = 0,
             received: datetime = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)) -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(ticket_id="T1", primary_unit=events_pb2.Unit(unit_id="ST01"),
                                         assigned_at=pb.ts(received), dispatch_round=1),
        urgency=urgency, received_at=pb.ts(received), tags=list(tags), time_limit_working_days=days)


def test_case_deadlines_follow_the_limits() -> None:
    now = datetime(2026, 11, 23, 2, 1, tzinfo=UTC)
    limits, cal = LimitSettings(), WorkCalendar()
    normal = open_case(assigned(), now, limits, cal, TZ)
    assert pb.dt(normal.sign_off_due) - pb.dt(normal.opened_at) < pb.dt(normal.reply_due) - pb.dt(normal.opened_at)
    assert (pb.dt(normal.sign_off_due) - datetime(2026, 11, 23, 2, 0, tzinfo=UTC)).total_seconds() == 24 * 3600
    assert pb.dt(normal.reply_due).astimezone(TZ).date().isoformat() == "2026-11-30"  # Mon + 5 working days
    urgent = open_case(assigned(urgency=ticket_pb2.URGENCY_URGENT), now, limits, cal, TZ)
    assert (pb.dt(urgent.sign_off_due) - datetime(2026, 11, 23, 2, 0, tzinfo=UTC)).total_seconds() == 2 * 3600
    city_limit = open_case(assigned(days=10), now, limits, cal, TZ)
    assert pb.dt(city_limit.reply_due).astimezone(TZ).date().isoformat() == "2026-12-07"


def test_holiday_tourist_tickets_are_due_the_same_day() -> None:
    holiday = datetime(2026, 10, 3, 3, 0, tzinfo=UTC)
    case = open_case(assigned(tags=("旅游",), received=holiday), holiday, LimitSettings(), WorkCalendar(), TZ)
    assert pb.dt(case.reply_due).astimezone(TZ) == datetime(2026, 10, 3, 23, 59, 59, tzinfo=TZ)
