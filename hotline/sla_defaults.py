"""One default limit of the district's SLA policy document (hotline/data/sla_policy.json, setting
``HOTLINE_SLA__POLICY_FILE``) as clock time, for a service that needs one figure of it without
supervision's policy model: routing's 派单时限 (services/routing/desk.py). Supervision parses and checks
the whole document (services/supervision/cases/sla.py); the figure stays defined once, in the document."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from hotline.settings import SlaSettings

CLOCK_TIME = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1)}  # units that are clock time


def load(policy_file: Path | None = None) -> Mapping[str, Any]:
    """The policy document (default: the setting's file, the shipped policy)."""
    doc = json.loads((policy_file or SlaSettings().policy_file).read_text("utf-8"))
    if not isinstance(doc, Mapping):
        raise ValueError("an SLA policy is a JSON object")
    return doc


def clock_time(doc: Mapping[str, Any], clock: str) -> timedelta | None:
    """The default limit of ``clock`` (e.g. ``dispatch``) when it is clock time (minutes or hours);
    None when the policy gives it in days or working days (a calendar limit, not a duration)."""
    period = doc["defaults"][clock]
    if not isinstance(period, Mapping) or len(period) != 1:
        raise ValueError(f"defaults.{clock}: a period is one of {{minutes|hours|days|working_days: n}}")
    (unit, amount), = period.items()
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        raise ValueError(f"defaults.{clock}: {unit} must be a positive integer")
    step = CLOCK_TIME.get(unit)
    return amount * step if step is not None else None
