"""The KPI engine (考核指标): the district's rates from per-case facts. Pure: no I/O, no clock.

One :class:`CaseFacts` row exists per (ticket, dispatch round, redo round): a dispatch to a
handling unit (派单), and each redo (重办) of it. Every figure is a count of rows whose
*anchor* time (a different one per measure) falls in a window, bucketed by outcome; a rate is
a ratio of those integer counts, kept as an exact :class:`~fractions.Fraction`. The
definitions, anchors and exclusions are documented once, in ``docs/kpis.md``; weights and
thresholds are the versioned policy file ``hotline/data/kpi_policy.json`` (the rates and the policy
are the kit's, hotline/kpi_rates.py: deputy liaison computes its satisfaction rate with them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

# One definition of the rates, shared with deputy liaison: the kit (hotline/kpi_rates.py) holds it and the
# KPI policy file (hotline/data/kpi_policy.json); the names stay importable from here.
from hotline.kpi_rates import ITEM_FIGURES as ITEM_FIGURES
from hotline.kpi_rates import POLICY_FILE as POLICY_FILE
from hotline.kpi_rates import RATES as RATES
from hotline.kpi_rates import Figures as Figures
from hotline.kpi_rates import KpiPolicy as KpiPolicy
from hotline.kpi_rates import Rate as Rate

# Bounded vocabularies (keys stored in facts, Chinese labels for people).
UNIT_TYPES = {"street": "街道", "department": "部门", "soe": "国企", "management_committee": "管委会",
              "community": "社区"}
TICKET_TYPES = {"complaint": "投诉", "help": "求助", "consultation": "咨询", "suggestion": "建议", "praise": "表扬"}
# the case's lane, decided by the SLA policy's case_lanes (hotline/data/sla_policy.json)
LANES = {"deputy": "人大代表", "enterprise": "涉企", "tourist": "旅游", "emergency": "紧急", "normal": "普通"}
REPLY_RESULTS = {"resolved": "已解决", "partly": "部分解决", "not_resolvable": "无法解决"}
RESOLUTIONS = {"resolved": "解决", "partly": "部分解决", "unresolved": "未解决", "not_reached": "未联系上"}
SATISFACTIONS = {"satisfied": "满意", "basic": "基本满意", "unsatisfied": "不满意", "not_evaluated": "未评价"}
SUPERVISION_LEVELS = {"0": "未督办", "1": "系统督办", "2": "OA督办", "3": "作风监督员督办", "4": "领导督办"}


@dataclass(frozen=True)
class CaseFacts:
    """What is known about one dispatch round (and redo round) of one ticket. Times are UTC."""

    ticket_id: str
    dispatch_round: int = 1  # 1 for the first dispatch, +1 per re-dispatch after a return (退单)
    redo_round: int = 0  # 0 for the first handling, +1 per redo (重办) of the same dispatch
    # the ticket
    ticket_type: str = ""  # key of TICKET_TYPES
    category: str = ""  # 诉求分类
    list_item: str = ""  # rule id of the first-responsible list (首接负责主协办清单)
    street: str = ""  # 所属街道 (name)
    address: str = ""  # 诉求地址
    lane: str = "normal"  # key of LANES
    repeat: bool = False  # a repeat of an earlier ticket (重复诉求)
    received_at: datetime | None = None
    # this dispatch round
    unit_id: str = ""  # primary unit (主办单位)
    unit_name: str = ""
    unit_type: str = ""  # key of UNIT_TYPES
    supervision_level: int = 0  # highest level reached, 0..4 (SUPERVISION_LEVELS)
    assigned_at: datetime | None = None
    sign_off_due: datetime | None = None  # 签收时限
    signed_off_at: datetime | None = None
    first_contact_due: datetime | None = None  # 首次联系时限
    first_contact_at: datetime | None = None
    returned: bool = False  # 退单 approved: the dispatch ended and the ticket was re-dispatched
    # this handling (redo round)
    reply_due: datetime | None = None  # 办理时限 (extended when an extension was approved)
    replied_at: datetime | None = None
    reply_result: str = ""  # key of REPLY_RESULTS
    redone: bool = False  # the reply failed the district's review and was sent back (重办)
    close_due: datetime | None = None  # 办结时限
    closed_at: datetime | None = None  # 办结
    evaluated_at: datetime | None = None  # 回访
    resolution: str = ""  # key of RESOLUTIONS
    satisfaction: str = ""  # key of SATISFACTIONS
    direct_answer: bool = False  # 直接答复: the office answered this consultation with a knowledge article

    @property
    def key(self) -> str:
        return f"{self.ticket_id}|{self.dispatch_round}|{self.redo_round}"


# --- measures: which rows count, at which time, in which outcome bucket ---------------------


def _response_due(f: CaseFacts) -> datetime | None:
    dues = [d for d in (f.sign_off_due, f.first_contact_due) if d is not None]
    return max(dues) if dues and f.sign_off_due is not None else None


def _responded_on_time(f: CaseFacts) -> bool:
    signed = f.signed_off_at is not None and f.sign_off_due is not None and f.signed_off_at <= f.sign_off_due
    contacted = f.first_contact_due is None or (
        f.first_contact_at is not None and f.first_contact_at <= f.first_contact_due)
    return signed and contacted


@dataclass(frozen=True)
class Measure:
    name: str
    label: str
    anchor: Callable[[CaseFacts], datetime | None]  # None: the row is not in this measure
    bucket: Callable[[CaseFacts], str]


MEASURES: dict[str, Measure] = {m.name: m for m in (
    Measure("tickets", "工单量",
            lambda f: f.received_at if f.dispatch_round == 1 and f.redo_round == 0 else None, lambda f: "count"),
    Measure("dispatches", "派单量", lambda f: f.assigned_at if f.redo_round == 0 else None, lambda f: "count"),
    Measure("response", "响应",
            lambda f: _response_due(f) if f.redo_round == 0 and not f.returned and not f.direct_answer else None,
            lambda f: "on_time" if _responded_on_time(f) else "late"),
    Measure("resolution", "解决", lambda f: f.evaluated_at if f.resolution in RESOLUTIONS else None,
            lambda f: f.resolution),
    Measure("satisfaction", "满意", lambda f: f.evaluated_at if f.satisfaction in SATISFACTIONS else None,
            lambda f: f.satisfaction),
    Measure("on_time_close", "办结", lambda f: f.closed_at,
            lambda f: "on_time" if f.close_due is None or (f.closed_at or f.close_due) <= f.close_due else "late"),
    Measure("return", "退单", lambda f: f.assigned_at if f.redo_round == 0 else None,
            lambda f: "returned" if f.returned else "kept"),
    Measure("redo", "重办", lambda f: f.replied_at, lambda f: "redone" if f.redone else "accepted"),
    Measure("direct_answer", "直接答复",
            lambda f: f.closed_at if f.ticket_type == "consultation" else None,
            lambda f: "direct" if f.direct_answer else "handled"),
)}

DIMENSIONS: dict[str, Callable[[CaseFacts], str]] = {
    "unit": lambda f: f.unit_id,
    "unit_type": lambda f: f.unit_type,
    "street": lambda f: f.street,
    "ticket_type": lambda f: f.ticket_type,
    "category": lambda f: f.category,
    "list_item": lambda f: f.list_item,
    "lane": lambda f: f.lane,
    "supervision_level": lambda f: str(f.supervision_level),
    "address": lambda f: f.address,
}


PERIOD_KINDS = ("day", "week", "month", "half", "year")


def period_label(kind: str, when: datetime, tz: ZoneInfo) -> str:
    d = when.astimezone(tz).date()
    if kind == "day":
        return d.isoformat()
    if kind == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "month":
        return f"{d.year}-{d.month:02d}"
    if kind == "half":  # 半年: 2026-H1 (January to June), 2026-H2
        return f"{d.year}-H{1 if d.month <= 6 else 2}"
    if kind == "year":
        return str(d.year)
    raise ValueError(f"unknown period kind {kind!r}")


@dataclass(frozen=True)
class Period:
    """A day ``2026-11-15``, ISO week ``2026-W47``, month ``2026-11``, half-year ``2026-H1`` or
    year ``2026`` in the district's time zone; ``start`` inclusive, ``end`` exclusive."""

    kind: str
    label: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, label: str, tz: ZoneInfo) -> Period:
        try:
            if len(label) == 4:
                first = date(int(label), 1, 1)
                return cls._make("year", first, date(first.year + 1, 1, 1), tz)
            if "-H" in label and label[-1] in "12" and len(label) == 7:
                first = date(int(label[:4]), 1 if label[-1] == "1" else 7, 1)
                return cls._make("half", first, _add_months(first, 6), tz)
            if "-W" in label:
                year, week = label.split("-W")
                first = date.fromisocalendar(int(year), int(week), 1)
                return cls._make("week", first, first + timedelta(days=7), tz)
            if len(label) == 7:
                first = date(int(label[:4]), int(label[5:]), 1)
                return cls._make("month", first, _add_months(first, 1), tz)
            first = date.fromisoformat(label)
            return cls._make("day", first, first + timedelta(days=1), tz)
        except ValueError as exc:
            raise ValueError(f"period must be YYYY, YYYY-Hn, YYYY-MM, YYYY-Www or YYYY-MM-DD, got {label!r}") from exc

    @classmethod
    def _make(cls, kind: str, first: date, after: date, tz: ZoneInfo) -> Period:
        start = datetime.combine(first, time(0), tz)
        return cls(kind, period_label(kind, start, tz), start, datetime.combine(after, time(0), tz))

    @property
    def tz(self) -> ZoneInfo:
        assert isinstance(self.start.tzinfo, ZoneInfo)
        return self.start.tzinfo

    def shifted(self, steps: int) -> Period:
        """The period ``steps`` periods later (negative: earlier)."""
        first = self.start.date()
        if self.kind == "day":
            return self.parse((first + timedelta(days=steps)).isoformat(), self.tz)
        if self.kind == "week":
            return self.parse(period_label("week", self.start + timedelta(weeks=steps), self.tz), self.tz)
        if self.kind == "month":
            return self.parse(_add_months(first, steps).isoformat()[:7], self.tz)
        if self.kind == "half":
            return self.parse(period_label("half", datetime.combine(_add_months(first, 6 * steps), time(12), self.tz),
                                           self.tz), self.tz)
        return self.parse(str(first.year + steps), self.tz)

    def previous(self) -> Period:
        return self.shifted(-1)

    def year_ago(self) -> Period:
        """The same period a year earlier (同期): same day, ISO week number, month."""
        if self.kind == "year":
            return self.shifted(-1)
        if self.kind == "month":
            return self.shifted(-12)
        if self.kind == "half":
            return self.shifted(-2)
        first = self.start.date()
        if self.kind == "week":
            year, week, _ = first.isocalendar()
            weeks_then = date(year - 1, 12, 28).isocalendar()[1]
            return self.parse(f"{year - 1}-W{min(week, weeks_then):02d}", self.tz)
        try:
            return self.parse(first.replace(year=first.year - 1).isoformat(), self.tz)
        except ValueError:  # 29 February
            return self.parse(date(first.year - 1, 2, 28).isoformat(), self.tz)

    def days(self) -> list[Period]:
        out = [self.parse(self.start.date().isoformat(), self.tz)]
        while out[-1].end < self.end:
            out.append(out[-1].shifted(1))
        return out


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


