"""The KPI engine's supervision items: whistles (吹哨报到) and the 屡办不成 list's items, as facts
beside the case facts of :mod:`services.metrics.kpi`. Pure: no I/O, no clock.

Definitions (docs/kpis.md, "Whistles and 屡办不成"):

* a **whistle** counts in the window of its ``blown_at``; outcome ``resolved`` (closed as resolved
  by ``as_of``), ``unresolved`` (closed, not resolved) or ``open``; 解决率 = resolved / whistles;
* a **summons** (one per whistle and summoned department) counts with its whistle; outcome
  ``on_time`` (reported in by its limit), ``late`` or ``pending``;
* a **屡办不成 item** counts in the window of its list's month (the month's first instant);
  outcome ``solved`` (resolved by ``as_of``) or ``open``; 销号率 = solved / items.

Issue #22 adds the figures ``GetKpis`` and the reports show for **督办 records** (one per level
raised on a case) per level and for **whistles** per whistling unit type (street office /
department): count, on-time and resolution, defined once here (:class:`ItemKpi`) and named in the
KPI policy's ``item_figures`` (hotline/data/kpi_policy.json):

* count: raised (督办, its ``raised_at``) / blown (吹哨, ``blown_at``) in the window;
* on-time: ``on_time`` = settled within its limit (a 督办 closed by its due; a whistle whose
  summoned units all reported in by the report-in limit), ``late`` = settled after it or still
  open past it at ``as_of``, ``pending`` = open and not yet due; 按时率 = on_time / (on_time + late);
* resolution: ``resolved`` / ``unresolved`` = closed (by ``as_of``) as resolved or not, ``open``;
  解决率 = resolved / (resolved + unresolved), the share settled as resolved.

The projection (:func:`updates`) keeps one document per whistle and per item from the
supervision events on ``hotline.cases.v1``; each event carries the whole snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.message import Message

from hotline import pb
from hotline.v1 import events_pb2
from hotline.v1 import supervision_pb2 as sv

WHISTLER_TYPES = {events_pb2.UNIT_TYPE_STREET: "street", events_pb2.UNIT_TYPE_DEPARTMENT: "department"}


@dataclass(frozen=True)
class WhistleFacts:
    whistle_id: str
    street_unit_id: str  # the unit that whistled: a street office (街道吹哨) or a department
    blown_at: datetime | None
    summoned: tuple[tuple[str, str], ...] = ()  # (department unit id, on_time | late | pending)
    closed_at: datetime | None = None
    resolved: bool = False
    unit_type: str = ""  # the whistling unit's: street | department ("" for a whistle of before #22)
    report_due: datetime | None = None  # the summoned units' report-in limit (报到时限)
    ticket_id: str = ""  # the ticket whistled on, if any (the KPI filters reach it through the case)

    def outcome(self, as_of: datetime | None) -> str:
        if self.closed_at is None or (as_of is not None and self.closed_at >= as_of):
            return "open"
        return "resolved" if self.resolved else "unresolved"

    def timeliness(self, as_of: datetime | None) -> str:
        """on_time: every summoned unit reported in within the limit; late: one reported in late or
        has not by a limit passed at ``as_of``; pending: still within the limit."""
        reports = {report for _, report in self.summoned}
        if "late" in reports:
            return "late"
        if "pending" in reports or not reports:
            passed = self.report_due is not None and as_of is not None and self.report_due < as_of
            return "late" if passed and reports else "pending"
        return "on_time"


@dataclass(frozen=True)
class SupervisionFacts:
    """One 督办 record: a level raised on a case (``<ticket>/L<level>/<n>``)."""

    record_id: str
    ticket_id: str
    level: int
    raised_at: datetime | None
    due: datetime | None = None  # the level's own limit (3/5/5/10 working days)
    closed_at: datetime | None = None
    resolved: bool = False
    on_time: bool = False  # closed by its due (the record says)

    def outcome(self, as_of: datetime | None) -> str:
        if self.closed_at is None or (as_of is not None and self.closed_at >= as_of):
            return "open"
        return "resolved" if self.resolved else "unresolved"

    def timeliness(self, as_of: datetime | None) -> str:
        if self.outcome(as_of) != "open":
            return "on_time" if self.on_time else "late"
        return "late" if self.due is not None and as_of is not None and self.due < as_of else "pending"


@dataclass(frozen=True)
class RecurringFacts:
    item_id: str
    month: str  # YYYY-MM of the list (屡办不成清单)
    street: str = ""
    category: str = ""
    address: str = ""
    resolved_at: datetime | None = None  # 销号

    def outcome(self, as_of: datetime | None) -> str:
        solved = self.resolved_at is not None and (as_of is None or self.resolved_at < as_of)
        return "solved" if solved else "open"

    def anchor(self, tz: ZoneInfo) -> datetime:
        return datetime(int(self.month[:4]), int(self.month[5:7]), 1, tzinfo=tz)


@dataclass
class ItemFigures:
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def share(self, bucket: str) -> Fraction | None:
        return Fraction(self.counts[bucket], self.n) if self.n else None

    def resolution(self) -> Fraction | None:
        """解决率 of whistles: resolved of those settled (closed), as :class:`ItemKpi` defines it."""
        settled = self.counts["resolved"] + self.counts["unresolved"]
        return Fraction(self.counts["resolved"], settled) if settled else None


@dataclass
class ItemKpi:
    """Count, on-time and resolution of one group of 督办 records or whistles (see the module doc)."""

    on_time: Counter[str] = field(default_factory=Counter)  # on_time | late | pending
    resolution: Counter[str] = field(default_factory=Counter)  # resolved | unresolved | open

    @property
    def count(self) -> int:
        return sum(self.resolution.values())

    def add(self, timeliness: str, outcome: str) -> None:
        self.on_time[timeliness] += 1
        self.resolution[outcome] += 1

    def on_time_rate(self) -> tuple[int, int]:
        """(numerator, denominator): settled within the limit of those settled or past it."""
        return self.on_time["on_time"], self.on_time["on_time"] + self.on_time["late"]

    def resolution_rate(self) -> tuple[int, int]:
        """(numerator, denominator): resolved of those settled."""
        return self.resolution["resolved"], self.resolution["resolved"] + self.resolution["unresolved"]

    @staticmethod
    def value(rate: tuple[int, int]) -> Fraction | None:
        return Fraction(*rate) if rate[1] else None


ItemKey = Callable[[Any], str]


def item_kpis(facts: Iterable[SupervisionFacts] | Iterable[WhistleFacts], anchor: Callable[[Any], datetime | None],
              key: ItemKey, groups: Iterable[str], start: datetime | None, end: datetime | None,
              as_of: datetime | None) -> dict[str, ItemKpi]:
    """"" (all) and each group's figures of the items whose anchor lies in the window; every group
    of ``groups`` is there, counted or not."""
    out = {"": ItemKpi(), **{g: ItemKpi() for g in groups}}
    for item in facts:
        if _inside(anchor(item), start, end, as_of):
            timeliness, outcome = item.timeliness(as_of), item.outcome(as_of)
            out[""].add(timeliness, outcome)
            out.setdefault(key(item), ItemKpi()).add(timeliness, outcome)
    return out


def supervision_kpis(records: Iterable[SupervisionFacts], start: datetime | None, end: datetime | None,
                     as_of: datetime | None, levels: Iterable[str] = ("1", "2", "3", "4")) -> dict[str, ItemKpi]:
    """督办 records raised in the window, all and per level ("1".."4")."""
    return item_kpis(records, lambda r: r.raised_at, lambda r: str(r.level), levels, start, end, as_of)


def whistle_kpis(whistles: Iterable[WhistleFacts], start: datetime | None, end: datetime | None,
                 as_of: datetime | None, unit_types: Iterable[str] = ("street", "department")) -> dict[str, ItemKpi]:
    """Whistles blown in the window, all and per whistling unit type (street / department)."""
    return item_kpis(whistles, lambda w: w.blown_at, lambda w: w.unit_type, unit_types, start, end, as_of)


def _inside(at: datetime | None, start: datetime | None, end: datetime | None, as_of: datetime | None) -> bool:
    if as_of is not None and (end is None or as_of < end):
        end = as_of
    return at is not None and (start is None or at >= start) and (end is None or at < end)


def whistles_by_street(whistles: Iterable[WhistleFacts], start: datetime | None, end: datetime | None,
                       as_of: datetime | None = None) -> tuple[ItemFigures, dict[str, ItemFigures]]:
    """All whistles blown in the window and per street office: resolved / unresolved / open."""
    total, groups = ItemFigures(), dict[str, ItemFigures]()
    for w in whistles:
        if _inside(w.blown_at, start, end, as_of):
            outcome = w.outcome(as_of)
            total.counts[outcome] += 1
            groups.setdefault(w.street_unit_id, ItemFigures()).counts[outcome] += 1
    return total, groups


def whistles_by_department(whistles: Iterable[WhistleFacts], start: datetime | None, end: datetime | None,
                           as_of: datetime | None = None) -> dict[str, tuple[ItemFigures, ItemFigures]]:
    """Per summoned department: its summonses (on_time / late / pending report-in, 报到) and the
    outcomes of the whistles it was summoned to (resolved / unresolved / open)."""
    out: dict[str, tuple[ItemFigures, ItemFigures]] = {}
    for w in whistles:
        if _inside(w.blown_at, start, end, as_of):
            for unit, report in w.summoned:
                summons, outcomes = out.setdefault(unit, (ItemFigures(), ItemFigures()))
                summons.counts[report] += 1
                outcomes.counts[w.outcome(as_of)] += 1
    return out


def recurring(items: Iterable[RecurringFacts], tz: ZoneInfo, start: datetime | None, end: datetime | None,
              as_of: datetime | None = None) -> tuple[ItemFigures, dict[str, ItemFigures]]:
    """屡办不成 items of the lists of the months in the window, all and per street: solved / open."""
    total, groups = ItemFigures(), dict[str, ItemFigures]()
    for item in items:
        if _inside(item.anchor(tz), start, end, None):
            outcome = item.outcome(as_of)
            total.counts[outcome] += 1
            groups.setdefault(item.street, ItemFigures()).counts[outcome] += 1
    return total, groups


# --- projection: supervision events -> item documents ---------------------------------------------

ITEM_EVENTS: tuple[Any, ...] = (sv.WhistleBlown, sv.WhistleReportedIn, sv.WhistleClosed,
                                          sv.RecurringListed, sv.RecurringResolved)
RECORD_EVENTS: tuple[Any, ...] = (sv.SupervisionRaised, sv.SupervisionClosed, sv.SupervisionUpdated)


def _t(stamp: Any) -> datetime | None:
    return pb.dt(stamp) if stamp.seconds or stamp.nanos else None


def _report(s: sv.Summons) -> str:
    if not (s.reported_at.seconds or s.reported_at.nanos):
        return "pending"
    return "on_time" if s.on_time else "late"


def item_updates(event: Message) -> list[tuple[str, str, dict[str, Any]]] | None:
    """(level, key, fields to $set) of one supervision event; None for another event type. A
    whistle's events carry its whole snapshot, so the latest event read sets the latest state."""
    if isinstance(event, sv.WhistleBlown | sv.WhistleReportedIn | sv.WhistleClosed):
        w = event.whistle
        fields: dict[str, Any] = {"street_unit_id": w.street_unit_id, "blown_at": _t(w.blown_at),
                                  "summoned": [[s.unit_id, _report(s)] for s in w.summoned]}
        if w.whistler_type in WHISTLER_TYPES:
            fields["unit_type"] = WHISTLER_TYPES[w.whistler_type]
        if dues := [d for s in w.summoned if (d := _t(s.due)) is not None]:
            fields["report_due"] = min(dues)
        if w.ticket_id:
            fields["ticket_id"] = w.ticket_id
        if w.state == sv.WHISTLE_STATE_CLOSED:
            fields |= {"closed_at": _t(w.closed_at) or _t(event.occurred_at), "resolved": w.resolved}
        return [("whistle", w.whistle_id, fields)]
    if isinstance(event, sv.RecurringListed):
        return [("recurring", i.item_id, {"month": i.month, "street": i.street, "category": i.category,
                                          "address": i.address}) for i in event.list.items]
    if isinstance(event, sv.RecurringResolved):
        i = event.item
        return [("recurring", i.item_id, {"month": i.month, "street": i.street, "category": i.category,
                                          "address": i.address,
                                          "resolved_at": _t(i.resolved_at) or _t(event.occurred_at)})]
    return None


