"""Half-year (半年报) and annual (年度报告) work reports: the figures (pure, from the KPI engine,
services/metrics/kpi.py and kpi_items.py) and their renderings — HTML and PDF with charts, XLSX.

    data = build(facts, whistles, items, policy, Period.parse("2026", tz), as_of)
    files = render(data)            # {"html": ..., "pdf": ..., "xlsx": ...}

Every figure has its comparison: 同比 (the same period a year earlier), 环比 (the period before:
for a year, the year before; for a half-year, the other half before it) and, over the years the
store holds, the average yearly growth (年均增长).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import chinese_calendar
import jinja2
import markupsafe

from services.metrics import kpi, kpi_items
from services.metrics.kpi import RATES, SUPERVISION_LEVELS, CaseFacts, Change, Figures, KpiPolicy, Period, RankedUnit
from services.metrics.kpi_items import ItemFigures, RecurringFacts, WhistleFacts
from services.metrics.report import (
    HEADLINE_RATES,
    ITEM_HEADER,
    RANKING_HEADER,
    _f,
    _figure,
    _num,
    _place,
    _png,
    _sheet,
    _style,
    _table,
    _wrap,
    item_rows,
    items_of,
    label,
    pct,
    points,
    ranking_rows,
    signed_pct,
    xlsx_overview,
)

if TYPE_CHECKING:  # imported by the functions that render (issue 21: memory)
    from matplotlib.figure import Figure

KINDS = {"half": ("half_yearly", "半年工作报告"), "year": ("annual", "年度工作报告")}
KINDS_BY_NAME = {name: kind for kind, (name, _) in KINDS.items()}
MAX_YEARS = 10  # the series over years goes back at most this far
LANE_SECTIONS = ("deputy", "enterprise", "tourist")
HOLIDAYS = {str(h.value): str(h.chinese) if str(h.chinese) in ("元旦", "春节") or str(h.chinese).endswith("节")
            else f"{h.chinese}节" for h in chinese_calendar.Holiday}  # "Labour Day" -> 劳动节, 中秋 -> 中秋节
COMPARE = ("current", "previous", "year_ago")


@dataclass(frozen=True)
class Compared:
    """One filter's figures in the period, the period before (环比) and a year earlier (同比)."""

    current: Figures
    previous: Figures
    year_ago: Figures

    def change(self, name: str, policy: KpiPolicy, against: str) -> Change:
        other: Figures = getattr(self, against)
        if name in RATES:
            return Change(self.current.rate(name, policy).value, other.rate(name, policy).value)
        return Change(Fraction(self.current.n(name)), Fraction(other.n(name)))


@dataclass(frozen=True)
class HolidayFigures:
    """A statutory holiday in the period (e.g. 国庆节): the tickets received on its days, all and
    in the tourist lane, as a cohort (their cases' figures as of the report), and the same
    holiday a year earlier."""

    name: str
    days: tuple[date, ...]
    all: Figures
    tourist: Figures
    tourist_year_ago: Figures | None


@dataclass(frozen=True)
class AnnualData:
    kind: str  # half_yearly | annual
    period: Period
    as_of: datetime
    policy: KpiPolicy
    compared: Compared
    series: list[Period]  # the same period in each year the store holds, oldest first (ends with period)
    by_year: dict[str, Figures]  # series label -> totals
    ticket_types: dict[str, list[tuple[str, int, Fraction]]]  # series label -> shares of tickets
    unit_types: dict[str, list[tuple[str, int, Fraction]]]  # series label -> shares of dispatches
    categories: dict[str, dict[str, tuple[int, Fraction]]]  # series label -> category -> (tickets, share)
    hot: list[str]  # the period's top categories
    supervision: dict[str, Compared]  # level "1".."4" -> figures of dispatches supervised at that level
    whistles: tuple[ItemFigures, ItemFigures, ItemFigures]  # current, previous, year ago
    whistle_streets: dict[str, ItemFigures]
    whistle_departments: dict[str, tuple[ItemFigures, ItemFigures]]
    lanes: dict[str, Compared]
    holidays: list[HolidayFigures]
    recurring: tuple[ItemFigures, ItemFigures, ItemFigures]  # current, previous, year ago
    recurring_streets: dict[str, ItemFigures]
    ranking: list[RankedUnit]
    red: list[RankedUnit]
    black: list[RankedUnit]
    unit_names: dict[str, str]
    # issue #22: 督办 records by level and whistles by whistling unit type (report.items_of, as GetKpis)
    items: dict[str, dict[str, kpi_items.ItemKpi]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.period.label}"

    @property
    def title(self) -> str:
        p = self.period
        half = "上" if p.label[-1] == "1" else "下"
        span = f"{p.start.year}年" if p.kind == "year" else f"{p.start.year}年{half}半年"
        return f"区12345热线{span}{KINDS[p.kind][1]}"

    @property
    def figures(self) -> Figures:
        return self.compared.current

    def rate(self, name: str) -> Fraction | None:
        return self.figures.rate(name, self.policy).value

    def average_growth(self, measure: str = "tickets") -> float | None:
        return average_growth([self.by_year[p.label].n(measure) for p in self.series])

    def name(self, unit_id: str) -> str:
        return self.unit_names.get(unit_id, unit_id or "未知")


