"""What metrics' HTTP and gRPC adapters share: KPI queries, reports and case exports over the
projected facts, with the policy and the clock injected."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hotline import masking, pb
from hotline.auth import Principal
from hotline.clock import Clock
from hotline.commands import Invalid, NotFound
from hotline.policy import Role
from hotline.privacy import mask_address
from hotline.security import cell_text, text_cells
from hotline.v1 import kpis_pb2
from services.metrics import annual, bulletin, kpi, kpi_items, report
from services.metrics.kpi import RATES, CaseFacts, Figures, KpiPolicy, Period
from services.metrics.kpi_items import ItemKpi, SupervisionFacts, WhistleFacts
from services.metrics.store import KpiStore

REPORT_PERIODS = {"weekly": "week", "monthly": "month", "half_yearly": "half", "annual": "year"}  # kind -> period
FILTER_DIMENSIONS = ("unit", "unit_type", "street", "ticket_type", "category", "list_item", "lane",
                     "supervision_level")
CLEAR_ADDRESS = masking.CLEAR[masking.ADDRESS]  # who sees house numbers in exports: the one masking table
EXPORT_COLUMNS = ("ticket_id", "dispatch_round", "redo_round", "ticket_type", "category", "list_item", "street",
                  "address", "lane", "unit_id", "unit_name", "unit_type", "supervision_level", "received_at",
                  "assigned_at", "sign_off_due", "signed_off_at", "first_contact_due", "first_contact_at",
                  "returned", "reply_due", "replied_at", "reply_result", "redone", "closed_at", "evaluated_at",
                  "resolution", "satisfaction")


@dataclass(frozen=True)
class Window:
    start: datetime | None
    end: datetime | None
    label: str
    period: Period | None = None  # when the window is a period: its comparisons (环比, 同比)


def window(tz: ZoneInfo, period: str = "", from_date: str = "", to_date: str = "") -> Window:
    """A period label, or an inclusive from/to date range, in the district's time zone."""
    if period and (from_date or to_date):
        raise Invalid("give a period or from_date/to_date, not both")
    if period:
        try:
            p = Period.parse(period, tz)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        return Window(p.start, p.end, p.label, p)
    try:
        first = date.fromisoformat(from_date) if from_date else None
        last = date.fromisoformat(to_date) if to_date else None
    except ValueError as exc:
        raise Invalid(f"dates are YYYY-MM-DD: {exc}") from exc
    if first and last and first > last:
        raise Invalid("from_date is after to_date")
    return Window(datetime.combine(first, time(0), tz) if first else None,
                  datetime.combine(last + timedelta(days=1), time(0), tz) if last else None,
                  f"{from_date or '…'}..{to_date or '…'}")