# --- the computation -------------------------------------------------------------------------


@dataclass
class KpiTable:
    """Figures of each group (key = one value per ``group_by`` dimension) and of all rows."""

    group_by: tuple[str, ...]
    total: Figures
    groups: dict[tuple[str, ...], Figures]

    def share(self, key: tuple[str, ...], measure: str = "tickets") -> Fraction | None:
        whole = self.total.n(measure)
        return Fraction(self.groups[key].n(measure), whole) if whole and key in self.groups else None


def compute(
    facts: Iterable[CaseFacts],
    policy: KpiPolicy,
    tz: ZoneInfo,
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: Sequence[str] = (),
    filters: Mapping[str, Collection[str]] | None = None,
    as_of: datetime | None = None,
    measures: Collection[str] | None = None,
) -> KpiTable:
    """Count every measure's rows whose anchor lies in [start, min(end, as_of)), grouped.

    ``group_by`` names dimensions of ``DIMENSIONS`` or a period kind (``day`` ... ``year``:
    the period of the measure's own anchor). ``filters`` keeps rows whose dimension value is
    one of the given values.
    """
    unknown = [d for d in (*group_by, *(filters or {})) if d not in DIMENSIONS and d not in PERIOD_KINDS]
    if unknown:
        raise ValueError(f"unknown dimension(s) {', '.join(unknown)}; known: "
                         f"{', '.join([*DIMENSIONS, *PERIOD_KINDS])}")
    if as_of is not None and (end is None or as_of < end):
        end = as_of
    chosen = [MEASURES[m] for m in (measures or MEASURES)]
    filter_fns = [(DIMENSIONS[d], set(values)) for d, values in (filters or {}).items() if d in DIMENSIONS]
    period_filters = [(d, set(values)) for d, values in (filters or {}).items() if d in PERIOD_KINDS]
    total = Figures()
    groups: dict[tuple[str, ...], Figures] = {}
    for f in facts:
        if any(fn(f) not in values for fn, values in filter_fns):
            continue
        for m in chosen:
            at = m.anchor(f)
            if at is None or (start is not None and at < start) or (end is not None and at >= end):
                continue
            if any(period_label(d, at, tz) not in values for d, values in period_filters):
                continue
            bucket = m.bucket(f)
            total.add(m.name, bucket)
            if group_by:
                key = tuple(period_label(d, at, tz) if d in PERIOD_KINDS else DIMENSIONS[d](f) for d in group_by)
                groups.setdefault(key, Figures()).add(m.name, bucket)
    return KpiTable(tuple(group_by), total, groups)


