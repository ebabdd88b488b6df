"""The district's rates (考核指标) as one definition shared by metrics (the KPI engine,
services/metrics/kpi.py) and deputy liaison (a deputy's satisfaction rate): the outcome counts of a
group (:class:`Figures`), the rates computed from them (:class:`Rate`, exact fractions) and the
versioned KPI policy (:class:`KpiPolicy`, weights k and m, score weights and thresholds, file
``hotline/data/kpi_policy.json``, setting ``HOTLINE_METRICS__KPI_POLICY``). Pure: no I/O but
:meth:`KpiPolicy.load`. Definitions, anchors and exclusions: docs/kpis.md."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

POLICY_FILE = Path(__file__).resolve().parent / "data" / "kpi_policy.json"
# the defaults of the KPI policy's item_figures (督办 records by level, whistles by whistling unit type)
ITEM_FIGURES: dict[str, dict[str, Any]] = {
    "supervision": {"by": "level", "groups": {"1": "系统督办", "2": "OA督办", "3": "作风监督员督办", "4": "领导督办"},
                    "on_time_title": "督办按时办结率", "resolution_title": "督办解决率"},
    "whistle": {"by": "unit_type", "groups": {"street": "街道吹哨", "department": "部门吹哨"},
                "on_time_title": "按时报到率", "resolution_title": "吹哨解决率"},
}


@dataclass(frozen=True)
class KpiPolicy:
    version: str
    partly_resolved_weight: Fraction  # k in 解决率
    basically_satisfied_weight: Fraction  # m in 满意率
    score_weights: Mapping[str, int]  # rate -> weight in the assessment score (考核得分)
    min_dispatches: int = 5  # a unit is ranked with at least this many dispatches in the period
    red_list: int = 5
    black_list: int = 5
    hotspot_top: int = 10
    trend_periods: int = 12
    places_top: int = 10
    repeat_min_tickets: int = 3
    repeat_top: int = 10
    # 督办 / 吹哨 figures (issue #22): kind (supervision | whistle) -> by, groups {key: name}, titles
    item_figures: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: dict(ITEM_FIGURES))

    @classmethod
    def load(cls, path: Path | None = None) -> KpiPolicy:
        """The policy file (None: the shipped one, :data:`POLICY_FILE`)."""
        return cls.from_dict(json.loads((path or POLICY_FILE).read_text("utf-8")))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KpiPolicy:
        ranking, hot, places, rep = (d.get(k, {}) for k in ("ranking", "hotspots", "places", "repeated_problems"))
        return cls(
            version=str(d.get("version", "")),
            partly_resolved_weight=Fraction(str(d["partly_resolved_weight"])),
            basically_satisfied_weight=Fraction(str(d["basically_satisfied_weight"])),
            score_weights={str(k): int(v) for k, v in d["score_weights"].items()},
            min_dispatches=int(ranking.get("min_dispatches", 5)),
            red_list=int(ranking.get("red_list", 5)),
            black_list=int(ranking.get("black_list", 5)),
            hotspot_top=int(hot.get("top", 10)),
            trend_periods=int(hot.get("trend_periods", 12)),
            places_top=int(places.get("top", 10)),
            repeat_min_tickets=int(rep.get("min_tickets", 3)),
            repeat_top=int(rep.get("top", 10)),
            item_figures={kind: {**ITEM_FIGURES[kind], **d.get("item_figures", {}).get(kind, {})}
                          for kind in ITEM_FIGURES},
        )

    def item_groups(self, kind: str) -> dict[str, str]:
        """The groups a kind of item figures always shows (key -> Chinese name)."""
        return {str(k): str(v) for k, v in self.item_figures[kind]["groups"].items()}

    def item_title(self, kind: str, rate: str) -> str:
        return str(self.item_figures[kind][f"{rate}_title"])


# rate -> (measure, Chinese name)
RATES = {
    "response": "响应率",
    "resolution": "解决率",
    "satisfaction": "满意率",
    "on_time_close": "按时办结率",
    "return": "回退率",
    "redo": "重办率",
    "direct_answer": "直接答复率",
}


@dataclass(frozen=True)
class Rate:
    numerator: Fraction
    denominator: int

    @property
    def value(self) -> Fraction | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass
class Figures:
    """Counts of one group: measure -> outcome bucket -> rows."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, measure: str, bucket: str) -> None:
        self.counts.setdefault(measure, Counter())[bucket] += 1

    def n(self, measure: str, bucket: str | None = None) -> int:
        c = self.counts.get(measure, Counter())
        return sum(c.values()) if bucket is None else c[bucket]

    @property
    def tickets(self) -> int:
        return self.n("tickets")

    @property
    def dispatches(self) -> int:
        return self.n("dispatches")

    def rate(self, name: str, policy: KpiPolicy) -> Rate:
        n = self.n
        if name == "resolution":
            return Rate(n(name, "resolved") + policy.partly_resolved_weight * n(name, "partly"),
                        n(name, "resolved") + n(name, "partly") + n(name, "unresolved"))
        if name == "satisfaction":
            return Rate(n(name, "satisfied") + policy.basically_satisfied_weight * n(name, "basic"),
                        n(name, "satisfied") + n(name, "basic") + n(name, "unsatisfied"))
        hit = {"response": "on_time", "on_time_close": "on_time", "return": "returned", "redo": "redone",
               "direct_answer": "direct"}[name]
        return Rate(Fraction(n(name, hit)), n(name))

    def rates(self, policy: KpiPolicy) -> dict[str, Rate]:
        return {name: self.rate(name, policy) for name in RATES}

    def score(self, policy: KpiPolicy) -> Fraction | None:
        """考核得分 out of 100: the weighted rates; a rate without denominator drops out and the
        others' weights are scaled up to 100."""
        total = Fraction(0)
        weights = 0
        for name, weight in policy.score_weights.items():
            value = self.rate(name, policy).value
            if value is not None and weight:
                total += weight * value
                weights += weight
        return 100 * total / weights if weights else None


# --- dimensions and periods ----------------------------------------------------------------
