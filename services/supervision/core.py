"""Supervision's pure domain logic: the case clock (时限) on the statutory working-day calendar, and
the city's callback evaluations (回访) read and validated. The lifecycle is in lifecycle.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import orjson
from google.protobuf import json_format

from hotline import pb
from hotline.envelope import PermanentError
from hotline.settings import LimitSettings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, ticket_pb2
from services.intake.core import TICKET_ID, known_fields  # the city's JSON is read one way

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
    assists = []
    if a.assisting_units:  # 协办 sub-cases: sign off like the primary, contribute within their own limit
        contribution_due = pb.ts(min(calendar.add_working_days(local_received, limits.assist_working_days), reply_due))
        waiting = case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF
        assists = [case_pb2.AssistTask(unit_id=u.unit_id, unit_name=u.name, state=waiting,
                                       sign_off_due=pb.ts(sign_off_due), contribution_due=contribution_due)
                   for u in a.assisting_units]
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


EVALUATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-:./]{0,127}\Z")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_COMMENT_CHARS = 2000


def parse_city_evaluation(raw: bytes, latest: datetime) -> lifecycle_pb2.CityEvaluation:
    """Parse and validate the city's callback evaluation (回访, the JSON mapping of
    CityEvaluation, docs/city-results.md) like intake does the city's tickets: PermanentError
    with reason ``malformed_json``, ``schema`` or ``missing_field``. ``latest``: the latest
    instant ``evaluated_at`` may name."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PermanentError("malformed_json", str(exc)) from exc
    if not isinstance(obj, dict):
        raise PermanentError("schema", f"expected a JSON object, got {type(obj).__name__}")
    try:
        e = json_format.ParseDict(known_fields(obj, lifecycle_pb2.CityEvaluation.DESCRIPTOR),
                                  lifecycle_pb2.CityEvaluation())
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise PermanentError("schema", str(exc)[:500]) from exc
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