def average_growth(values: Sequence[int]) -> float | None:
    """年均增长: (last / first) ** (1 / (years - 1)) - 1 over a yearly series; None with fewer than two
    years or a first year of 0."""
    if len(values) < 2 or not values[0]:
        return None
    return float((values[-1] / values[0]) ** (1 / (len(values) - 1)) - 1)


def series_of(period: Period, facts: Sequence[CaseFacts]) -> list[Period]:
    """The same period in each year from the first the facts hold (at most MAX_YEARS)."""
    first = min((f.received_at for f in facts if f.received_at is not None), default=None)
    out = [period]
    while len(out) < MAX_YEARS and first is not None and out[-1].start > first:
        out.append(out[-1].year_ago())
    return out[::-1]


def holidays_in(period: Period) -> list[tuple[str, tuple[date, ...]]]:
    """The statutory holidays (法定节假日) whose days fall in the period, by chinesecalendar."""
    found: dict[str, list[date]] = {}
    for day in period.days():
        d = day.start.date()
        try:
            off, name = chinese_calendar.get_holiday_detail(d)
        except NotImplementedError:  # a year the package does not know
            continue
        if off and name:
            found.setdefault(name, []).append(d)
    return [(name, tuple(days)) for name, days in found.items()]


def holiday_days(name: str, year: int, tz: Any) -> tuple[date, ...]:
    return next((days for n, days in holidays_in(Period.parse(str(year), tz)) if n == name), ())


def cohort(facts: Sequence[CaseFacts], days: Sequence[date], policy: KpiPolicy, tz: Any, as_of: datetime,
           lane: str = "") -> Figures:
    """The figures of the tickets received on these days (every measure of their rows, as of)."""
    wanted = set(days)
    rows = [f for f in facts if f.received_at is not None and f.received_at.astimezone(tz).date() in wanted
            and (not lane or f.lane == lane)]
    return kpi.compute(rows, policy, tz, as_of=as_of).total


