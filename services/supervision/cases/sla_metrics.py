"""SLA and supervision figures for Prometheus: open cases overdue now and due within 24 h by the
primary unit's type and category, the backlog by age band, open cases by supervision level (督办),
and the city evaluations (回访) still waiting for their case (one whose ticket never reached the
district would wait for good: the oldest one's age is alerted on).

Labels are bounded: unit types are an enum, categories the first-level list (at most
``MAX_CATEGORIES``, the rest counted as ``other``), age bands and levels fixed sets; never a
ticket id. The pure :func:`figures` counts them over the open cases' documents; supervision keeps
them incrementally (gauge_ledger.py: every case write of the process updates a ledger, a refresh
every ``sla.gauge_seconds`` costs O(changes), and the ledger is reconciled from one pass over the
open cases at start and every ``sla.gauge_reconcile_seconds``).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Gauge

from hotline.logging import get_logger

log = get_logger(__name__)

OVERDUE = Gauge("hotline_cases_overdue", "Open cases past the deadline of the clock now running (sign-off or reply), "
                "by the primary unit's type and category.", ["unit_type", "category"])
DUE_SOON = Gauge("hotline_cases_due_within_24h", "Open cases whose running deadline falls within the next 24 hours, "
                 "by the primary unit's type and category.", ["unit_type", "category"])
BACKLOG = Gauge("hotline_case_backlog", "Open cases by age since the city received the ticket (age band).", ["age"])
SUPERVISED = Gauge("hotline_cases_supervised", "Open cases under supervision (督办), by level (1 system ... 4 leader).",
                   ["level"])
WAITING = Gauge("hotline_evaluations_waiting", "City evaluations (回访) kept because their case does not exist yet.")
WAITING_OLDEST = Gauge("hotline_evaluation_wait_oldest_seconds",
                       "Age of the oldest city evaluation waiting for its case (0 when none waits).")

# (label, upper bound) of the backlog's age bands, youngest first; the last is open-ended
AGE_BANDS: tuple[tuple[str, timedelta | None], ...] = (
    ("lt_1d", timedelta(days=1)), ("1d_3d", timedelta(days=3)), ("3d_7d", timedelta(days=7)),
    ("7d_15d", timedelta(days=15)), ("15d_30d", timedelta(days=30)), ("ge_30d", None),
)
LEVELS = ("1", "2", "3", "4")
MAX_CATEGORIES = 40
OTHER = "other"
OPEN = {"state": {"$ne": "CASE_STATE_ARCHIVED"}}
FIELDS = {"_id": 0, "primary_unit.unit_type": 1, "category": 1, "next_deadline": 1, "received_at": 1,
          "supervision_level": 1}


@dataclass
class Figures:
    overdue: Tally[tuple[str, str]] = field(default_factory=Tally)
    due_soon: Tally[tuple[str, str]] = field(default_factory=Tally)
    backlog: dict[str, int] = field(default_factory=lambda: dict.fromkeys((b for b, _ in AGE_BANDS), 0))
    supervised: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    waiting: int = 0
    waiting_oldest_seconds: float = 0.0


def unit_type(doc: Mapping[str, Any]) -> str:
    name = str((doc.get("primary_unit") or {}).get("unit_type") or "UNIT_TYPE_UNSPECIFIED")
    return name.removeprefix("UNIT_TYPE_").lower()


def age_band(age: timedelta) -> str:
    for label, bound in AGE_BANDS:
        if bound is None or age < bound:
            return label
    raise AssertionError("the last band is open-ended")


def kept_categories(by_category: Mapping[str, int]) -> set[str]:
    """The ``MAX_CATEGORIES`` categories with the most open cases (ties by name: the same set
    whichever order the cases come in); the others are counted as ``other``."""
    ranked = sorted((c for c, n in by_category.items() if n > 0), key=lambda c: (-by_category[c], c))
    return set(ranked[:MAX_CATEGORIES])


def figures(cases: Iterable[Mapping[str, Any]], now: datetime, horizon: timedelta = timedelta(hours=24),
            waiting_since: Iterable[datetime] = ()) -> Figures:
    """Count open cases (documents with the ``FIELDS`` above) and the evaluations waiting for
    their case (when the city evaluated each) as of ``now`` (pure)."""
    docs = list(cases)
    by_category = Tally(str(d.get("category") or "") for d in docs)
    kept = kept_categories(by_category)
    out = Figures()
    for d in docs:
        category = str(d.get("category") or "")
        key = (unit_type(d), category if category in kept else OTHER)
        due: datetime | None = d.get("next_deadline")
        if due is not None:
            if due <= now:
                out.overdue[key] += 1
            elif due <= now + horizon:
                out.due_soon[key] += 1
        received: datetime | None = d.get("received_at")
        if received is not None:
            out.backlog[age_band(max(timedelta(0), now - received))] += 1
        level = str(int(d.get("supervision_level") or 0))
        if level in out.supervised:
            out.supervised[level] += 1
    since = list(waiting_since)
    out.waiting = len(since)
    out.waiting_oldest_seconds = max(((now - at).total_seconds() for at in since), default=0.0)
    return out


def publish(f: Figures) -> None:
    """Replace the gauges' series with these figures (a pair that emptied disappears)."""
    for gauge, tally in ((OVERDUE, f.overdue), (DUE_SOON, f.due_soon)):
        gauge.clear()
        for (kind, category), n in tally.items():
            gauge.labels(kind, category).set(n)
    for band, n in f.backlog.items():
        BACKLOG.labels(band).set(n)
    for level, n in f.supervised.items():
        SUPERVISED.labels(level).set(n)
    WAITING.set(f.waiting)
    WAITING_OLDEST.set(max(0.0, f.waiting_oldest_seconds))