def parse_filters(pairs: Sequence[tuple[str, Sequence[str]]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for dimension, values in pairs:
        if dimension not in FILTER_DIMENSIONS:
            raise Invalid(f"cannot filter by {dimension!r}; dimensions: {', '.join(FILTER_DIMENSIONS)}")
        out.setdefault(dimension, []).extend(v for v in values if v)
    return out


def check_group_by(group_by: Sequence[str]) -> None:
    known = (*FILTER_DIMENSIONS, *kpi.PERIOD_KINDS)
    if bad := [d for d in group_by if d not in known]:
        raise Invalid(f"cannot group by {', '.join(bad)}; dimensions: {', '.join(known)}")
    if len(set(group_by)) != len(group_by) or len(group_by) > 3:
        raise Invalid("group_by takes up to 3 different dimensions")


def _group(figs: Figures, key: Mapping[str, str], total: Figures, policy: KpiPolicy) -> kpis_pb2.KpiGroup:
    g = kpis_pb2.KpiGroup(key=dict(key), tickets=figs.tickets, dispatches=figs.dispatches,
                          ticket_share=figs.tickets / total.tickets if total.tickets else 0.0,
                          dispatch_share=figs.dispatches / total.dispatches if total.dispatches else 0.0)
    for name, title in RATES.items():
        r = figs.rate(name, policy)
        g.rates.append(kpis_pb2.Rate(name=name, title=title, has_value=r.value is not None,
                                     value=float(r.value or 0), numerator=float(r.numerator),
                                     denominator=r.denominator, counts=dict(figs.counts.get(name, {}))))
    if (score := figs.score(policy)) is not None:
        g.has_score, g.score = True, float(score)
    return g


def _item_rate(name: str, title: str, rate: tuple[int, int], counts: Mapping[str, int]) -> kpis_pb2.Rate:
    value = ItemKpi.value(rate)
    return kpis_pb2.Rate(name=name, title=title, has_value=value is not None, value=float(value or 0),
                         numerator=float(rate[0]), denominator=rate[1], counts=dict(counts))


def item_rows(figures: Mapping[str, ItemKpi], dimension: str, kind: str,
              policy: KpiPolicy) -> list[kpis_pb2.ItemKpis]:
    """The total (empty key) then each group of one kind of item figures (督办 or 吹哨), as GetKpis answers them."""
    out = []
    for value, f in figures.items():
        out.append(kpis_pb2.ItemKpis(
            key={dimension: value} if value else {}, count=f.count,
            on_time=_item_rate("on_time", policy.item_title(kind, "on_time"), f.on_time_rate(), f.on_time),
            resolution=_item_rate("resolution", policy.item_title(kind, "resolution"), f.resolution_rate(),
                                  f.resolution)))
    return out


@dataclass(frozen=True)
class Items:
    """督办 records and whistles with GetKpis' filters applied (through each one's case)."""

    records: Sequence[SupervisionFacts]
    whistles: Sequence[WhistleFacts]

    @classmethod
    def filtered(cls, facts: Sequence[CaseFacts], records: Sequence[SupervisionFacts],
                 whistles: Sequence[WhistleFacts], filters: Mapping[str, Sequence[str]]) -> Items:
        if not filters:
            return cls(records, whistles)
        wanted = {d: set(v) for d, v in filters.items()}
        case: dict[str, CaseFacts] = {}  # a ticket's latest dispatch: what its filters read
        for f in sorted(facts, key=lambda f: (f.dispatch_round, -f.redo_round)):
            case[f.ticket_id] = f

        def through_case(ticket_id: str, dimension: str, values: set[str]) -> bool:
            f = case.get(ticket_id)
            return f is not None and kpi.DIMENSIONS[dimension](f) in values

        def record_ok(r: SupervisionFacts) -> bool:
            return all(str(r.level) in v if d == "supervision_level" else through_case(r.ticket_id, d, v)
                       for d, v in wanted.items())

        def whistle_ok(w: WhistleFacts) -> bool:
            for d, v in wanted.items():
                if d == "unit":
                    ok = bool(v & {w.street_unit_id, *(u for u, _ in w.summoned)})
                elif d == "unit_type":
                    ok = w.unit_type in v
                else:
                    ok = through_case(w.ticket_id, d, v)
                if not ok:
                    return False
            return True

        return cls([r for r in records if record_ok(r)], [w for w in whistles if whistle_ok(w)])


class Views:
    def __init__(self, store: KpiStore, policy: KpiPolicy, tz: ZoneInfo, clock: Clock) -> None:
        self.store, self.policy, self.tz, self.clock = store, policy, tz, clock

    async def facts(self) -> list[CaseFacts]:
        return await self.store.facts(self.policy)

    async def facts_within(self, start: datetime, end: datetime) -> list[CaseFacts]:
        """The rows with an anchor in [start, end), read by the anchors' months (the KPI gauges)."""
        return await self.store.facts_within(self.policy, start, end)

    async def kpis(self, w: Window, group_by: Sequence[str], filters: Mapping[str, Sequence[str]],
                   who: Principal | None = None) -> kpis_pb2.KpiResult:
        check_group_by(group_by)
        filters = dict(filters)
        if who is not None and who.role == Role.UNIT:  # a unit sees its own figures only
            filters["unit"] = [who.unit_id]
        now = self.clock.now()
        facts = await self.facts()
        whistles, _ = await self.store.items()
        items = Items.filtered(facts, await self.store.records(), whistles, filters)
        result = self._kpis(facts, items, w.start, w.end, group_by, filters, now)
        if w.period is not None:  # the same figures before (环比) and a year earlier (同比)
            for label_field, field, p in (("previous_period", "previous", w.period.previous()),
                                          ("year_ago_period", "year_ago", w.period.year_ago())):
                setattr(result, label_field, p.label)
                getattr(result, field).CopyFrom(self._kpis(facts, items, p.start, p.end, group_by, filters, now))
        return result

    def _kpis(self, facts: Sequence[CaseFacts], items: Items, start: datetime | None, end: datetime | None,
              group_by: Sequence[str], filters: Mapping[str, Sequence[str]], now: datetime) -> kpis_pb2.KpiResult:
        table = kpi.compute(facts, self.policy, self.tz, start, end, group_by, filters, as_of=now)
        result = kpis_pb2.KpiResult(total=_group(table.total, {}, table.total, self.policy),
                                    policy_version=self.policy.version, as_of=pb.ts(now))
        for key in sorted(table.groups):
            result.groups.append(_group(table.groups[key], dict(zip(group_by, key, strict=True)), table.total,
                                        self.policy))
        p = self.policy
        result.supervision_levels.extend(item_rows(kpi_items.supervision_kpis(
            items.records, start, end, now, p.item_groups("supervision")), "level", "supervision", p))
        result.whistles.extend(item_rows(kpi_items.whistle_kpis(
            items.whistles, start, end, now, p.item_groups("whistle")), "unit_type", "whistle", p))
        return result

    async def generate(self, kind: str, period: str) -> dict[str, Any]:
        """Build, render and store one report (the rendering runs in a worker thread)."""
        expected = REPORT_PERIODS.get(kind)
        if expected is None:
            raise Invalid(f"report kind is {', '.join(REPORT_PERIODS)}, not {kind!r}")
        try:
            p = Period.parse(period, self.tz)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        if p.kind != expected:
            raise Invalid(f"a {kind} report needs a {expected} period (e.g. 2026-W47, 2026-11, 2026-H1 or 2026), "
                          f"not {period!r}")
        facts = await self.facts()
        now = self.clock.now()
        if kind in annual.KINDS_BY_NAME:  # 半年报, 年度报告: also whistles and 屡办不成 items
            whistles, items = await self.store.items()
            records = await self.store.records()

            def yearly() -> dict[str, Any]:
                data = annual.build(facts, whistles, items, self.policy, p, now, records)
                files = annual.render(data)
                return {"meta": annual.meta(data, files, now), "files": files}

            made = await asyncio.to_thread(yearly)
            await self.store.save_report(made["meta"], made["files"])
            return dict(made["meta"])

        whistles, _ = await self.store.items()
        records = await self.store.records()

        def work() -> tuple[report.ReportData, dict[str, bytes]]:
            data = report.build(facts, self.policy, p, now, records, whistles)
            return data, report.render(data)

        data, files = await asyncio.to_thread(work)
        meta = report.meta(data, files, now)
        await self.store.save_report(meta, files)
        return meta

    async def enterprise_bulletin(self, week: str) -> str:
        """涉企诉求一周一通报 of an ISO week, as HTML (services/metrics/bulletin.py)."""
        try:
            p = Period.parse(week, self.tz)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        if p.kind != "week":
            raise Invalid(f"the bulletin is for an ISO week like 2026-W47, not {week!r}")
        return bulletin.render_html(bulletin.build(await self.facts(), self.policy, p, self.clock.now()))

    async def report_file(self, report_id: str, fmt: str) -> bytes:
        if fmt not in report.FORMATS:
            raise Invalid(f"format is one of {', '.join(report.FORMATS)}")
        data = await self.store.report_file(report_id, fmt)
        if data is None:
            raise NotFound("report", f"{report_id}.{fmt}")
        return data

    async def export(self, w: Window, filters: Mapping[str, Sequence[str]], who: Principal, fmt: str,
                     tickets: Sequence[str] = ()) -> bytes:
        """The case rows (one per dispatch and redo round) assigned in the window, as CSV or XLSX;
        addresses masked unless the caller's role handles cases. ``tickets``: only these tickets
        (the workbench's search result)."""
        filters = dict(filters)
        if tickets:
            filters["ticket"] = list(tickets)
        if who.role == Role.UNIT:
            filters["unit"] = [who.unit_id]
        rows = [f for f in await self.facts()
                if f.assigned_at is not None and (w.start is None or f.assigned_at >= w.start)
                and (w.end is None or f.assigned_at < w.end)
                and all((f.ticket_id if d == "ticket" else kpi.DIMENSIONS[d](f)) in set(v) for d, v in filters.items())]
        rows.sort(key=lambda f: (f.assigned_at or datetime.min, f.key))
        clear = masking.clear(masking.ADDRESS, who.role)  # the one masking table (hotline/masking.py)
        table = [[_cell(getattr(f, c) if c != "address" or clear else mask_address(f.address), self.tz)
                  for c in EXPORT_COLUMNS] for f in rows]
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(EXPORT_COLUMNS)
            writer.writerows([cell_text(c) for c in row] for row in table)  # formulas as text (issue #19)
            return ("\ufeff" + buf.getvalue()).encode()  # BOM: spreadsheet programs read it as UTF-8
        if fmt == "xlsx":
            from openpyxl import Workbook  # (imported when an export is asked for, issue 21)

            wb = Workbook()
            ws = wb.active
            ws.title = "cases"
            ws.append(list(EXPORT_COLUMNS))
            for row in table:
                ws.append(row)
            text_cells(wb)  # citizen text that looks like a formula opens as text (issue #19)
            out = io.BytesIO()
            wb.save(out)
            return out.getvalue()
        raise Invalid("export format is csv or xlsx")


def _cell(value: Any, tz: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else value