def build(facts: Sequence[CaseFacts], whistles: Sequence[WhistleFacts], items: Sequence[RecurringFacts],
          policy: KpiPolicy, period: Period, as_of: datetime,
          records: Sequence[kpi_items.SupervisionFacts] = ()) -> AnnualData:
    if period.kind not in KINDS:
        raise ValueError(f"annual reports are for a half-year or a year, not {period.kind}")
    tz = period.tz
    before, then = period.previous(), period.year_ago()
    series = series_of(period, facts)
    compare = [period, before, then]

    def compared(group_by: str = "", **filters: list[str]) -> dict[str, Compared]:
        tables = [kpi.compute(facts, policy, tz, p.start, p.end, (group_by,) if group_by else (), filters or None,
                              as_of=as_of) for p in compare]
        if not group_by:
            return {"": Compared(*(t.total for t in tables))}
        keys = {k[0] for t in tables for k in t.groups}
        return {k: Compared(*(t.groups.get((k,), Figures()) for t in tables)) for k in sorted(keys)}

    yearly = kpi.by_period(facts, policy, series, as_of=as_of, measures=("tickets", "dispatches"))
    types = kpi.by_period(facts, policy, series, ("ticket_type",), as_of=as_of, measures=("tickets",))
    units = kpi.by_period(facts, policy, series, ("unit_type",), as_of=as_of, measures=("dispatches",))
    cats = kpi.by_period(facts, policy, series, ("category",), as_of=as_of, measures=("tickets",))
    categories = {label_: {c: (n, s) for c, n, s in kpi.shares(t)} for label_, t in cats.items()}
    hot = [c for c, _, _ in kpi.shares(cats[period.label])][: policy.hotspot_top]
    ranking = kpi.rank_units(kpi.within(facts, period.start, period.end), policy, period, as_of=as_of)
    red, black = kpi.red_black_lists(ranking, policy)
    w = [kpi_items.whistles_by_street(whistles, p.start, p.end, as_of) for p in compare]
    r = [kpi_items.recurring(items, tz, p.start, p.end, as_of) for p in compare]
    holidays = []
    for name, days in holidays_in(period):
        last_year = holiday_days(name, days[0].year - 1, tz)
        holidays.append(HolidayFigures(
            HOLIDAYS.get(name, name), days, cohort(facts, days, policy, tz, as_of),
            cohort(facts, days, policy, tz, as_of, "tourist"),
            cohort(facts, last_year, policy, tz, as_of, "tourist") if last_year else None))
    names = {f.unit_id: f.unit_name for f in facts if f.unit_name}
    return AnnualData(
        kind=KINDS[period.kind][0], period=period, as_of=as_of, policy=policy, compared=compared()[""],
        series=series, by_year={k: t.total for k, t in yearly.items()},
        ticket_types={k: kpi.shares(t) for k, t in types.items()},
        unit_types={k: kpi.shares(t, "dispatches") for k, t in units.items()},
        categories=categories, hot=hot,
        supervision={k: c for k, c in compared("supervision_level").items() if k != "0"},
        whistles=(w[0][0], w[1][0], w[2][0]), whistle_streets=w[0][1],
        whistle_departments=kpi_items.whistles_by_department(whistles, period.start, period.end, as_of),
        lanes={lane: compared(lane=[lane])[""] for lane in LANE_SECTIONS},
        holidays=holidays, recurring=(r[0][0], r[1][0], r[2][0]), recurring_streets=r[0][1],
        ranking=ranking, red=red, black=black, unit_names=names,
        items=items_of(records, whistles, policy, period.start, period.end, as_of),
    )


# --- text -------------------------------------------------------------------------------------------


def _trend(relative: Fraction | None) -> str:
    return "无可比数据" if relative is None else f"{'增长' if relative >= 0 else '下降'}{pct(abs(relative))}"


def _growth(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.2f}%"


def summary(d: AnnualData) -> list[str]:
    c = d.compared
    years = f"{d.series[0].label}—{d.series[-1].label}"
    n = d.figures.tickets
    types = "，".join(f"{label('ticket_type', t)}占{pct(s)}" for t, _, s in d.ticket_types[d.period.label][:3])
    units = "，".join(f"{label('unit_type', t)}占{pct(s)}" for t, _, s in d.unit_types[d.period.label][:4])
    hot = "、".join(f"{h}（{pct(d.categories[d.period.label][h][1])}）" for h in d.hot[:3])
    wh, rec = d.whistles[0], d.recurring[0]
    sup = sum(s.current.dispatches for s in d.supervision.values())
    dep, ent = d.lanes["deputy"].current, d.lanes["enterprise"].current
    return [
        f"全区共受理12345热线工单{n:,}件，同比{_trend(c.change('tickets', d.policy, 'year_ago').relative)}，"
        f"环比{_trend(c.change('tickets', d.policy, 'previous').relative)}；{years}年均增长"
        f"{_growth(d.average_growth())}。派单{d.figures.dispatches:,}件次。",
        f"诉求类型：{types}。承办单位类型：{units}。热点诉求：{hot}。",
        f"响应率{pct(d.rate('response'))}，解决率{pct(d.rate('resolution'))}，满意率{pct(d.rate('satisfaction'))}，"
        f"按时办结率{pct(d.rate('on_time_close'))}。",
        f"督办{sup:,}件次；吹哨{wh.n:,}次，解决{wh.counts['resolved']:,}次（吹哨解决率"
        f"{pct(wh.resolution())}）。",
        f"人大代表诉求{dep.tickets:,}件，按时办结率{pct(dep.rate('on_time_close', d.policy).value)}，"
        f"满意率{pct(dep.rate('satisfaction', d.policy).value)}；涉企诉求{ent.tickets:,}件，"
        f"满意率{pct(ent.rate('satisfaction', d.policy).value)}。",
        f"屡办不成问题{rec.n:,}个，已销号{rec.counts['solved']:,}个（{pct(rec.share('solved'))}）。",
        f"数据截至{d.as_of.astimezone(d.period.tz):%Y年%m月%d日 %H:%M}；"
        f"口径见 docs/kpis.md（政策版本 {d.policy.version}）。",
    ]


