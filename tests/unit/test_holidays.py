"""Tourist holidays (旅游节假日): the plan expects last year's hotspots of the same holiday, the
roster is checked, and the holiday's report gives its cohort's figures against last year's."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from hotline.commands import DomainError
from services.metrics import holidays
from services.metrics.kpi import KpiPolicy, Period
from services.metrics.simulate import lifecycles

TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
AS_OF = datetime(2026, 10, 30, tzinfo=TZ)
FACTS = [f for y, seed in (("2025-10", 1), ("2026-10", 2))
         for f in lifecycles(Period.parse(y, TZ), per_day=60, seed=seed, as_of=AS_OF, lead_days=0)]


def national(year: int) -> list[date]:
    return [d for d in (date(year, 10, n) for n in range(1, 10))
            if chinese_calendar.get_holiday_detail(d)[1] == "National Day"]


def test_the_plan_expects_last_years_hotspots_of_the_same_holiday() -> None:
    p = holidays.plan(FACTS, POLICY, 2026, "国庆节", TZ, [{"level": "district"}])
    last = [f for f in FACTS if f.dispatch_round == 1 and f.redo_round == 0
            and f.received_at.astimezone(TZ).date() in national(2025)]  # type: ignore[union-attr]
    assert p["holiday"] == "国庆节" and p["days"] == [d.isoformat() for d in national(2026)]
    assert p["last_year_tickets"] == len(last) > 0
    assert p["expected_categories"] == Counter(f.category for f in last).most_common(POLICY.hotspot_top)
    tourist = [f for f in last if f.lane == "tourist"]
    assert p["expected_tourist_categories"] == Counter(f.category for f in tourist).most_common(POLICY.hotspot_top)
    assert p["roster"] == [{"level": "district"}]


def test_the_holidays_report_gives_its_figures_against_last_year() -> None:
    r = holidays.report(FACTS, POLICY, 2026, "National Day", TZ, AS_OF)
    for key, year, lane in (("all", 2026, ""), ("tourist", 2026, "tourist"), ("last_year_tourist", 2025, "tourist")):
        days = national(year)
        n = sum(1 for f in FACTS if f.dispatch_round == 1 and f.redo_round == 0 and (not lane or f.lane == lane)
                and f.received_at.astimezone(TZ).date() in days)  # type: ignore[union-attr]
        assert r[key]["tickets"] == n
    assert r["all"]["tickets"] > 0 and 0 < r["all"]["satisfaction"] <= 1


def test_a_roster_needs_levels_days_names_and_phones_and_a_holiday_must_exist() -> None:
    good = {"level": "street", "unit": "ST01", "day": "2026-10-01", "name": "张三", "phone": "025-1234"}
    assert holidays.check_roster([good]) == [good]
    for bad in ([], [{**good, "level": "city"}], [{**good, "phone": ""}], [{**good, "day": "10-01"}]):
        with pytest.raises(DomainError) as err:
            holidays.check_roster(bad)
        assert err.value.code == "invalid_argument"
    with pytest.raises(DomainError):
        holidays.holiday(2026, "圣诞节", TZ)
    with pytest.raises(DomainError):
        holidays.holiday(10_000, "国庆节", TZ)
