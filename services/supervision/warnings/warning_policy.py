"""The early-warning rules (预警规则) as a versioned policy (hotline/policies.py): the schema a new
version must meet, with the checks across fields, and how the running detectors get the newest.

The shipped file (data/warning_rules.json) is version 1; the office or an admin saves the next
ones at ``PUT /policies/warning_rules`` (the workbench's editor, /office/policies/warning_rules).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from hotline.mongo import Doc
from hotline.policies import LivePolicy, Num, PolicyInvalid, PolicyStore, Schema, Table, Text, Words, check
from services.supervision.warnings import warnings as w

NAME = "warning_rules"

SCHEMA: Schema = {
    "version": Text(),
    "description": Text(),
    "burst": {  # 集中爆发
        "window_hours": Num(1, 168),
        "baseline_days": Num(1, 365, integer=True),
        "warmup_days": Num(0, 365, integer=True),
        "baseline_floor_per_day": Num(0, 1000),
        "min_count": Num(2, 10000, integer=True),
        "p_value": Num(1e-9, 0.5),
        "red_ratio": Num(1, 1000),
    },
    "repeat": {  # 重复诉求
        "window_days": Num(1, 365, integer=True),
        "min_count": Num(2, 1000, integer=True),
        "orange_count": Num(2, 1000, integer=True),
    },
    "mass_incident": {  # 可能的群体性事件
        "window_hours": Num(1, 168),
        "min_callers": Num(2, 10000, integer=True),
        "red_callers": Num(2, 10000, integer=True),
        "text_similarity": Num(0.05, 1),
    },
    "keywords": Table(Words(), keys=w.LEVELS),  # 舆情关键词 by level
    "address": {
        "placeholders": Words(),
        "unit_forms": Table(Text(required=True)),
    },
}


def validate(doc: Any) -> None:
    """Raise PolicyInvalid naming the field at fault (the schema, then the checks across fields)."""
    check(doc, SCHEMA)
    burst, repeat, mass = doc["burst"], doc["repeat"], doc["mass_incident"]
    if burst["warmup_days"] > burst["baseline_days"]:
        raise PolicyInvalid("burst.warmup_days", f"must not exceed burst.baseline_days ({burst['baseline_days']})")
    if repeat["orange_count"] < repeat["min_count"]:
        raise PolicyInvalid("repeat.orange_count", f"must be at least repeat.min_count ({repeat['min_count']})")
    if mass["red_callers"] < mass["min_callers"]:
        raise PolicyInvalid("mass_incident.red_callers",
                            f"must be at least mass_incident.min_callers ({mass['min_callers']})")
    seen: dict[str, str] = {}
    for level, words in doc["keywords"].items():
        for word in words:
            if word in seen:
                raise PolicyInvalid(f"keywords.{level}", f"{word!r} is listed under {seen[word]} already")
            seen[word] = level


def store(db: AsyncDatabase[Doc]) -> PolicyStore:
    return PolicyStore(db, NAME)


def live(policies: PolicyStore, refresh_seconds: float = 0.0) -> LivePolicy[w.Rules]:
    """The rules the detectors use: the newest stored version, asked for at most every
    ``refresh_seconds`` (a save through this replica's routes is taken at once; issue 21: asked per
    batch, it was a quarter of a store read per ticket)."""
    return LivePolicy(policies, w.Rules.of, refresh_seconds)
