"""The annual report (年度工作报告) of a simulated three years: the generated facts, whistles and
屡办不成 items go through the KPI projection as events; every figure of every section in the
report's XLSX equals an independent computation from the definitions in docs/kpis.md (written
here again without the engine); the PDF renders (its pages are not blank) and says the figures."""

from __future__ import annotations

import io
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from matplotlib import image as mpimg
from openpyxl import load_workbook

from hotline.clock import ManualClock
from services.metrics import annual, kpi_items, projection
from services.metrics.kpi import CaseFacts, KpiPolicy, Period
from services.metrics.kpi_items import RecurringFacts, WhistleFacts
from services.metrics.schedule import due
from services.metrics.simulate import events, item_events, lifecycles, supervision_items
from services.metrics.views import Views, window

TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
YEAR = Period.parse("2026", TZ)
AS_OF = datetime(2027, 1, 25, 9, 0, tzinfo=TZ)
YEARS = (("2024", 8, 1), ("2025", 10, 2), ("2026", 13, 3))  # (year, tickets a day, seed): a growing district


def _simulated() -> tuple[list[CaseFacts], list[WhistleFacts], list[RecurringFacts]]:
    facts = [f for y, n, seed in YEARS for f in lifecycles(Period.parse(y, TZ), per_day=n, seed=seed, as_of=AS_OF,
                                                          lead_days=0)]
    whistles, items = supervision_items(facts, seed=5, whistle_share=0.02, as_of=AS_OF)
    docs: dict[str, dict[str, dict[str, Any]]] = {}  # the projection, as the metrics service runs it
    stream = [e.message for e in events(facts)] + item_events(whistles, items)
    for u in projection.fold(u for m in stream for u in projection.updates(m)).values():
        projection.apply(docs, u)
    projected = projection.assemble(docs["ticket"], docs["dispatch"], docs["handling"], POLICY)
    w, i = kpi_items.assemble(docs.get("whistle", {}), docs.get("recurring", {}))
    assert sorted(projected, key=lambda f: f.key) == sorted(facts, key=lambda f: f.key)
    assert w == sorted(whistles, key=lambda x: x.whistle_id) and i == sorted(items, key=lambda x: x.item_id)
    return projected, w, i


FACTS, WHISTLES, ITEMS = _simulated()


# --- the definitions of docs/kpis.md, again, without the engine --------------------------------------


