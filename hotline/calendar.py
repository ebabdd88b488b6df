"""The statutory working-day calendar (法定工作日, 调休 included) and the rule for periods.

Working days come from ``hotline/data/calendar_overrides.json`` where it lists a date, else from the
``chinesecalendar`` package for the years it knows, else from plain weekdays. A year in the file
is ``official`` once the State Council's notice (国务院办公厅关于X年部分节假日安排的通知) is
entered, or ``provisional`` while only the statutory holidays themselves are known (the
make-up days come with the notice). :meth:`WorkCalendar.known_until` is the last day covered by
official data, which the start-up check and the ``hotline_calendar_known_days_ahead`` gauge report.

The rule for periods (Civil Code arts. 201 and 203, applied to working days): a limit of N
working days does not count the day the clock starts and ends at 24:00 (local time) of the
N-th working day after it; 24:00 is returned as 00:00 of the following day. A limit of N
(calendar) days ends at 24:00 of the N-th day after the start; N = 0 is the same day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

OVERRIDES = Path(__file__).resolve().parent / "data" / "calendar_overrides.json"  # kit data, shared by the services
SHANGHAI = ZoneInfo("Asia/Shanghai")
PACKAGE_LAST_YEAR = max(d.year for d in (*chinese_calendar.holidays, *chinese_calendar.workdays))
MAX_SPAN_DAYS = 366 * 2  # a period longer than this is a bad limit, not a long wait


@dataclass(frozen=True)
class YearOverride:
    year: int
    official: bool
    source: str
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)


def load_overrides(path: Path) -> dict[int, YearOverride]:
    """Parse and check the override file: every date inside its year, no date both ways."""
    data = json.loads(path.read_text("utf-8")) if path.exists() else {}
    years: dict[int, YearOverride] = {}
    for key, entry in data.get("years", {}).items():
        year = int(key)
        holidays = frozenset(date.fromisoformat(d) for d in entry.get("holidays", []))
        workdays = frozenset(date.fromisoformat(d) for d in entry.get("workdays", []))
        stray = sorted(d.isoformat() for d in holidays | workdays if d.year != year)
        if stray:
            raise ValueError(f"{path}: year {year} lists dates of another year: {stray}")
        if both := sorted(d.isoformat() for d in holidays & workdays):
            raise ValueError(f"{path}: {both} are both holiday and workday")
        status = entry.get("status", "provisional")
        if status not in ("official", "provisional"):
            raise ValueError(f"{path}: year {year} has status {status!r}, expected official or provisional")
        years[year] = YearOverride(year, status == "official", entry.get("source", ""), holidays, workdays)
    return years


class WorkCalendar:
    """Working days and period ends in the district's time zone."""

    def __init__(self, overrides: Path = OVERRIDES, tz: ZoneInfo = SHANGHAI) -> None:
        self.tz = tz
        self.source = overrides
        self.years = load_overrides(overrides)
        self._known: dict[date, bool] = {}  # the package validates its input on every call: remember days

    # -- days -------------------------------------------------------------------------------------

    def is_workday(self, day: date) -> bool:
        if (known := self._known.get(day)) is None:
            known = self._known[day] = self._is_workday(day)
        return known

    def _is_workday(self, day: date) -> bool:
        override = self.years.get(day.year)
        if override and day in override.holidays:  # the file wins (it can also correct the package)
            return False
        if override and day in override.workdays:
            return True
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # a year the package does not know: weekdays
            return day.weekday() < 5

    def known_until(self) -> date:
        """The last day covered by official data (the package, then official override years)."""
        year = PACKAGE_LAST_YEAR
        while (override := self.years.get(year + 1)) is not None and override.official:
            year += 1
        return date(year, 12, 31)

    def known_days_ahead(self, now: datetime) -> int:
        """Days from today (local) to the last officially known day; negative once past it."""
        return (self.known_until() - now.astimezone(self.tz).date()).days

    def local_day(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()

    # -- the rule for periods ---------------------------------------------------------------------

    def end_of_day(self, day: date) -> datetime:
        """24:00 of ``day``, local time, as 00:00 of the next day."""
        return datetime.combine(day + timedelta(days=1), time(0, 0), self.tz)

    def working_days_end(self, start: datetime, days: int) -> datetime:
        """End of a period of ``days`` working days starting at ``start``: the start day is not
        counted; 24:00 of the ``days``-th working day after it. 0 days: end of the start day."""
        if days < 0:
            raise ValueError("a period cannot be negative")
        day = self.local_day(start)
        limit = day + timedelta(days=MAX_SPAN_DAYS)
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if day > limit:
                raise ValueError(f"{days} working days do not fit in {MAX_SPAN_DAYS} days")
            if self.is_workday(day):
                counted += 1
        return self.end_of_day(day)

    def days_end(self, start: datetime, days: int) -> datetime:
        """End of a period of ``days`` calendar days: 24:00 of the ``days``-th day after the start
        day (0: the same day)."""
        if days < 0:
            raise ValueError("a period cannot be negative")
        return self.end_of_day(self.local_day(start) + timedelta(days=days))