def within(facts: Iterable[CaseFacts], start: datetime, end: datetime) -> list[CaseFacts]:
    """The rows with at least one measure's anchor in [start, end): all that a computation over
    that window can count (a cheap pre-filter for repeated computations)."""
    return [f for f in facts if any((at := m.anchor(f)) is not None and start <= at < end for m in MEASURES.values())]


# --- ranking, distributions, trends ---------------------------------------------------------


@dataclass(frozen=True)
class RankedUnit:
    rank: int
    unit_id: str
    unit_name: str
    unit_type: str
    dispatches: int
    score: Fraction
    rates: Mapping[str, Rate]


def rank_units(facts: Sequence[CaseFacts], policy: KpiPolicy, period: Period,
               as_of: datetime | None = None) -> list[RankedUnit]:
    """Units by assessment score (考核得分), best first; ties by unit id. Units with fewer than
    ``min_dispatches`` dispatches in the period, or no score, are not ranked."""
    table = compute(facts, policy, period.tz, period.start, period.end, ("unit",), as_of=as_of)
    names = {f.unit_id: (f.unit_name, f.unit_type) for f in facts}
    scored = [(score, unit, figs) for (unit,), figs in table.groups.items()
              if figs.dispatches >= policy.min_dispatches and (score := figs.score(policy)) is not None]
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [RankedUnit(i + 1, unit, names.get(unit, ("", ""))[0], names.get(unit, ("", ""))[1], figs.dispatches,
                       score, figs.rates(policy)) for i, (score, unit, figs) in enumerate(scored)]