def local(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(TZ)


def inside(t: datetime | None, p: Period) -> bool:
    return t is not None and p.start <= t < min(p.end, AS_OF)


def tickets(p: Period, keep: Callable[[CaseFacts], bool] = lambda f: True) -> list[CaseFacts]:
    return [f for f in FACTS if f.dispatch_round == 1 and f.redo_round == 0 and inside(f.received_at, p) and keep(f)]


def dispatches(p: Period, keep: Callable[[CaseFacts], bool] = lambda f: True) -> list[CaseFacts]:
    return [f for f in FACTS if f.redo_round == 0 and inside(f.assigned_at, p) and keep(f)]


def resolution(rows: Iterable[CaseFacts]) -> Fraction | None:
    c = Counter(f.resolution for f in rows if f.resolution)
    den = c["resolved"] + c["partly"] + c["unresolved"]
    return (c["resolved"] + POLICY.partly_resolved_weight * c["partly"]) / den if den else None


def satisfaction(rows: Iterable[CaseFacts]) -> Fraction | None:
    c = Counter(f.satisfaction for f in rows if f.satisfaction)
    den = c["satisfied"] + c["basic"] + c["unsatisfied"]
    return (c["satisfied"] + POLICY.basically_satisfied_weight * c["basic"]) / den if den else None


def on_time_close(rows: Iterable[CaseFacts]) -> Fraction | None:
    closed = [f for f in rows if f.closed_at is not None]
    on_time = [f for f in closed if f.close_due is None or f.closed_at <= f.close_due]  # type: ignore[operator]
    return Fraction(len(on_time), len(closed)) if closed else None


def evaluated(p: Period, keep: Callable[[CaseFacts], bool] = lambda f: True) -> list[CaseFacts]:
    return [f for f in FACTS if f.resolution and inside(f.evaluated_at, p) and keep(f)]


def closed(p: Period, keep: Callable[[CaseFacts], bool] = lambda f: True) -> list[CaseFacts]:
    return [f for f in FACTS if inside(f.closed_at, p) and keep(f)]


def num(x: Fraction | None) -> float | None:
    return None if x is None else float(x)


def approx(x: Fraction | float | None) -> Any:
    return None if x is None else pytest.approx(float(x), rel=1e-12)


# --- the report -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    data = annual.build(FACTS, WHISTLES, ITEMS, POLICY, YEAR, AS_OF)
    out = tmp_path_factory.mktemp("annual")
    paths = {}
    for fmt, content in annual.render(data).items():
        paths[fmt] = out / f"{data.id}.{fmt}"
        paths[fmt].write_bytes(content)
    return paths


@pytest.fixture(scope="module")
def book(files: dict[str, Path]) -> Any:
    return load_workbook(io.BytesIO(files["xlsx"].read_bytes()), data_only=True)


def rows(book: Any, sheet: str) -> list[tuple[Any, ...]]:
    return list(book[sheet].iter_rows(min_row=2, values_only=True))


def test_volume_its_growth_over_the_years_and_the_headline_rates(book: Any) -> None:
    years = [Period.parse(y, TZ) for y, _, _ in YEARS]
    counts = [len(tickets(p)) for p in years]
    assert counts[0] < counts[1] < counts[2]
    assert [(r[0], r[1], r[2]) for r in rows(book, "历年")] == [
        (p.label, n, len(dispatches(p))) for p, n in zip(years, counts, strict=True)]
    head = {r[1]: r for r in book["概况"].iter_rows(min_row=5, values_only=True) if r and r[1]}
    assert head["tickets"][2:] == (counts[2], None, None, counts[1], counts[1])  # 环比 = 同比 for a year
    assert head["average_growth"][2] == approx((counts[2] / counts[0]) ** 0.5 - 1)
    for name, fn, rows_of in (("resolution", resolution, evaluated), ("satisfaction", satisfaction, evaluated),
                              ("on_time_close", on_time_close, closed)):
        assert head[name][2] == approx(fn(rows_of(YEAR)))
        assert head[name][6] == approx(fn(rows_of(years[1])))


def test_shares_by_ticket_type_unit_type_and_category_over_the_years(book: Any) -> None:
    for p in (Period.parse(y, TZ) for y, _, _ in YEARS):
        ts, ds = tickets(p), dispatches(p)
        by_type = Counter(f.ticket_type for f in ts)
        assert {r[2]: (r[3], r[4]) for r in rows(book, "诉求类型") if r[0] == p.label} == {
            t: (n, approx(Fraction(n, len(ts)))) for t, n in by_type.items()}
        by_unit = Counter(f.unit_type for f in ds)
        assert {r[2]: (r[3], r[4]) for r in rows(book, "单位类型") if r[0] == p.label} == {
            t: (n, approx(Fraction(n, len(ds)))) for t, n in by_unit.items()}
        by_cat = Counter(f.category for f in ts)
        for r in (r for r in rows(book, "热点诉求") if r[0] == p.label):
            assert (r[2], r[3]) == (by_cat[r[1]], approx(Fraction(by_cat[r[1]], len(ts))))
    top = Counter(f.category for f in tickets(YEAR)).most_common()
    assert [r[1] for r in rows(book, "热点诉求") if r[0] == "2026"] == [c for c, _ in top][:POLICY.hotspot_top]


def test_supervision_by_level_and_its_resolution(book: Any) -> None:
    got = {(r[0], r[2]): r for r in rows(book, "督办")}
    for level in ("1", "2", "3", "4"):
        for which, p in (("current", YEAR), ("year_ago", YEAR.year_ago())):
            def at(f: CaseFacts, lv: str = level) -> bool:
                return str(f.supervision_level) == lv
            r = got[(level, which)]
            assert r[3] == len(dispatches(p, at)) > 0
            assert r[4] == approx(resolution(evaluated(p, at)))
            assert r[5] == approx(on_time_close(closed(p, at)))


def test_whistles_by_street_and_department_with_resolution(book: Any) -> None:
    blown = [w for w in WHISTLES if inside(w.blown_at, YEAR)]
    assert blown

    def outcome(w: WhistleFacts) -> str:
        if w.closed_at is None or w.closed_at >= AS_OF:
            return "open"
        return "resolved" if w.resolved else "unresolved"

    want = {"all": Counter(outcome(w) for w in blown)}
    for w in blown:
        want.setdefault(w.street_unit_id, Counter())[outcome(w)] += 1
    assert {r[0]: (r[2], r[3], r[4], r[5]) for r in rows(book, "街道吹哨")} == {
        k: (sum(c.values()), c["resolved"], c["unresolved"], c["open"]) for k, c in want.items()}
    summons: dict[str, Counter[str]] = {}
    for w in blown:
        for unit, report in w.summoned:
            summons.setdefault(unit, Counter())[report] += 1
            summons[unit]["resolved_whistles"] += outcome(w) == "resolved"
    assert {r[0]: (r[2], r[3], r[4], r[5], r[6]) for r in rows(book, "部门报到")} == {
        u: (c["on_time"] + c["late"] + c["pending"], c["on_time"], c["late"], c["pending"], c["resolved_whistles"])
        for u, c in summons.items()}


def test_deputies_enterprise_and_tourist_lanes(book: Any) -> None:
    got = {(r[1], r[2]): r for r in rows(book, "专项通道")}
    for lane in ("deputy", "enterprise", "tourist"):
        def of(f: CaseFacts, ln: str = lane) -> bool:
            return f.lane == ln
        for which, p in (("current", YEAR), ("year_ago", YEAR.year_ago())):
            r = got[(lane, which)]
            assert r[3] == len(tickets(p, of)) > 0
            assert r[5] == approx(resolution(evaluated(p, of)))  # columns follow RATES' order
            assert r[6] == approx(satisfaction(evaluated(p, of)))
            assert r[7] == approx(on_time_close(closed(p, of)))


def test_tourist_holidays(book: Any) -> None:
    got = {r[0]: r for r in rows(book, "节假日")}
    national = [d for d in (date(2026, 10, day) for day in range(1, 10)) if chinese_calendar.get_holiday_detail(d)[1]
                == "National Day"]
    last = [d for d in (date(2025, 10, day) for day in range(1, 10)) if chinese_calendar.get_holiday_detail(d)[1]
            == "National Day"]
    r = got["国庆节"]

    def received_on(days: list[date], lane: str = "") -> list[CaseFacts]:
        return [f for f in FACTS if f.dispatch_round == 1 and f.redo_round == 0 and f.received_at
                and f.received_at.astimezone(TZ).date() in days and (not lane or f.lane == lane)]

    assert (r[1], r[2], r[3]) == (national[0].isoformat(), national[-1].isoformat(), len(national))
    assert (r[4], r[5], r[6]) == (len(received_on(national)), len(received_on(national, "tourist")),
                                  len(received_on(last, "tourist")))
    cohort = {f.ticket_id for f in received_on(national, "tourist")}
    assert r[7] == approx(resolution(f for f in FACTS if f.ticket_id in cohort and inside(f.evaluated_at, Period(
        "all", "all", datetime(2000, 1, 1, tzinfo=TZ), AS_OF))))
    assert {"元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节"} <= set(got)


def test_recurring_items_and_how_many_were_solved(book: Any) -> None:
    got = {(r[0], r[1]): r for r in rows(book, "屡办不成")}
    for which, year in (("current", 2026), ("previous", 2025), ("year_ago", 2025)):
        listed = [i for i in ITEMS if i.month.startswith(str(year))]
        solved = [i for i in listed if i.resolved_at is not None and i.resolved_at < AS_OF]
        assert got[("全区", which)][2:4] == (len(listed), len(solved)) and listed


def test_the_pdf_renders_and_says_the_figures(files: dict[str, Path]) -> None:
    info = subprocess.run(["pdfinfo", str(files["pdf"])], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+6$", info, re.M), info
    for page in range(1, 7):
        prefix = files["pdf"].parent / f"page{page}"
        subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", str(page), "-l", str(page), "-singlefile",
                        str(files["pdf"]), str(prefix)], check=True)
        pixels = mpimg.imread(f"{prefix}.png")[..., :3]
        assert (pixels.mean(axis=2) < 0.9).mean() > 0.02, f"page {page} is nearly blank"
    text = "".join(subprocess.run(["pdftotext", str(files["pdf"]), "-"], capture_output=True, text=True,
                                  check=True).stdout.split())
    counts = [len(tickets(Period.parse(y, TZ))) for y, _, _ in YEARS]
    assert "区12345热线2026年年度工作报告" in text
    assert f"工单{counts[2]:,}件" in text
    assert f"年均增长{((counts[2] / counts[0]) ** 0.5 - 1) * 100:+.2f}%" in text
    html = files["html"].read_text("utf-8")
    assert html.count("data:image/png;base64,") == 6 and "屡办不成" in html and "国庆节" in html