def rate_rows(d: AnnualData) -> list[list[str]]:
    rows = []
    for name in ("tickets", "dispatches"):
        c = d.compared
        rows.append([{"tickets": "工单量", "dispatches": "派单量"}[name], f"{d.figures.n(name):,}", "",
                     signed_pct(c.change(name, d.policy, "previous").relative),
                     signed_pct(c.change(name, d.policy, "year_ago").relative)])
    for name in HEADLINE_RATES:
        r = d.figures.rate(name, d.policy)
        rows.append([RATES[name], pct(r.value), f"{float(r.numerator):g}/{r.denominator}",
                     points(d.compared.change(name, d.policy, "previous").points),
                     points(d.compared.change(name, d.policy, "year_ago").points)])
    return rows


def year_rows(d: AnnualData) -> list[list[str]]:
    out, last = [], None
    for p in d.series:
        n = d.by_year[p.label].tickets
        out.append([p.label, f"{n:,}", signed_pct(Change(Fraction(n), Fraction(last)).relative if last else None),
                    f"{d.by_year[p.label].dispatches:,}"])
        last = n
    return out


def supervision_rows(d: AnnualData) -> list[list[str]]:
    return [[SUPERVISION_LEVELS[k], str(c.current.dispatches), str(c.year_ago.dispatches),
             pct(c.current.rate("resolution", d.policy).value), pct(c.current.rate("on_time_close", d.policy).value),
             points(c.change("resolution", d.policy, "year_ago").points)]
            for k, c in sorted(d.supervision.items())]


def whistle_rows(d: AnnualData) -> list[list[str]]:
    return [[d.name(s), str(f.n), str(f.counts["resolved"]), pct(f.resolution())]
            for s, f in sorted(d.whistle_streets.items(), key=lambda x: (-x[1].n, x[0]))]


def department_rows(d: AnnualData) -> list[list[str]]:
    return [[d.name(u), str(s.n), pct(s.share("on_time")), str(o.counts["resolved"]), pct(o.resolution())]
            for u, (s, o) in sorted(d.whistle_departments.items(), key=lambda x: (-x[1][0].n, x[0]))]


LANE_RATES = ("response", "on_time_close", "resolution", "satisfaction")


def lane_rows(d: AnnualData) -> list[list[str]]:
    return [[label("lane", lane), str(c.current.tickets),
             signed_pct(c.change("tickets", d.policy, "year_ago").relative),
             *(pct(c.current.rate(n, d.policy).value) for n in LANE_RATES),
             points(c.change("satisfaction", d.policy, "year_ago").points)] for lane, c in d.lanes.items()]


def holiday_rows(d: AnnualData) -> list[list[str]]:
    return [[h.name, f"{h.days[0]:%m-%d}—{h.days[-1]:%m-%d}", str(h.all.tickets), str(h.tourist.tickets),
             signed_pct(Change(Fraction(h.tourist.tickets), Fraction(h.tourist_year_ago.tickets)).relative
                        if h.tourist_year_ago else None),
             pct(h.tourist.rate("resolution", d.policy).value), pct(h.tourist.rate("satisfaction", d.policy).value)]
            for h in d.holidays]


def recurring_rows(d: AnnualData) -> list[list[str]]:
    cur, prev, then = d.recurring
    return [["全区", str(cur.n), str(cur.counts["solved"]), pct(cur.share("solved")), str(prev.n), str(then.n)],
            *([s or "未知", str(f.n), str(f.counts["solved"]), pct(f.share("solved")), "", ""]
              for s, f in sorted(d.recurring_streets.items(), key=lambda x: (-x[1].n, x[0])))]


# --- charts -------------------------------------------------------------------------------------------


