"""Weekly (周报) and monthly (月报) reports: the figures (pure, from the KPI engine) and their
renderings — HTML and PDF with charts (matplotlib, a CJK font from the system), and an XLSX of
every figure behind them (openpyxl).

    data = build(facts, policy, Period.parse("2026-11", tz), as_of)
    files = render(data)            # {"html": ..., "pdf": ..., "xlsx": ...}
"""

from __future__ import annotations

import base64
import dataclasses
import io
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import markupsafe

from hotline import masking
from hotline.security import text_cells
from services.metrics import kpi, kpi_items
from services.metrics.kpi import (
    LANES,
    RATES,
    TICKET_TYPES,
    UNIT_TYPES,
    CaseFacts,
    Change,
    Figures,
    Hotspot,
    KpiPolicy,
    Period,
    RankedUnit,
    RepeatedProblem,
)

if TYPE_CHECKING:  # matplotlib and openpyxl are imported by the functions that render (issue 21: memory)
    from matplotlib.figure import Figure
    from openpyxl import Workbook

KINDS = {"week": ("weekly", "周报"), "month": ("monthly", "月报")}
FORMATS = {"html": "text/html; charset=utf-8", "pdf": "application/pdf",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
CJK_FONT_FILES = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
                  "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
HEADLINE_RATES = ("response", "resolution", "satisfaction", "on_time_close", "return", "redo", "direct_answer")


@dataclass(frozen=True)
class ReportData:
    kind: str  # weekly | monthly
    period: Period
    as_of: datetime
    policy: KpiPolicy
    figures: Figures
    changes: dict[str, dict[str, Change]]
    ticket_types: list[tuple[str, int, Fraction]]
    unit_types: list[tuple[str, int, Fraction]]  # by dispatches
    lanes: dict[str, Figures]
    unit_type_figures: dict[str, Figures]
    daily: list[tuple[str, int]]  # tickets received per day
    hotspots: list[Hotspot]
    top_streets: list[tuple[str, int, Fraction]]
    top_addresses: list[tuple[str, int, Fraction]]
    repeats: int
    repeated: list[RepeatedProblem]
    ranking: list[RankedUnit]
    red: list[RankedUnit]
    black: list[RankedUnit]
    # issue #22: 督办 records by level and whistles by whistling unit type ("" = all; kpi_items.py)
    items: dict[str, dict[str, kpi_items.ItemKpi]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.period.label}"

    @property
    def title(self) -> str:
        p = self.period
        if p.kind == "month":
            span = f"{p.start.year}年{p.start.month}月"
        else:
            span = f"{p.label[:4]}年第{int(p.label[-2:])}周，{p.start:%m月%d日}—{p.days()[-1].start:%m月%d日}"
        return f"区12345热线工作{KINDS[p.kind][1]}（{span}）"

    def rate(self, name: str) -> Fraction | None:
        return self.figures.rate(name, self.policy).value


def items_of(records: Sequence[kpi_items.SupervisionFacts], whistles: Sequence[kpi_items.WhistleFacts],
             policy: KpiPolicy, start: datetime, end: datetime,
             as_of: datetime) -> dict[str, dict[str, kpi_items.ItemKpi]]:
    """The 督办 and 吹哨 figures of a period, by the KPI policy's item_figures (what GetKpis gives)."""
    return {"supervision": kpi_items.supervision_kpis(records, start, end, as_of, policy.item_groups("supervision")),
            "whistle": kpi_items.whistle_kpis(whistles, start, end, as_of, policy.item_groups("whistle"))}


def item_rows(items: dict[str, dict[str, kpi_items.ItemKpi]], policy: KpiPolicy) -> list[list[str]]:
    """[项目, 件次, 按时, 超时, 按时率, 已解决, 未解决, 解决率] per 督办 level and whistling unit type."""
    out = []
    for kind, total in (("supervision", "督办合计"), ("whistle", "吹哨合计")):
        names = {"": total, **policy.item_groups(kind)}
        for key, f in items.get(kind, {}).items():
            out.append([names.get(key, key or "未知"), str(f.count), str(f.on_time["on_time"]), str(f.on_time["late"]),
                        pct(f.value(f.on_time_rate())), str(f.resolution["resolved"]),
                        str(f.resolution["unresolved"]), pct(f.value(f.resolution_rate()))])
    return out


ITEM_HEADER = ["项目", "件次", "按时", "超时", "按时率", "已解决", "未解决", "解决率"]


def build(facts: Sequence[CaseFacts], policy: KpiPolicy, period: Period, as_of: datetime,
          records: Sequence[kpi_items.SupervisionFacts] = (),
          whistles: Sequence[kpi_items.WhistleFacts] = ()) -> ReportData:
    if period.kind not in KINDS:
        raise ValueError(f"reports are weekly or monthly, not {period.kind}")
    tz = period.tz
    current = kpi.within(facts, period.start, period.end)  # the rows any single-period figure can count

    def table(*dims: str, measures: tuple[str, ...] | None = None) -> kpi.KpiTable:
        return kpi.compute(current, policy, tz, period.start, period.end, dims, as_of=as_of, measures=measures)

    ranking = kpi.rank_units(current, policy, period, as_of=as_of)
    red, black = kpi.red_black_lists(ranking, policy)
    repeats, repeated = kpi.repeated_problems(current, policy, period)
    daily = table("day", measures=("tickets",))
    return ReportData(
        kind=KINDS[period.kind][0], period=period, as_of=as_of, policy=policy,
        figures=table().total,
        changes=kpi.changes(facts, policy, period, as_of=as_of),
        ticket_types=kpi.shares(table("ticket_type", measures=("tickets",))),
        unit_types=kpi.shares(table("unit_type", measures=("dispatches",)), "dispatches"),
        lanes={k[0]: f for k, f in table("lane").groups.items()},
        unit_type_figures={k[0]: f for k, f in table("unit_type").groups.items()},
        daily=[(d.label, daily.groups.get((d.label,), Figures()).tickets) for d in period.days()],
        hotspots=kpi.hotspots(facts, policy, period),
        top_streets=kpi.top_places(current, policy, period, "street"),
        # a report is read by any reporting role (viewer, leader): addresses as the masking table gives
        # them to a reader without a role (issue #19: reports carried the house numbers exports mask)
        top_addresses=[(masking.mask_value("address", a, None), n, x)
                       for a, n, x in kpi.top_places(current, policy, period, "address")],
        repeats=repeats, repeated=[dataclasses.replace(r, address=masking.mask_value("address", r.address, None))
                                   for r in repeated], ranking=ranking, red=red, black=black,
        items=items_of(records, whistles, policy, period.start, period.end, as_of),
    )


# --- formatting -----------------------------------------------------------------------------------


def pct(value: Fraction | None, digits: int = 2) -> str:
    return "—" if value is None else f"{float(value) * 100:.{digits}f}%"


def signed_pct(value: Fraction | None) -> str:
    return "—" if value is None else f"{float(value) * 100:+.2f}%"


def points(value: Fraction | None) -> str:
    return "—" if value is None else f"{float(value) * 100:+.2f}个百分点"


def score(value: Fraction | None) -> str:
    return "—" if value is None else f"{float(value):.2f}"


def label(dimension: str, value: str) -> str:
    names = {"ticket_type": TICKET_TYPES, "unit_type": UNIT_TYPES, "lane": LANES}.get(dimension, {})
    return names.get(value, value or "未知")


def summary(d: ReportData) -> list[str]:
    """The report's opening paragraphs, in the style of the district's reports."""
    unit = "本月" if d.period.kind == "month" else "本周"
    c = d.changes["tickets"]
    types = "，".join(f"{label('ticket_type', t)}占{pct(s)}" for t, _, s in d.ticket_types[:3])
    units = "，".join(f"{label('unit_type', t)}占{pct(s)}" for t, _, s in d.unit_types[:4])
    hot = "、".join(f"{h.category}（{pct(h.share)}）" for h in d.hotspots[:3])
    return [
        f"{unit}全区共受理12345热线工单{d.figures.tickets:,}件，环比{_trend(c['previous'].relative)}，"
        f"同比{_trend(c['year_ago'].relative)}；派单{d.figures.dispatches:,}件次。",
        f"诉求类型：{types}。承办单位类型：{units}。",
        f"响应率{pct(d.rate('response'))}，解决率{pct(d.rate('resolution'))}，满意率{pct(d.rate('satisfaction'))}，"
        f"按时办结率{pct(d.rate('on_time_close'))}，回退率{pct(d.rate('return'))}，重办率{pct(d.rate('redo'))}，"
        f"咨询直接答复率{pct(d.rate('direct_answer'))}。",
        f"热点诉求：{hot}。重复诉求{d.repeats:,}件。",
        *_item_summary(d),
        f"数据截至{d.as_of.astimezone(d.period.tz):%Y年%m月%d日 %H:%M}；"
        f"口径见 docs/kpis.md（政策版本 {d.policy.version}）。",
    ]


def _item_summary(d: ReportData) -> list[str]:
    if not d.items:
        return []
    sup, wh = d.items["supervision"][""], d.items["whistle"][""]
    by_type = "，".join(f"{d.policy.item_groups('whistle').get(k, k)}{f.count:,}次"
                       for k, f in d.items["whistle"].items() if k)
    return [f"督办{sup.count:,}件次，按时办结率{pct(sup.value(sup.on_time_rate()))}，"
            f"解决率{pct(sup.value(sup.resolution_rate()))}；吹哨{wh.count:,}次（{by_type}），"
            f"按时报到率{pct(wh.value(wh.on_time_rate()))}，解决率{pct(wh.value(wh.resolution_rate()))}。"]


def _trend(relative: Fraction | None) -> str:
    if relative is None:
        return "无可比数据"
    return f"{'上升' if relative >= 0 else '下降'}{pct(abs(relative))}"


def rate_rows(d: ReportData) -> list[list[str]]:
    rows = []
    for name in HEADLINE_RATES:
        r = d.figures.rate(name, d.policy)
        ch = d.changes[name]
        rows.append([RATES[name], pct(r.value), f"{float(r.numerator):g}/{r.denominator}",
                     points(ch["previous"].points), points(ch["year_ago"].points)])
    return rows


def ranking_rows(units: Sequence[RankedUnit], policy: KpiPolicy) -> list[list[str]]:
    return [[str(u.rank), u.unit_name or u.unit_id, label("unit_type", u.unit_type), str(u.dispatches), score(u.score),
             pct(u.rates["response"].value), pct(u.rates["resolution"].value), pct(u.rates["satisfaction"].value)]
            for u in units]


# --- charts ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def cjk_font() -> str:
    """The family name of a CJK font on this system (fontconfig first), registered with matplotlib."""
    files: list[str] = []
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False)
        files = [line.split(":")[0].strip() for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        pass
    files += [f for f in CJK_FONT_FILES if Path(f).exists()]
    from matplotlib import font_manager  # (imported when a report is rendered: ~50 MB a service keeps otherwise)
    for file in sorted(set(files), key=lambda f: ("wqy" not in f, f)):
        try:
            font_manager.fontManager.addfont(file)
            return str(font_manager.FontProperties(fname=file).get_name())
        except (OSError, RuntimeError, ValueError):
            continue
    raise RuntimeError("reports need a CJK font: install fonts-wqy-microhei (scripts/bootstrap.sh does)")


def _style() -> Any:
    return {"font.family": [cjk_font()], "axes.unicode_minus": False, "pdf.fonttype": 42, "font.size": 9}


def _figure(w: float = 8.27, h: float = 11.69) -> Figure:
    from matplotlib.figure import Figure
    return Figure(figsize=(w, h))


def charts(d: ReportData) -> dict[str, Figure]:
    """One figure per chart (the HTML shows each; the PDF lays them out on pages)."""
    import matplotlib
    with matplotlib.rc_context(_style()):
        out = {}
        fig = _figure(7, 2.6)
        ax = fig.add_subplot()
        labels = [day[5:] for day, _ in d.daily]
        ax.plot(labels, [n for _, n in d.daily], marker="o", color="#c0392b")
        ax.set_title("每日受理工单量")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out["daily"] = fig

        fig = _figure(7, 2.8)
        ax1, ax2 = fig.subplots(1, 2)
        _barh(ax1, [label("ticket_type", t) for t, _, _ in d.ticket_types], [s for _, _, s in d.ticket_types],
              "诉求类型占比")
        _barh(ax2, [label("unit_type", t) for t, _, _ in d.unit_types], [s for _, _, s in d.unit_types],
              "承办单位类型占比（派单）")
        fig.tight_layout()
        out["shares"] = fig

        fig = _figure(7, 3.0)
        ax = fig.add_subplot()
        names = [RATES[n] for n in HEADLINE_RATES[:4]]
        now = [_f(d.rate(n)) for n in HEADLINE_RATES[:4]]
        before = [_f(d.changes[n]["previous"].before) for n in HEADLINE_RATES[:4]]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], before, width=0.4, label="上期", color="#95a5a6")
        bars = ax.bar([x + 0.2 for x in xs], now, width=0.4, label="本期", color="#2980b9")
        ax.bar_label(bars, labels=[pct(d.rate(n)) for n in HEADLINE_RATES[:4]], fontsize=7)
        ax.set_xticks(list(xs), names)
        ax.set_ylim(0, 110)
        ax.set_ylabel("%")
        ax.legend(loc="lower right")
        ax.set_title("主要考核指标（本期与上期）")
        fig.tight_layout()
        out["rates"] = fig

        fig = _figure(7, 3.2)
        ax = fig.add_subplot()
        cats = [h.category for h in d.hotspots]
        xs = range(len(cats))
        for offset, values, name, color in ((-0.27, [h.share_year_ago for h in d.hotspots], "去年同期", "#bdc3c7"),
                                            (0, [h.share_previous for h in d.hotspots], "上期", "#95a5a6"),
                                            (0.27, [h.share for h in d.hotspots], "本期", "#c0392b")):
            ax.bar([x + offset for x in xs], [_f(v) for v in values], width=0.27, label=name, color=color)
        ax.set_xticks(list(xs), cats, rotation=30, fontsize=7)
        ax.set_ylabel("占工单量 %")
        ax.legend()
        ax.set_title("热点诉求占比")
        fig.tight_layout()
        out["hotspots"] = fig

        fig = _figure(7, 3.0)
        ax = fig.add_subplot()
        for h in d.hotspots[:5]:
            ax.plot([p[-5:] for p, _ in h.trend], [_f(s) for _, s in h.trend], marker=".", label=h.category)
        ax.set_title(f"热点诉求占比走势（近{len(d.hotspots[0].trend) if d.hotspots else 0}期）")
        ax.set_ylabel("%")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.legend(fontsize=7, ncol=5, loc="upper center")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out["trend"] = fig

        fig = _figure(7, 3.0)
        ax = fig.add_subplot()
        types = sorted(d.unit_type_figures)
        for i, name in enumerate(("response", "resolution", "satisfaction", "on_time_close")):
            heights = [_f(d.unit_type_figures[t].rate(name, d.policy).value) for t in types]
            ax.bar([x + (i - 1.5) * 0.2 for x in range(len(types))], heights, width=0.2, label=RATES[name])
        ax.set_xticks(range(len(types)), [label("unit_type", t) for t in types])
        ax.set_ylim(0, 110)
        ax.legend(fontsize=7, ncol=4, loc="lower center")
        ax.set_title("分单位类型考核指标")
        fig.tight_layout()
        out["by_unit_type"] = fig
        return out


