"""Supervision's pure domain logic: the case clock (时限) on the statutory working-day calendar."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

from hotline import pb
from hotline.settings import LimitSettings
from hotline.v1 import case_pb2, events_pb2, ticket_pb2

OVERRIDES = Path(__file__).parent / "data" / "calendar_overrides.json"


class WorkCalendar:
    """Working days per the statutory calendar including make-up workdays (调休).

    Years the chinesecalendar package covers use its data; later years use weekdays plus the
    office's override file, until a package update brings the State Council's schedule.
    """

    def __init__(self, overrides: Path = OVERRIDES) -> None:
        data = json.loads(overrides.read_text("utf-8")) if overrides.exists() else {}
        self.holidays = {date.fromisoformat(d) for d in data.get("holidays", [])}
        self.workdays = {date.fromisoformat(d) for d in data.get("workdays", [])}
        self._known: dict[date, bool] = {}  # the package validates its input on every call: remember days

    def is_workday(self, day: date) -> bool:
        if (known := self._known.get(day)) is None:
            known = self._known[day] = self._is_workday(day)
        return known

    def _is_workday(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """``days`` working days after ``start``, same local time of day; a start on a rest day
        counts from the next working day's morning."""
        current = start
        if not self.is_workday(current.date()):
            current = datetime.combine(current.date(), time(9, 0), current.tzinfo)
        remaining = days
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_workday(current.date()):
                remaining -= 1
        return current


def open_case(
    assigned: events_pb2.TicketAssigned, now: datetime, limits: LimitSettings, calendar: WorkCalendar, tz: ZoneInfo
) -> events_pb2.Case:
    a = assigned.assignment
    received = pb.dt(assigned.received_at) if assigned.HasField("received_at") else now
    assigned_at = pb.dt(a.assigned_at) if a.HasField("assigned_at") else now
    urgent = assigned.urgency == ticket_pb2.URGENCY_URGENT
    sign_off_due = assigned_at + timedelta(hours=limits.sign_off_hours_urgent if urgent else limits.sign_off_hours)
    local_received = received.astimezone(tz)
    if limits.tourist_same_day and "旅游" in assigned.tags and not calendar.is_workday(local_received.date()):
        reply_due = datetime.combine(local_received.date(), time(23, 59, 59), tz)  # 假期游客诉求当日办结
    else:
        days = assigned.time_limit_working_days or (
            limits.reply_working_days_deputy if "人大代表" in assigned.tags else limits.reply_working_days
        )
        start = local_received if a.dispatch_round <= 1 else assigned_at.astimezone(tz)  # a re-dispatch starts afresh
        reply_due = calendar.add_working_days(start, days)
    contribution_due = min(calendar.add_working_days(local_received, limits.assist_working_days), reply_due)
    assists = [
        case_pb2.AssistTask(unit_id=u.unit_id, unit_name=u.name, state=case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF,
                            sign_off_due=pb.ts(sign_off_due), contribution_due=pb.ts(contribution_due))
        for u in a.assisting_units
    ]
    return events_pb2.Case(
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
        reply_due=pb.ts(reply_due),
        dispatch_round=a.dispatch_round,
        city_ticket_id=assigned.city_ticket_id,
        assists=assists,
        return_due=pb.ts(calendar.add_working_days(assigned_at.astimezone(tz), limits.return_working_days)),
    )