def charts(d: AnnualData) -> dict[str, Figure]:
    import matplotlib  # (imported when a report is rendered, issue 21)
    with matplotlib.rc_context(_style()):
        out: dict[str, Figure] = {}
        labels = [p.label for p in d.series]
        fig = _figure(7, 2.8)
        ax = fig.add_subplot()
        bars = ax.bar(labels, [d.by_year[x].tickets for x in labels], color="#c0392b")
        ax.bar_label(bars, labels=[f"{d.by_year[x].tickets:,}" for x in labels], fontsize=7)
        ax.set_title(f"受理工单量（年均增长 {_growth(d.average_growth())}）")
        fig.tight_layout()
        out["volume"] = fig

        fig = _figure(7, 3.0)
        for i, (title, shares, dim) in enumerate((("诉求类型占比", d.ticket_types, "ticket_type"),
                                                  ("承办单位类型占比（派单）", d.unit_types, "unit_type"))):
            ax = fig.add_subplot(1, 2, i + 1)
            keys = sorted({k for rows in shares.values() for k, _, _ in rows})
            bottom = [0.0] * len(labels)
            for k in keys:
                values = [next((float(s) * 100 for kk, _, s in shares[x] if kk == k), 0.0) for x in labels]
                ax.bar(labels, values, bottom=bottom, label=label(dim, k))
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
            ax.set_title(title)
            ax.set_ylim(0, 100)
            ax.legend(fontsize=6, loc="lower left")
        fig.tight_layout()
        out["shares"] = fig

        fig = _figure(7, 3.0)
        ax = fig.add_subplot()
        xs = range(len(d.hot))
        width = 0.8 / max(len(labels), 1)
        for i, x in enumerate(labels):
            ax.bar([j + (i - (len(labels) - 1) / 2) * width for j in xs],
                   [float(d.categories[x].get(c, (0, Fraction(0)))[1]) * 100 for c in d.hot], width=width, label=x)
        ax.set_xticks(list(xs), d.hot, rotation=30, fontsize=7)
        ax.set_ylabel("占工单量 %")
        ax.legend(fontsize=7)
        ax.set_title("热点诉求占比（历年）")
        fig.tight_layout()
        out["hotspots"] = fig

        fig = _figure(7, 2.8)
        ax1, ax2 = fig.subplots(1, 2)
        levels = sorted(d.supervision)
        ax1.bar([SUPERVISION_LEVELS[k] for k in levels], [d.supervision[k].current.dispatches for k in levels],
                color="#8e44ad")
        ax1.set_title("分级督办件次")
        ax1.tick_params(axis="x", labelsize=7)
        streets = sorted(d.whistle_streets.items(), key=lambda x: (-x[1].n, x[0]))[:10]
        ax2.bar([d.name(s) for s, _ in streets], [f.n for _, f in streets], color="#95a5a6", label="吹哨")
        ax2.bar([d.name(s) for s, _ in streets], [f.counts["resolved"] for _, f in streets], color="#27ae60",
                label="解决")
        ax2.tick_params(axis="x", labelrotation=60, labelsize=6)
        ax2.legend(fontsize=7)
        ax2.set_title("街道吹哨与解决")
        fig.tight_layout()
        out["supervision"] = fig

        fig = _figure(7, 2.8)
        ax = fig.add_subplot()
        rows = [(names[key], f) for kind in ("supervision", "whistle") for key, f in d.items.get(kind, {}).items()
                if key and (names := d.policy.item_groups(kind))]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [_f(f.value(f.on_time_rate())) for _, f in rows], width=0.4, label="按时率",
               color="#2980b9")
        ax.bar([x + 0.2 for x in xs], [_f(f.value(f.resolution_rate())) for _, f in rows], width=0.4, label="解决率",
               color="#27ae60")
        ax.set_xticks(list(xs), [n for n, _ in rows], fontsize=7)
        ax.set_ylim(0, 110)
        ax.set_ylabel("%")
        ax.legend(fontsize=7)
        ax.set_title("督办（分级）与吹哨（分单位类型）按时率、解决率")
        fig.tight_layout()
        out["items"] = fig

        fig = _figure(7, 2.8)
        ax = fig.add_subplot()
        lanes = list(d.lanes)
        for i, name in enumerate(LANE_RATES):
            ax.bar([x + (i - 1.5) * 0.2 for x in range(len(lanes))],
                   [_f(d.lanes[k].current.rate(name, d.policy).value) for k in lanes], width=0.2, label=RATES[name])
        ax.set_xticks(range(len(lanes)), [label("lane", k) for k in lanes])
        ax.set_ylim(0, 110)
        ax.legend(fontsize=7, ncol=4, loc="lower center")
        ax.set_title("人大代表、涉企、旅游专项通道")
        fig.tight_layout()
        out["lanes"] = fig
        return out