def record_updates(event: Message) -> list[tuple[str, str, dict[str, Any]]]:
    """(level, key, fields to $set) of each 督办 record in a supervision event's snapshot (every
    SupervisionRaised / SupervisionClosed / SupervisionUpdated carries the case's records)."""
    if not isinstance(event, RECORD_EVENTS):
        return []
    s = event.supervision
    out = []
    for r in s.records:
        fields: dict[str, Any] = {"ticket_id": s.ticket_id or r.record_id.split("/L")[0], "level": r.level,
                                  "raised_at": _t(r.raised_at), "due": _t(r.due)}
        if r.state in (sv.SUPERVISION_STATE_RESOLVED, sv.SUPERVISION_STATE_UNRESOLVED):
            fields |= {"closed_at": _t(r.closed_at) or _t(event.occurred_at),
                       "resolved": r.state == sv.SUPERVISION_STATE_RESOLVED, "on_time": r.on_time}
        out.append(("supervision", r.record_id, fields))
    return out


def assemble_records(records: Mapping[str, Mapping[str, Any]]) -> list[SupervisionFacts]:
    return [SupervisionFacts(key, str(d.get("ticket_id", "")), int(d.get("level", 0)), d.get("raised_at"),
                             d.get("due"), d.get("closed_at"), bool(d.get("resolved", False)),
                             bool(d.get("on_time", False))) for key, d in sorted(records.items())]


def assemble(whistles: Mapping[str, Mapping[str, Any]],
             items: Mapping[str, Mapping[str, Any]]) -> tuple[list[WhistleFacts], list[RecurringFacts]]:
    return ([WhistleFacts(key, d.get("street_unit_id", ""), d.get("blown_at"),
                          tuple((str(u), str(r)) for u, r in d.get("summoned", [])), d.get("closed_at"),
                          bool(d.get("resolved", False)), str(d.get("unit_type", "")), d.get("report_due"),
                          str(d.get("ticket_id", ""))) for key, d in sorted(whistles.items())],
            [RecurringFacts(key, d.get("month", ""), d.get("street", ""), d.get("category", ""), d.get("address", ""),
                            d.get("resolved_at")) for key, d in sorted(items.items()) if d.get("month")])