def red_black_lists(ranked: Sequence[RankedUnit], policy: KpiPolicy) -> tuple[list[RankedUnit], list[RankedUnit]]:
    """红榜 (the best ``red_list`` units) and 黑榜 (the worst ``black_list``, worst first), never overlapping."""
    red = list(ranked[: policy.red_list])
    rest = ranked[len(red):]
    black = list(reversed(rest[max(0, len(rest) - policy.black_list):]))
    return red, black


@dataclass(frozen=True)
class Change:
    """Period-over-period (环比) or year-over-year (同比) change of one figure."""

    current: Fraction | None
    before: Fraction | None

    @property
    def relative(self) -> Fraction | None:
        """(current - before) / before: for volumes."""
        if self.current is None or not self.before:
            return None
        return (self.current - self.before) / self.before

    @property
    def points(self) -> Fraction | None:
        """current - before: for rates (percentage points when shown as %)."""
        return None if self.current is None or self.before is None else self.current - self.before


def by_period(facts: Iterable[CaseFacts], policy: KpiPolicy, periods: Sequence[Period], group_by: Sequence[str] = (),
              as_of: datetime | None = None, measures: Collection[str] | None = None) -> dict[str, KpiTable]:
    """One pass over the facts for several periods of one kind: period label -> table."""
    kind = periods[0].kind
    table = compute(facts, policy, periods[0].tz, min(p.start for p in periods), max(p.end for p in periods),
                    (kind, *group_by), as_of=as_of, measures=measures)
    out = {p.label: KpiTable(tuple(group_by), Figures(), {}) for p in periods}
    for key, figs in table.groups.items():
        if (sub := out.get(key[0])) is None:
            continue
        if group_by:
            sub.groups[key[1:]] = figs
        for measure, counter in figs.counts.items():
            sub.total.counts.setdefault(measure, Counter()).update(counter)
    return out