# --- renderings -------------------------------------------------------------------------------------

SECTIONS: list[tuple[str, list[str], Callable[[AnnualData], list[list[str]]], str]] = [
    ("一、主要考核指标（环比、同比）", ["指标", "本期", "分子/分母", "环比", "同比"], rate_rows, ""),
    ("二、受理量及历年增长", ["年度", "工单量", "增长", "派单量"], year_rows, "volume"),
    ("三、督办（分级）", ["级别", "本期件次", "去年同期", "解决率", "按时办结率", "解决率同比"], supervision_rows,
     "supervision"),
    ("四、街道吹哨", ["街道", "吹哨", "解决", "解决率"], whistle_rows, ""),
    ("五、部门报到", ["部门", "被召次数", "按时报到率", "解决", "解决率"], department_rows, ""),
    ("六、人大代表、涉企、旅游诉求",
     ["通道", "工单量", "同比", *(RATES[n] for n in LANE_RATES), "满意率同比"], lane_rows, "lanes"),
    ("七、节假日（旅游）", ["节日", "日期", "工单量", "旅游诉求", "旅游同比", "解决率", "满意率"], holiday_rows, ""),
    ("八、屡办不成问题", ["范围", "问题数", "已销号", "销号率", "上期", "去年同期"], recurring_rows, ""),
]