def _f(value: Fraction | None) -> float:
    return float("nan") if value is None else float(value) * 100


def _barh(ax: Any, labels: list[str], values: list[Fraction], title: str) -> None:
    bars = ax.barh(labels[::-1], [float(v) * 100 for v in values[::-1]], color="#2980b9")
    ax.bar_label(bars, labels=[pct(v) for v in values[::-1]], fontsize=7)
    ax.set_xlim(0, 115)
    ax.set_title(title)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode()


# --- renderings -----------------------------------------------------------------------------------

_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:"WenQuanYi Micro Hei","Noto Sans CJK SC",sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px}
th{background:#eef}h1{font-size:22px}h2{font-size:17px;border-bottom:2px solid #c0392b}img{max-width:100%}</style>
</head><body>
<h1>{{ title }}</h1>
{% for p in summary %}<p>{{ p }}</p>{% endfor %}
<h2>一、主要考核指标</h2>
<table><tr><th>指标</th><th>本期</th><th>分子/分母</th><th>环比</th><th>同比</th></tr>
{% for r in rates %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
<img alt="主要考核指标" src="data:image/png;base64,{{ charts.rates }}">
<h2>二、诉求分布</h2>
<img alt="每日受理工单量" src="data:image/png;base64,{{ charts.daily }}">
<img alt="诉求类型与承办单位类型" src="data:image/png;base64,{{ charts.shares }}">
<table><tr><th>专项通道</th><th>工单量</th>{% for n in rate_names %}<th>{{ n }}</th>{% endfor %}</tr>
{% for r in lanes %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
<img alt="分单位类型考核指标" src="data:image/png;base64,{{ charts.by_unit_type }}">
<h2>三、热点诉求</h2>
<img alt="热点诉求占比" src="data:image/png;base64,{{ charts.hotspots }}">
<img alt="热点诉求占比走势" src="data:image/png;base64,{{ charts.trend }}">
<table><tr><th>街道</th><th>工单量</th><th>占比</th></tr>
{% for r in streets %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
<h2>四、重复诉求（屡诉问题）</h2>
<table><tr><th>分类</th><th>地址</th><th>工单量</th><th>未解决</th></tr>
{% for r in repeated %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
<h2>五、承办单位红黑榜（考核得分）</h2>
<h3>红榜</h3>{{ ranking_table(red) }}<h3>黑榜</h3>{{ ranking_table(black) }}
<h3>全部排名</h3>{{ ranking_table(ranking) }}
<h2>六、督办与吹哨</h2>
<table><tr>{% for h in item_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in items %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
</body></html>""")
RANKING_HEADER = ["名次", "单位", "类型", "派单", "得分", "响应率", "解决率", "满意率"]


def render_html(d: ReportData, figures: dict[str, Figure]) -> str:
    def ranking_table(units: Sequence[RankedUnit]) -> Any:
        rows = [RANKING_HEADER, *ranking_rows(units, d.policy)]
        cells = "".join("<tr>" + "".join(f"<td>{markupsafe.escape(c)}</td>" for c in r) + "</tr>"
                        for r in rows)
        return markupsafe.Markup(f"<table>{cells}</table>")

    return _TEMPLATE.render(
        title=d.title, summary=summary(d), rates=rate_rows(d), charts={k: _png(f) for k, f in figures.items()},
        rate_names=[RATES[n] for n in HEADLINE_RATES[:4]],
        lanes=[[label("lane", k), f.tickets, *(pct(f.rate(n, d.policy).value) for n in HEADLINE_RATES[:4])]
               for k, f in sorted(d.lanes.items())],
        streets=[[s, n, pct(share)] for s, n, share in d.top_streets],
        repeated=[[r.category, r.address, r.tickets, r.unresolved] for r in d.repeated],
        red=d.red, black=d.black, ranking=d.ranking, ranking_table=ranking_table,
        item_header=ITEM_HEADER, items=item_rows(d.items, d.policy),
    )


def render_pdf(d: ReportData, figures: dict[str, Figure]) -> bytes:
    buf = io.BytesIO()
    info = {"Title": d.title, "Creator": "hotline metrics"}
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    with matplotlib.rc_context(_style()), PdfPages(buf, metadata=info) as pdf:
        page = _figure()
        page.text(0.5, 0.955, d.title, ha="center", fontsize=15)
        y = 0.92
        for paragraph in summary(d):
            for line in _wrap(paragraph, 46):
                page.text(0.07, y, line, fontsize=10)
                y -= 0.022
            y -= 0.008
        page.text(0.07, y - 0.01, "一、主要考核指标", fontsize=12)
        _table(page, (0.07, y - 0.27, 0.86, 0.24), ["指标", "本期", "分子/分母", "环比", "同比"], rate_rows(d))
        _place(page, figures["rates"], (0.07, 0.05, 0.86, 0.3))
        pdf.savefig(page)

        page = _figure()
        page.text(0.07, 0.96, "二、诉求分布", fontsize=12)
        _place(page, figures["daily"], (0.05, 0.68, 0.9, 0.26))
        _place(page, figures["shares"], (0.05, 0.38, 0.9, 0.28))
        _place(page, figures["by_unit_type"], (0.05, 0.07, 0.9, 0.29))
        pdf.savefig(page)

        page = _figure()
        page.text(0.07, 0.96, "三、热点诉求", fontsize=12)
        _place(page, figures["hotspots"], (0.05, 0.64, 0.9, 0.3))
        _place(page, figures["trend"], (0.05, 0.34, 0.9, 0.29))
        page.text(0.07, 0.31, "四、重复诉求（屡诉问题）", fontsize=12)
        _table(page, (0.07, 0.04, 0.86, 0.25), ["分类", "地址", "工单量", "未解决"],
               [[r.category, r.address, str(r.tickets), str(r.unresolved)] for r in d.repeated] or [["—"] * 4])
        pdf.savefig(page)

        page = _figure()
        page.text(0.07, 0.96, "五、承办单位红黑榜（考核得分）", fontsize=12)
        page.text(0.07, 0.93, "红榜", fontsize=11, color="#c0392b")
        _table(page, (0.05, 0.72, 0.9, 0.2), RANKING_HEADER, ranking_rows(d.red, d.policy) or [["—"] * 8])
        page.text(0.07, 0.68, "黑榜", fontsize=11)
        _table(page, (0.05, 0.47, 0.9, 0.2), RANKING_HEADER, ranking_rows(d.black, d.policy) or [["—"] * 8])
        page.text(0.07, 0.43, "专项通道", fontsize=11)
        _table(page, (0.05, 0.25, 0.9, 0.17), ["通道", "工单量", *(RATES[n] for n in HEADLINE_RATES[:4])],
               [[label("lane", k), str(f.tickets), *(pct(f.rate(n, d.policy).value) for n in HEADLINE_RATES[:4])]
                for k, f in sorted(d.lanes.items())])
        page.text(0.07, 0.2, "工单量居前的街道", fontsize=11)
        _table(page, (0.05, 0.03, 0.9, 0.16), ["街道", "工单量", "占比"],
               [[s, str(n), pct(share)] for s, n, share in d.top_streets[:6]] or [["—"] * 3])
        pdf.savefig(page)

        page = _figure()
        page.text(0.07, 0.96, "六、督办与吹哨", fontsize=12)
        _table(page, (0.05, 0.55, 0.9, 0.38), ITEM_HEADER, item_rows(d.items, d.policy))
        pdf.savefig(page)
    return buf.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, never cutting inside a number."""
    lines = []
    while len(text) > width:
        cut = width
        while cut > width // 2 and (text[cut - 1] + text[cut]).replace(",", "0").replace(".", "0").isascii() \
                and text[cut - 1] not in "（）：；，。":
            cut -= 1
        lines.append(text[:cut])
        text = text[cut:]
    return [*lines, text]


def _table(page: Figure, rect: tuple[float, float, float, float], header: list[str], rows: list[list[str]]) -> None:
    ax = page.add_axes(rect)
    ax.axis("off")
    rows = rows or [["（本期无数据）", *[""] * (len(header) - 1)]]  # an empty period still renders
    t = ax.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.scale(1, 1.25)


def _place(page: Figure, chart: Figure, rect: tuple[float, float, float, float]) -> None:
    """Draw a chart (rendered to an image) into a region of a page."""
    buf = io.BytesIO()
    chart.savefig(buf, format="png", dpi=150)
    buf.seek(0)
    import matplotlib.image
    image = matplotlib.image.imread(buf)
    ax = page.add_axes(rect)
    ax.imshow(image)
    ax.axis("off")


def xlsx_overview(d: Any) -> tuple[Any, Any]:
    """A report's workbook and its 概况 sheet with the heading rows (title, period, as of, policy
    version, the columns of the figures): the same for the monthly and the annual report."""
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "概况"
    ws.append([d.title])
    ws.append(["统计期", d.period.label, "数据截至", d.as_of.astimezone(d.period.tz).strftime("%Y-%m-%d %H:%M"),
               "政策版本", d.policy.version])
    ws.append([])
    ws.append(["指标", "代码", "本期", "分子", "分母", "环比(上期值)", "同比(去年同期值)"])
    return wb, ws


def render_xlsx(d: ReportData) -> bytes:
    """Every figure behind the report, as numbers (rates as fractions of 1)."""
    wb, ws = xlsx_overview(d)
    for name in ("tickets", "dispatches"):
        ch = d.changes[name]
        ws.append([{"tickets": "工单量", "dispatches": "派单量"}[name], name, d.figures.n(name), None, None,
                   _num(ch["previous"].before), _num(ch["year_ago"].before)])
    for name in RATES:
        r = d.figures.rate(name, d.policy)
        ch = d.changes[name]
        ws.append([RATES[name], name, _num(r.value), _num(r.numerator), r.denominator,
                   _num(ch["previous"].before), _num(ch["year_ago"].before)])
    ws.append([])
    ws.append(["分项计数", "指标", "结果", "件数"])
    for measure, counter in sorted(d.figures.counts.items()):
        for bucket, n in sorted(counter.items()):
            ws.append(["", measure, bucket, n])
    _sheet(wb, "单位排名", ["名次", "单位编码", "单位", "类型", "派单", "得分", *(RATES[n] for n in RATES)],
           [[u.rank, u.unit_id, u.unit_name, label("unit_type", u.unit_type), u.dispatches, _num(u.score),
             *(_num(u.rates[n].value) for n in RATES)] for u in d.ranking])
    _sheet(wb, "红黑榜", ["榜单", "名次", "单位", "得分"],
           [["红榜", u.rank, u.unit_name, _num(u.score)] for u in d.red]
           + [["黑榜", u.rank, u.unit_name, _num(u.score)] for u in d.black])
    _sheet(wb, "诉求类型", ["类型", "工单量", "占比"],
           [[label("ticket_type", t), n, _num(s)] for t, n, s in d.ticket_types])
    _sheet(wb, "单位类型", ["类型", "派单量", "占比"],
           [[label("unit_type", t), n, _num(s)] for t, n, s in d.unit_types])
    _sheet(wb, "专项通道", ["通道", "工单量", *(RATES[n] for n in RATES)],
           [[label("lane", k), f.tickets, *(_num(f.rate(n, d.policy).value) for n in RATES)]
            for k, f in sorted(d.lanes.items())])
    _sheet(wb, "每日工单", ["日期", "工单量"], [list(x) for x in d.daily])
    _sheet(wb, "热点诉求", ["分类", "工单量", "占比", "上期占比", "去年同期占比",
                        *(p for p, _ in (d.hotspots[0].trend if d.hotspots else ()))],
           [[h.category, h.tickets, _num(h.share), _num(h.share_previous), _num(h.share_year_ago),
             *(_num(s) for _, s in h.trend)] for h in d.hotspots])
    _sheet(wb, "街道", ["街道", "工单量", "占比"], [[s, n, _num(x)] for s, n, x in d.top_streets])
    _sheet(wb, "地址", ["地址", "工单量", "占比"], [[s, n, _num(x)] for s, n, x in d.top_addresses])
    _sheet(wb, "屡诉问题", ["分类", "地址", "工单量", "未解决"],
           [[r.category, r.address, r.tickets, r.unresolved] for r in d.repeated])
    _sheet(wb, "督办与吹哨", ["类别", "分组", "件次", "按时", "超时", "待到期", "按时率", "已解决", "未解决", "未办结",
                         "解决率"],
           [[kind, key or "all", f.count, f.on_time["on_time"], f.on_time["late"], f.on_time["pending"],
             _num(f.value(f.on_time_rate())), f.resolution["resolved"], f.resolution["unresolved"],
             f.resolution["open"], _num(f.value(f.resolution_rate()))]
            for kind, groups in d.items.items() for key, f in groups.items()])
    text_cells(wb)  # citizen text that looks like a formula opens as text (issue #19)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _num(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def _sheet(wb: Workbook, title: str, header: list[str], rows: list[list[Any]]) -> None:
    from openpyxl.styles import Font
    ws = wb.create_sheet(title)
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(row)


def render(d: ReportData, progress: Callable[[str], None] = lambda step: None) -> dict[str, bytes]:
    """HTML, PDF and XLSX of one report; ``progress`` hears each finished step."""
    figures = charts(d)
    progress("charts")
    html = render_html(d, figures).encode()
    progress("html")
    pdf = render_pdf(d, figures)
    progress("pdf")
    xlsx = render_xlsx(d)
    progress("xlsx")
    return {"html": html, "pdf": pdf, "xlsx": xlsx}


def meta(d: ReportData, files: dict[str, bytes], created_at: datetime) -> dict[str, Any]:
    return {"_id": d.id, "kind": d.kind, "period": d.period.label, "title": d.title, "as_of": d.as_of,
            "created_at": created_at, "policy_version": d.policy.version, "tickets": d.figures.tickets,
            "sizes": {k: len(v) for k, v in files.items()}}
