"""The KPI engine's supervision items: whistles (吹哨报到) and the 屡办不成 list's items, as facts
beside the case facts of :mod:`services.metrics.kpi`. Pure: no I/O, no clock.

Definitions (docs/kpis.md, "Whistles and 屡办不成"):

* a **whistle** counts in the window of its ``blown_at``; outcome ``resolved`` (closed as resolved
  by ``as_of``), ``unresolved`` (closed, not resolved) or ``open``; 解决率 = resolved / whistles;
* a **summons** (one per whistle and summoned department) counts with its whistle; outcome
  ``on_time`` (reported in by its limit), ``late`` or ``pending``;
* a **屡办不成 item** counts in the window of its list's month (the month's first instant);
  outcome ``solved`` (resolved by ``as_of``) or ``open``; 销号率 = solved / items.

The projection (:func:`updates`) keeps one document per whistle and per item from the
supervision events on ``hotline.cases.v1``; each event carries the whole snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.message import Message

from hotline import pb
from hotline.v1 import supervision_pb2 as sv


@dataclass(frozen=True)
class WhistleFacts:
    whistle_id: str
    street_unit_id: str  # the street office that whistled (街道吹哨)
    blown_at: datetime | None
    summoned: tuple[tuple[str, str], ...] = ()  # (department unit id, on_time | late | pending)
    closed_at: datetime | None = None
    resolved: bool = False

    def outcome(self, as_of: datetime | None) -> str:
        if self.closed_at is None or (as_of is not None and self.closed_at >= as_of):
            return "open"
        return "resolved" if self.resolved else "unresolved"


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


def assemble(whistles: Mapping[str, Mapping[str, Any]],
             items: Mapping[str, Mapping[str, Any]]) -> tuple[list[WhistleFacts], list[RecurringFacts]]:
    return ([WhistleFacts(key, d.get("street_unit_id", ""), d.get("blown_at"),
                          tuple((str(u), str(r)) for u, r in d.get("summoned", [])), d.get("closed_at"),
                          bool(d.get("resolved", False))) for key, d in sorted(whistles.items())],
            [RecurringFacts(key, d.get("month", ""), d.get("street", ""), d.get("category", ""), d.get("address", ""),
                            d.get("resolved_at")) for key, d in sorted(items.items()) if d.get("month")])
