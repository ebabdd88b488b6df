"""Simulated case lifecycles as KPI facts: a realistic month (or any span) for tests, reports
and benchmarks. Deterministic for a seed.

Units, streets, categories and list items come from routing's data files (the unit directory
and the first-responsible list); shares follow the district report (投诉 72.72%, 求助 25.61%;
streets handle most tickets). Each unit has its own quality, so rankings spread out. Some
dispatches are returned and re-dispatched, some replies are sent back and redone, some cases
are still open at ``as_of``, evaluations land days after closure (often in the next period).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from hotline.settings import REPO_ROOT
from services.metrics.kpi import CaseFacts, Period

ROUTING_DATA = REPO_ROOT / "services" / "routing" / "data"
TYPES = (("complaint", 72.72), ("help", 25.61), ("consultation", 0.9), ("suggestion", 0.5), ("praise", 0.27))
LANES = (("enterprise", 0.03), ("deputy", 0.01), ("tourist", 0.02))
UNIT_TYPE_KEYS = {"UNIT_TYPE_STREET": "street", "UNIT_TYPE_DEPARTMENT": "department", "UNIT_TYPE_SOE": "soe",
                  "UNIT_TYPE_MANAGEMENT_COMMITTEE": "management_committee", "UNIT_TYPE_COMMUNITY": "community"}
# hotspots of the report weigh more: 消费维权, 物业管理, 停车管理
CATEGORY_WEIGHT = {"消费维权": 3.0, "物业管理": 2.6, "停车管理": 2.0, "城市管理": 1.6}


def _weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([p[0] for p in pairs], [p[1] for p in pairs])[0]


def lifecycles(period: Period, per_day: int = 60, seed: int = 0, as_of: datetime | None = None,
               lead_days: int = 10) -> Iterator[CaseFacts]:
    """Facts of tickets received from ``lead_days`` before the period to its end, as known at
    ``as_of`` (default: the period's end + 20 days, so most cases are evaluated)."""
    rng = random.Random(seed)
    directory = json.loads((ROUTING_DATA / "directory.json").read_text("utf-8"))
    items = json.loads((ROUTING_DATA / "responsibilities.json").read_text("utf-8"))["responsibilities"]
    units = {u["unit_id"]: (u["name"], UNIT_TYPE_KEYS[u["unit_type"]]) for u in directory["units"]}
    streets = [uid for uid, (_, kind) in units.items() if kind == "street"]
    others = [uid for uid in units if uid not in streets]
    quality = {uid: rng.uniform(0.75, 0.99) for uid in units}
    places: dict[str, list[str]] = {}
    for place, uid in directory["gazetteer"].items():
        if uid in streets and place != units[uid][0]:
            places.setdefault(uid, []).append(place)
    addresses = {s: [f"{rng.choice(places.get(s, [units[s][0]]))}{n}号" for n in rng.sample(range(1, 400), 60)]
                 for s in streets}
    as_of = as_of or period.end + timedelta(days=20)
    seen: set[tuple[str, str]] = set()
    start = period.start - timedelta(days=lead_days)
    seconds = int((period.end - start).total_seconds())
    count = per_day * seconds // 86400
    for i in sorted(rng.randrange(seconds) for _ in range(count)):
        received = (start + timedelta(seconds=i)).astimezone(period.start.tzinfo)
        item = rng.choices(items, [CATEGORY_WEIGHT.get(x["category"], 1.0) for x in items])[0]
        street = rng.choice(streets)
        address = rng.choice(addresses[street])
        primary = item["primary"]
        if primary == "@street" or (units[primary][1] == "department" and rng.random() < 0.55):
            primary = street  # 属地管理: streets handle most tickets (57% in the district report)
        lane = next((lane for lane, share in LANES if rng.random() < share), "normal")
        ticket = CaseFacts(
            ticket_id=f"T{seed}-{received:%Y%m%d%H%M%S}-{len(seen):05d}",
            ticket_type=_weighted(rng, TYPES), category=item["category"], list_item=item["rule_id"],
            street=units[street][0], address=address, lane=lane, repeat=(item["category"], address) in seen,
            received_at=received,
        )
        seen.add((item["category"], address))
        yield from _dispatches(rng, ticket, primary, units, quality, others, as_of)


def _dispatches(rng: random.Random, ticket: CaseFacts, primary: str, units: dict[str, tuple[str, str]],
                quality: dict[str, float], others: list[str], as_of: datetime) -> Iterator[CaseFacts]:
    assert ticket.received_at is not None
    at = ticket.received_at + timedelta(minutes=rng.randint(1, 30))
    urgent = rng.random() < 0.03
    unit = primary
    for dispatch_round in (1, 2, 3):
        if at >= as_of:
            return
        q = quality[unit]
        sign_off_due = at + timedelta(hours=2 if urgent else 24)
        late = rng.random() > q + 0.05
        signed = at + (sign_off_due - at) * (rng.uniform(1.05, 2.0) if late else rng.uniform(0.05, 0.9))
        contact_due = sign_off_due + timedelta(hours=24)
        contacted = signed + timedelta(hours=rng.uniform(30, 60) if rng.random() > q + 0.03 else rng.uniform(0.5, 20))
        level = 0
        for threshold, lvl in ((0.002, 4), (0.01, 3), (0.03, 2), (0.07, 1)):
            if rng.random() < threshold * (2 - q):
                level = lvl
                break
        row = replace(ticket, dispatch_round=dispatch_round, unit_id=unit, unit_name=units[unit][0],
                      unit_type=units[unit][1], supervision_level=level, assigned_at=at, sign_off_due=sign_off_due,
                      signed_off_at=signed if signed <= as_of else None, first_contact_due=contact_due,
                      first_contact_at=contacted if contacted <= as_of else None)
        if dispatch_round < 3 and rng.random() < 0.04:  # 退单: wrong unit, re-dispatched
            returned_at = signed + timedelta(hours=rng.uniform(2, 40))
            if returned_at <= as_of:
                yield replace(row, returned=True, first_contact_at=None)
                at, unit = returned_at + timedelta(minutes=rng.randint(5, 120)), rng.choice(others)
                continue
        if row.signed_off_at is None:  # not signed off yet
            yield row
        else:
            yield from _handlings(rng, row, q, as_of)
        return


def _handlings(rng: random.Random, row: CaseFacts, q: float, as_of: datetime) -> Iterator[CaseFacts]:
    assert row.assigned_at is not None and row.signed_off_at is not None
    start = row.signed_off_at
    for redo_round in (0, 1, 2):
        reply_due = start + timedelta(days=7 if redo_round == 0 else 3)
        on_time = rng.random() < q + 0.04
        replied = start + (reply_due - start) * (rng.uniform(0.1, 0.95) if on_time else rng.uniform(1.02, 1.6))
        current = replace(row, redo_round=redo_round, reply_due=reply_due, close_due=reply_due)
        if replied > as_of:
            yield current
            return
        result = rng.choices(["resolved", "partly", "not_resolvable"], [q, (1 - q) * 0.6, (1 - q) * 0.4])[0]
        current = replace(current, replied_at=replied, reply_result=result)
        if redo_round < 2 and rng.random() < 0.06 * (2 - q):  # review failed: 重办
            yield replace(current, redone=True)
            start = replied + timedelta(hours=rng.uniform(1, 24))
            continue
        closed = replied + timedelta(hours=rng.uniform(2, 30))
        if closed > as_of:
            yield current
            return
        current = replace(current, closed_at=closed)
        evaluated = closed + timedelta(hours=rng.uniform(12, 120))
        if evaluated > as_of:
            yield current
            return
        good = q if result == "resolved" else q * 0.6
        resolution = rng.choices(["resolved", "partly", "unresolved", "not_reached"],
                                 [good, (1 - good) * 0.4, (1 - good) * 0.5, 0.05])[0]
        satisfaction = rng.choices(["satisfied", "basic", "unsatisfied", "not_evaluated"],
                                   [good + 0.05, (1 - good) * 0.5, (1 - good) * 0.5, 0.04])[0]
        if resolution == "not_reached":
            satisfaction = "not_evaluated"
        yield replace(current, evaluated_at=evaluated, resolution=resolution, satisfaction=satisfaction)
        return