def changes(facts: Sequence[CaseFacts], policy: KpiPolicy, period: Period,
            as_of: datetime | None = None) -> dict[str, dict[str, Change]]:
    """figure -> {"previous": 环比, "year_ago": 同比} for tickets, dispatches and every rate."""
    tables = by_period(facts, policy, [period, period.previous(), period.year_ago()], as_of=as_of)
    now, prev, then = (tables[p.label].total for p in (period, period.previous(), period.year_ago()))
    out: dict[str, dict[str, Change]] = {}
    for volume in ("tickets", "dispatches"):
        out[volume] = {"previous": Change(Fraction(now.n(volume)), Fraction(prev.n(volume))),
                       "year_ago": Change(Fraction(now.n(volume)), Fraction(then.n(volume)))}
    for name in RATES:
        out[name] = {"previous": Change(now.rate(name, policy).value, prev.rate(name, policy).value),
                     "year_ago": Change(now.rate(name, policy).value, then.rate(name, policy).value)}
    return out


def shares(table: KpiTable, measure: str = "tickets") -> list[tuple[str, int, Fraction]]:
    """(value, count, share) of a one-dimension table, largest first, ties by value."""
    whole = table.total.n(measure)
    rows = [(key[0], figs.n(measure)) for key, figs in table.groups.items() if figs.n(measure)]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return [(value, n, Fraction(n, whole)) for value, n in rows]


@dataclass(frozen=True)
class Hotspot:
    category: str
    tickets: int
    share: Fraction
    share_previous: Fraction | None
    share_year_ago: Fraction | None
    trend: tuple[tuple[str, Fraction | None], ...]  # (period label, share) over the last periods


def hotspots(facts: Sequence[CaseFacts], policy: KpiPolicy, period: Period) -> list[Hotspot]:
    """The categories with most tickets in the period, their share then, before and over time."""
    series = [period.shifted(-i) for i in range(policy.trend_periods - 1, -1, -1)]
    tables = by_period(facts, policy, [*series, period, period.previous(), period.year_ago()], ("category",),
                       measures=("tickets",))

    def share_of(p: Period) -> dict[str, Fraction]:
        return {v: s for v, _, s in shares(tables[p.label])}

    prev, then = share_of(period.previous()), share_of(period.year_ago())
    trend_shares = [(p.label, share_of(p)) for p in series]
    out = []
    for category, n, share in shares(tables[period.label])[: policy.hotspot_top]:
        trend = tuple((label, s.get(category, Fraction(0)) if s else None) for label, s in trend_shares)
        out.append(Hotspot(category, n, share, prev.get(category, Fraction(0)) if prev else None,
                           then.get(category, Fraction(0)) if then else None, trend))
    return out


def top_places(facts: Sequence[CaseFacts], policy: KpiPolicy, period: Period,
               dimension: str = "street") -> list[tuple[str, int, Fraction]]:
    table = compute(facts, policy, period.tz, period.start, period.end, (dimension,), measures=("tickets",))
    return [row for row in shares(table) if row[0]][: policy.places_top]


@dataclass(frozen=True)
class RepeatedProblem:
    category: str
    address: str
    tickets: int
    unresolved: int  # of those tickets' evaluations in the period: 未解决


def repeated_problems(facts: Sequence[CaseFacts], policy: KpiPolicy,
                      period: Period) -> tuple[int, list[RepeatedProblem]]:
    """Tickets marked as repeats (重复诉求), and the (category, address) pairs with at least
    ``repeat_min_tickets`` tickets in the period, most first (屡诉问题)."""
    table = compute(facts, policy, period.tz, period.start, period.end, ("category", "address"),
                    measures=("tickets", "resolution"))
    repeats = compute([f for f in facts if f.repeat], policy, period.tz, period.start, period.end,
                      measures=("tickets",)).total.tickets
    rows = [RepeatedProblem(cat, addr, figs.tickets, figs.n("resolution", "unresolved"))
            for (cat, addr), figs in table.groups.items() if addr and figs.tickets >= policy.repeat_min_tickets]
    rows.sort(key=lambda r: (-r.tickets, r.category, r.address))
    return repeats, rows[: policy.repeat_top]
