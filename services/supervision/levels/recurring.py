"""屡办不成 (problems complained about repeatedly and still unresolved): the monthly list, pure.

A problem is one normalised address and category (the early warnings' ticket facts). It is on
the list of a month when, in ``lookback_days`` up to the month's end, it was complained about at
least ``min_tickets`` times (once at least in that month) and its latest case is not closed
satisfied or merged (data/recurring_rules.json, versioned). Generating a month's list again
adds the problems found since and keeps the items already tracked; the office records how each
was solved (:func:`resolve`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hotline import pb
from hotline.auth import Principal
from hotline.commands import Decision, Illegal, Invalid, NotFound
from hotline.v1 import case_pb2, events_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.levels.escalation import actor_of, stamp
from services.supervision.warnings.warnings import Fact

RULES_FILE = Path(__file__).parent.parent / "data" / "recurring_rules.json"
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
SOLVED = {case_pb2.CLOSURE_SATISFIED, case_pb2.CLOSURE_MERGED}


@dataclass(frozen=True)
class Rules:
    version: str
    min_tickets: int
    lookback_days: int

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> Rules:
        data = json.loads(path.read_text("utf-8"))
        rules = cls(str(data["version"]), int(data["min_tickets"]), int(data["lookback_days"]))
        if rules.min_tickets < 2 or rules.lookback_days < 28:
            raise ValueError(f"{path}: min_tickets >= 2 and lookback_days >= 28 are required")
        return rules


def month_span(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's start and end (exclusive) in the district's time zone."""
    m = MONTH.match(month)
    if m is None:
        raise Invalid(f"month must be YYYY-MM, not {month!r}")
    year, mon = int(m[1]), int(m[2])
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return start, end


def unresolved(case: events_pb2.Case | None) -> bool:
    return case is None or not (case.state == events_pb2.CASE_STATE_ARCHIVED and case.closure in SOLVED)


def find(month: str, facts: Sequence[Fact], cases: Mapping[str, events_pb2.Case], rules: Rules,
         tz: ZoneInfo) -> list[sv.RecurringItem]:
    """The month's recurring unresolved problems, from the ticket facts of the lookback window
    and their cases."""
    start, end = month_span(month, tz)
    groups: dict[tuple[str, str], list[Fact]] = defaultdict(list)
    for f in facts:
        if f.address and end - timedelta(days=rules.lookback_days) <= f.at < end:
            groups[(f.address, f.category)].append(f)
    items = []
    for (address, category), group in sorted(groups.items()):
        group.sort(key=lambda f: (f.at, f.ticket_id))
        latest = group[-1]
        if len(group) < rules.min_tickets or latest.at < start or not unresolved(cases.get(latest.ticket_id)):
            continue
        digest = hashlib.sha256(f"{address}|{category}".encode()).hexdigest()[:12]
        poor = sum(1 for f in group if (c := cases.get(f.ticket_id)) is not None and
                   c.evaluation.evaluation_id and (c.evaluation.resolution == case_pb2.RESOLUTION_UNRESOLVED or
                                                   c.evaluation.satisfaction == case_pb2.SATISFACTION_UNSATISFIED))
        items.append(sv.RecurringItem(
            item_id=f"{month}/{digest}", month=month, address=address, category=category, street=latest.street,
            ticket_ids=[f.ticket_id for f in group], state=sv.RECURRING_STATE_OPEN, first_at=pb.ts(group[0].at),
            last_at=pb.ts(latest.at), rules_version=rules.version,
            explanation=f"{rules.lookback_days}天内同一地点同类诉求{len(group)}件，其中回访未解决或不满意{poor}件，"
                        f"最近一件仍未办结满意"))
    return items


def generate(existing: sv.RecurringList | None, month: str, found: Sequence[sv.RecurringItem],
             now: datetime) -> Decision[sv.RecurringList]:
    """The month's list with the problems found added; items already on it keep their state
    (their tickets grow)."""
    out = sv.RecurringList(month=month)
    if existing is not None:
        out.CopyFrom(existing)
    known = {i.item_id: i for i in out.items}
    added = 0
    for item in found:
        if (current := known.get(item.item_id)) is not None:
            if current.state == sv.RECURRING_STATE_OPEN:
                current.ClearField("ticket_ids")
                current.ticket_ids.extend(item.ticket_ids)
                current.last_at.CopyFrom(item.last_at)
                current.explanation = item.explanation
            continue
        out.items.append(item)
        added += 1
    snapshot = sv.RecurringList()
    snapshot.CopyFrom(out)
    return Decision(out, events=[sv.RecurringListed(list=snapshot, occurred_at=stamp(now))],
                    audit={"detail": f"{month}: {added} added, {len(out.items)} on the list"})


def resolve(existing: sv.RecurringList | None, r: sv.ResolveRecurringItemRequest, actor: Principal,
            now: datetime) -> Decision[sv.RecurringList]:
    item = next((i for i in existing.items if i.item_id == r.item_id), None) if existing else None
    if existing is None or item is None:
        raise NotFound("recurring item", r.item_id)
    if item.state == sv.RECURRING_STATE_RESOLVED:
        raise Illegal(f"{r.item_id} is already resolved")
    outcome = r.outcome.strip()
    if not outcome or len(outcome) > 2000:
        raise Invalid("an outcome of 1-2000 characters is required")
    out = sv.RecurringList()
    out.CopyFrom(existing)
    changed = next(i for i in out.items if i.item_id == r.item_id)
    changed.state = sv.RECURRING_STATE_RESOLVED
    changed.outcome = outcome
    changed.resolved_at.CopyFrom(stamp(now))
    changed.resolved_by.CopyFrom(actor_of(actor))
    answer = sv.RecurringItem()
    answer.CopyFrom(changed)
    return Decision(out, events=[sv.RecurringResolved(item=answer, occurred_at=stamp(now))], answer=answer,
                    audit={"detail": f"{r.item_id} resolved"})