class Store:
    def __init__(self) -> None:
        self.saved: dict[str, Any] = {}

    async def facts(self, policy: KpiPolicy) -> list[CaseFacts]:
        return FACTS

    async def items(self) -> tuple[list[WhistleFacts], list[RecurringFacts]]:
        return WHISTLES, ITEMS

    async def records(self) -> list[Any]:
        return []

    async def save_report(self, meta: dict[str, Any], files: dict[str, bytes]) -> None:
        self.saved[meta["_id"]] = files


async def test_on_demand_and_on_schedule_and_kpis_compare_with_the_earlier_period() -> None:
    clock = ManualClock(datetime(2026, 7, 1, 0, 5, tzinfo=TZ))
    views = Views(Store(), POLICY, TZ, clock)  # type: ignore[arg-type]
    assert ("half_yearly", "2026-H1") in due(views) and ("annual", "2025") in due(views)
    clock.set(datetime(2027, 1, 1, 0, 5, tzinfo=TZ))
    assert {("half_yearly", "2026-H2"), ("annual", "2026")} <= set(due(views))
    meta = await views.generate("half_yearly", "2026-H1")
    assert meta["_id"] == "half_yearly-2026-H1" and meta["title"] == "区12345热线2026年上半年半年工作报告"
    assert meta["tickets"] == len(tickets(Period.parse("2026-H1", TZ)))
    assert views.store.saved["half_yearly-2026-H1"]["pdf"][:4] == b"%PDF"  # type: ignore[attr-defined]
    result = await views.kpis(window(TZ, "2026-H1"), ["lane"], {})
    assert (result.previous_period, result.year_ago_period) == ("2025-H2", "2025-H1")
    assert result.total.tickets == len(tickets(Period.parse("2026-H1", TZ)))
    assert result.previous.total.tickets == len(tickets(Period.parse("2025-H2", TZ)))
    assert result.year_ago.total.tickets == len(tickets(Period.parse("2025-H1", TZ)))
    assert {g.key["lane"] for g in result.year_ago.groups} == {"deputy", "enterprise", "tourist", "normal"}
