"""The rule for periods on the statutory working-day calendar (Civil Code arts. 201 and 203
applied to working days): the start day does not count; a period of N working days ends at
24:00 (Asia/Shanghai) of the N-th working day, returned as 00:00 of the next day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hotline.calendar import PACKAGE_LAST_YEAR, WorkCalendar

TZ = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


def end_of(y: int, m: int, d: int) -> datetime:
    """24:00 of that local day."""
    return datetime(y, m, d, tzinfo=TZ) + timedelta(days=1)


@pytest.mark.parametrize(("start", "days", "due", "why"), [
    # the brief's two examples: both end at the end of that Thursday / Friday
    (at(2026, 11, 19, 10), 5, end_of(2026, 11, 26), "Thursday 10:00: Fri Mon Tue Wed Thu"),
    (at(2026, 11, 21, 15), 5, end_of(2026, 11, 27), "Saturday 15:00: Mon..Fri"),
    (at(2026, 11, 19, 23, 59), 5, end_of(2026, 11, 26), "the time of day does not matter"),
    (at(2026, 11, 19, 0, 0), 5, end_of(2026, 11, 26), "nor a start at midnight: the start day never counts"),
    (at(2026, 11, 22, 9), 1, end_of(2026, 11, 23), "Sunday: Monday is the first day"),
    (at(2026, 11, 27, 17), 1, end_of(2026, 11, 30), "Friday evening: Monday"),
    # 春节 2026: 02-15..02-23 off; Saturdays 02-14 and 02-28 are make-up workdays (调休)
    (at(2026, 2, 13), 5, end_of(2026, 2, 27), "Fri before 春节: Sat 14 (make-up), then Tue 24..Fri 27"),
    (at(2026, 2, 18), 1, end_of(2026, 2, 24), "received during 春节: first working day after it"),
    (at(2026, 2, 25), 5, end_of(2026, 3, 3), "Wed 25: Thu Fri Sat 28 (make-up) Mon Tue"),
    (at(2026, 2, 13), 15, end_of(2026, 3, 12), "complex (15): Sat 14, Tue 24..Fri 27, Sat 28, 2 weeks to Thu 12"),
    # 劳动节 2026: 05-01..05-05 off; Saturday 05-09 a make-up workday
    (at(2026, 4, 30, 16), 5, end_of(2026, 5, 11), "Thu 30 Apr: Wed 6, Thu 7, Fri 8, Sat 9 (make-up), Mon 11"),
    (at(2026, 5, 2), 2, end_of(2026, 5, 7), "received on the holiday: Wed 6, Thu 7"),
    # 中秋 09-25..27 and 国庆 10-01..07 2026; Sunday 09-20 and Saturday 10-10 make-up workdays
    (at(2026, 9, 18), 5, end_of(2026, 9, 24), "Fri 18: Sun 20 (make-up), Mon..Thu"),
    (at(2026, 9, 24), 3, end_of(2026, 9, 30), "Thu 24 before 中秋: Mon 28, Tue 29, Wed 30"),
    (at(2026, 9, 30, 9), 5, end_of(2026, 10, 13), "Wed 30 Sep: Thu 8, Fri 9, Sat 10 (make-up), Mon 12, Tue 13"),
    (at(2026, 9, 30, 9), 10, end_of(2026, 10, 20), "extension-sized limit across 国庆"),
    # into 2027 (provisional data from calendar_overrides.json: statutory days only)
    (at(2026, 12, 31), 1, end_of(2027, 1, 4), "New Year's Day 2027 is a holiday, then a weekend"),
    (at(2027, 2, 4), 3, end_of(2027, 2, 11), "春节 2027: 除夕 Fri 5 .. 初三 Mon 8 off"),
])
def test_working_day_periods_end_at_24_00_of_the_last_working_day(
    start: datetime, days: int, due: datetime, why: str
) -> None:
    assert CAL.working_days_end(start, days) == due, why


def test_days_not_working_days_end_at_24_00_and_zero_is_the_same_day() -> None:
    assert CAL.days_end(at(2026, 10, 3, 15), 0) == end_of(2026, 10, 3)
    assert CAL.days_end(at(2026, 10, 3, 23, 59), 1) == end_of(2026, 10, 4)
    assert CAL.working_days_end(at(2026, 10, 3), 0) == end_of(2026, 10, 3)


def test_local_midnight_is_the_day_boundary_not_utc() -> None:
    # 2026-11-19 17:00 UTC is Friday 01:00 in Shanghai: the clock starts on Friday
    start = datetime(2026, 11, 19, 17, 0, tzinfo=ZoneInfo("UTC"))
    assert CAL.working_days_end(start, 1) == end_of(2026, 11, 23)
    assert CAL.working_days_end(start, 1).astimezone(ZoneInfo("UTC")) == datetime(2026, 11, 23, 16, 0,
                                                                                    tzinfo=ZoneInfo("UTC"))


def test_statutory_calendar_with_make_up_days() -> None:
    assert not CAL.is_workday(date(2026, 10, 5))
    assert CAL.is_workday(date(2026, 10, 10))  # Saturday make-up day
    assert CAL.is_workday(date(2026, 2, 14)) and CAL.is_workday(date(2026, 2, 28))
    assert not CAL.is_workday(date(2026, 2, 23))  # Monday in 春节
    assert not CAL.is_workday(date(2027, 2, 8))  # provisional 2027: 初三 is statutory


def test_negative_or_absurd_periods_are_refused() -> None:
    with pytest.raises(ValueError):
        CAL.working_days_end(at(2026, 11, 19), -1)


def test_years_beyond_the_package_use_the_override_file(tmp_path: Path) -> None:
    year = PACKAGE_LAST_YEAR + 1
    overrides = tmp_path / "o.json"
    overrides.write_text(f'{{"years": {{"{year}": {{"status": "official", "holidays": ["{year}-01-04"],'
                         f' "workdays": ["{year}-01-09"]}}}}}}')
    cal = WorkCalendar(overrides)
    assert not cal.is_workday(date(year, 1, 4))
    assert cal.is_workday(date(year, 1, 9))
    assert cal.is_workday(date(year, 1, 11)) == (date(year, 1, 11).weekday() < 5)
    assert cal.known_until() == date(year, 12, 31)


def test_known_days_ahead_counts_official_years_only(tmp_path: Path) -> None:
    year = PACKAGE_LAST_YEAR + 1
    provisional = tmp_path / "p.json"
    provisional.write_text(f'{{"years": {{"{year}": {{"status": "provisional", "holidays": ["{year}-01-01"]}}}}}}')
    cal = WorkCalendar(provisional)
    assert cal.known_until() == date(PACKAGE_LAST_YEAR, 12, 31)
    assert cal.known_days_ahead(datetime(PACKAGE_LAST_YEAR, 11, 26, 12, tzinfo=TZ)) == 35
    assert cal.known_days_ahead(datetime(PACKAGE_LAST_YEAR + 1, 1, 2, tzinfo=TZ)) == -2
    assert WorkCalendar().known_until() == date(PACKAGE_LAST_YEAR, 12, 31)  # 2027 is provisional in the file


def test_a_bad_override_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text('{"years": {"2027": {"holidays": ["2028-01-01"]}}}')
    with pytest.raises(ValueError, match="another year"):
        WorkCalendar(bad)
    bad.write_text('{"years": {"2027": {"holidays": ["2027-01-09"], "workdays": ["2027-01-09"]}}}')
    with pytest.raises(ValueError, match="both"):
        WorkCalendar(bad)