_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:"WenQuanYi Micro Hei","Noto Sans CJK SC",sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px}
th{background:#eef}h1{font-size:22px}h2{font-size:17px;border-bottom:2px solid #c0392b}img{max-width:100%}</style>
</head><body>
<h1>{{ title }}</h1>
{% for p in summary %}<p>{{ p }}</p>{% endfor %}
{% for title, table, chart in sections %}<h2>{{ title }}</h2>{{ table }}
{% if chart %}<img alt="{{ title }}" src="data:image/png;base64,{{ charts[chart] }}">{% endif %}
{% if loop.index == 2 %}<img alt="诉求类型与承办单位类型占比" src="data:image/png;base64,{{ charts.shares }}">
<img alt="热点诉求占比" src="data:image/png;base64,{{ charts.hotspots }}">{% endif %}{% endfor %}
<h2>九、承办单位红黑榜</h2><h3>红榜</h3>{{ ranking(red) }}<h3>黑榜</h3>{{ ranking(black) }}
<h2>{{ items_title }}</h2>{{ items }}
<img alt="{{ items_title }}" src="data:image/png;base64,{{ charts['items'] }}">
</body></html>""")
ITEMS_TITLE = "十、督办与吹哨（件次、按时率、解决率）"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> markupsafe.Markup:
    cells = "".join("<tr>" + "".join(f"<{t}>{markupsafe.escape(c)}</{t}>" for c in r) + "</tr>"
                    for t, r in [("th", header), *(("td", r) for r in rows)])
    return markupsafe.Markup(f"<table>{cells}</table>")


def render_html(d: AnnualData, figures: dict[str, Figure]) -> str:
    return _TEMPLATE.render(
        title=d.title, summary=summary(d), charts={k: _png(f) for k, f in figures.items()},
        sections=[(t, _html_table(h, fn(d)), c) for t, h, fn, c in SECTIONS],
        red=d.red, black=d.black,
        ranking=lambda units: _html_table(RANKING_HEADER, ranking_rows(units, d.policy)),
        items_title=ITEMS_TITLE, items=_html_table(ITEM_HEADER, item_rows(d.items, d.policy)),
    )


def render_pdf(d: AnnualData, figures: dict[str, Figure]) -> bytes:
    buf = io.BytesIO()
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    with matplotlib.rc_context(_style()), PdfPages(buf, metadata={"Title": d.title, "Creator": "hotline"}) as pdf:
        page = _figure()
        page.text(0.5, 0.955, d.title, ha="center", fontsize=15)
        y = 0.92
        for paragraph in summary(d):
            for line in _wrap(paragraph, 46):
                page.text(0.07, y, line, fontsize=10)
                y -= 0.022
            y -= 0.008
        title, header, fn, _ = SECTIONS[0]
        page.text(0.07, y - 0.01, title, fontsize=12)
        _table(page, (0.07, y - 0.33, 0.86, 0.3), header, fn(d))
        pdf.savefig(page)

        page = _figure()
        title, header, fn, _ = SECTIONS[1]
        page.text(0.07, 0.96, title, fontsize=12)
        _place(page, figures["volume"], (0.05, 0.68, 0.9, 0.26))
        _table(page, (0.07, 0.55, 0.86, 0.12), header, fn(d))
        _place(page, figures["shares"], (0.05, 0.27, 0.9, 0.27))
        _place(page, figures["hotspots"], (0.05, 0.0, 0.9, 0.27))
        pdf.savefig(page)

        page = _figure()
        for (title, header, fn, _), (top, height) in zip(SECTIONS[2:5], ((0.96, 0.16), (0.5, 0.2), (0.25, 0.2)),
                                                         strict=True):
            page.text(0.07, top, title, fontsize=12)
            _table(page, (0.07, top - 0.02 - height, 0.86, height), header, fn(d)[:10])
        _place(page, figures["supervision"], (0.05, 0.53, 0.9, 0.25))
        pdf.savefig(page)

        page = _figure()
        for (title, header, fn, _), (top, height) in zip(SECTIONS[5:], ((0.96, 0.1), (0.55, 0.18), (0.3, 0.2)),
                                                         strict=True):
            page.text(0.07, top, title, fontsize=12)
            _table(page, (0.05, top - 0.02 - height, 0.9, height), header, fn(d)[:12])
        _place(page, figures["lanes"], (0.05, 0.6, 0.9, 0.24))
        pdf.savefig(page)

        page = _figure()
        page.text(0.07, 0.96, "九、承办单位红黑榜（考核得分）", fontsize=12)
        page.text(0.07, 0.93, "红榜", fontsize=11, color="#c0392b")
        _table(page, (0.05, 0.7, 0.9, 0.22), RANKING_HEADER, ranking_rows(d.red, d.policy))
        page.text(0.07, 0.66, "黑榜", fontsize=11)
        _table(page, (0.05, 0.43, 0.9, 0.22), RANKING_HEADER, ranking_rows(d.black, d.policy))
        pdf.savefig(page)

        page = _figure()
        page.text(0.07, 0.96, ITEMS_TITLE, fontsize=12)
        _table(page, (0.05, 0.6, 0.9, 0.34), ITEM_HEADER, item_rows(d.items, d.policy))
        _place(page, figures["items"], (0.05, 0.25, 0.9, 0.33))
        pdf.savefig(page)
    return buf.getvalue()


def render_xlsx(d: AnnualData) -> bytes:
    """Every figure behind the report, as numbers (rates and shares as fractions of 1)."""
    wb, ws = xlsx_overview(d)
    c = d.compared
    for name in ("tickets", "dispatches"):
        ws.append([{"tickets": "工单量", "dispatches": "派单量"}[name], name, c.current.n(name), None, None,
                   c.previous.n(name), c.year_ago.n(name)])
    for name in RATES:
        r = c.current.rate(name, d.policy)
        ws.append([RATES[name], name, _num(r.value), _num(r.numerator), r.denominator,
                   _num(c.previous.rate(name, d.policy).value), _num(c.year_ago.rate(name, d.policy).value)])
    ws.append(["年均增长(工单量)", "average_growth", d.average_growth()])
    _sheet(wb, "历年", ["期间", "工单量", "派单量"],
           [[p.label, d.by_year[p.label].tickets, d.by_year[p.label].dispatches] for p in d.series])
    _sheet(wb, "诉求类型", ["期间", "类型", "代码", "工单量", "占比"],
           [[x, label("ticket_type", t), t, n, _num(s)] for x, rows in d.ticket_types.items() for t, n, s in rows])
    _sheet(wb, "单位类型", ["期间", "类型", "代码", "派单量", "占比"],
           [[x, label("unit_type", t), t, n, _num(s)] for x, rows in d.unit_types.items() for t, n, s in rows])
    hot_rows: list[list[Any]] = []
    for x in d.categories:
        for cat in d.hot:
            n, share = d.categories[x].get(cat, (0, Fraction(0)))
            hot_rows.append([x, cat, n, _num(share)])
    _sheet(wb, "热点诉求", ["期间", "分类", "工单量", "占比"], hot_rows)
    _sheet(wb, "督办", ["级别", "名称", "期间", "派单量", "解决率", "按时办结率"],
           [[k, SUPERVISION_LEVELS[k], which, getattr(cmp, which).dispatches,
             _num(getattr(cmp, which).rate("resolution", d.policy).value),
             _num(getattr(cmp, which).rate("on_time_close", d.policy).value)]
            for k, cmp in sorted(d.supervision.items()) for which in COMPARE])
    _sheet(wb, "街道吹哨", ["街道编码", "街道", "吹哨", "解决", "未解决", "未办结", "解决率"],
           [["all", "全区", f.n, f.counts["resolved"], f.counts["unresolved"], f.counts["open"],
             _num(f.resolution())] for f in d.whistles[:1]]
           + [[s, d.name(s), f.n, f.counts["resolved"], f.counts["unresolved"], f.counts["open"],
               _num(f.resolution())] for s, f in sorted(d.whistle_streets.items())])
    _sheet(wb, "督办与吹哨", ["类别", "分组", "件次", "按时", "超时", "待到期", "按时率", "已解决", "未解决", "未办结",
                         "解决率"],
           [[kind, key or "all", f.count, f.on_time["on_time"], f.on_time["late"], f.on_time["pending"],
             _num(f.value(f.on_time_rate())), f.resolution["resolved"], f.resolution["unresolved"],
             f.resolution["open"], _num(f.value(f.resolution_rate()))]
            for kind, groups in d.items.items() for key, f in groups.items()])
    _sheet(wb, "部门报到", ["部门编码", "部门", "被召", "按时报到", "逾期报到", "未报到", "所涉吹哨解决"],
           [[u, d.name(u), s.n, s.counts["on_time"], s.counts["late"], s.counts["pending"], o.counts["resolved"]]
            for u, (s, o) in sorted(d.whistle_departments.items())])
    _sheet(wb, "专项通道", ["通道", "代码", "期间", "工单量", *(RATES[n] for n in RATES)],
           [[label("lane", k), k, which, getattr(cmp, which).tickets,
             *(_num(getattr(cmp, which).rate(n, d.policy).value) for n in RATES)]
            for k, cmp in d.lanes.items() for which in COMPARE])
    _sheet(wb, "节假日", ["节日", "首日", "末日", "天数", "工单量", "旅游诉求", "去年同节旅游诉求", "旅游解决率",
                       "旅游满意率"],
           [[h.name, h.days[0].isoformat(), h.days[-1].isoformat(), len(h.days), h.all.tickets, h.tourist.tickets,
             h.tourist_year_ago.tickets if h.tourist_year_ago else None,
             _num(h.tourist.rate("resolution", d.policy).value), _num(h.tourist.rate("satisfaction", d.policy).value)]
            for h in d.holidays])
    _sheet(wb, "屡办不成", ["范围", "期间", "问题数", "已销号", "销号率"],
           [["全区", which, f.n, f.counts["solved"], _num(f.share("solved"))]
            for which, f in zip(COMPARE, d.recurring, strict=True)]
           + [[s, "current", f.n, f.counts["solved"], _num(f.share("solved"))]
              for s, f in sorted(d.recurring_streets.items())])
    _sheet(wb, "单位排名", ["名次", "单位编码", "单位", "得分"],
           [[u.rank, u.unit_id, u.unit_name, _num(u.score)] for u in d.ranking])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def render(d: AnnualData) -> dict[str, bytes]:
    figures = charts(d)
    return {"html": render_html(d, figures).encode(), "pdf": render_pdf(d, figures), "xlsx": render_xlsx(d)}


def meta(d: AnnualData, files: dict[str, bytes], created_at: datetime) -> dict[str, Any]:
    return {"_id": d.id, "kind": d.kind, "period": d.period.label, "title": d.title, "as_of": d.as_of,
            "created_at": created_at, "policy_version": d.policy.version, "tickets": d.figures.tickets,
            "sizes": {k: len(v) for k, v in files.items()}}

