"""Simulated case lifecycles as KPI facts: a realistic month (or any span) for tests, reports
and benchmarks. Deterministic for a seed.

Units, streets, categories and list items come from routing's data files (the unit directory
and the first-responsible list); shares follow the district report (投诉 72.72%, 求助 25.61%;
streets handle most tickets). Each unit has its own quality, so rankings spread out. Some
dispatches are returned and re-dispatched, some replies are sent back and redone, some cases
are still open at ``as_of``, evaluations land days after closure (often in the next period).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from hotline import pb
from hotline.directory import DIRECTORY_FILE
from hotline.envelope import Event
from hotline.settings import REPO_ROOT
from hotline.v1 import case_pb2, events_pb2, knowledge_pb2, lifecycle_pb2, ticket_pb2
from services.metrics.kpi import CaseFacts, Period
from services.metrics.projection import REPLY_RESULTS, RESOLUTIONS, SATISFACTIONS, TICKET_TYPES, UNIT_TYPES

ROUTING_DATA = REPO_ROOT / "services" / "routing" / "data"
TYPES = (("complaint", 72.72), ("help", 25.61), ("consultation", 0.9), ("suggestion", 0.5), ("praise", 0.27))
LANES = (("enterprise", 0.03), ("deputy", 0.01), ("tourist", 0.02))
LANE_TAGS = {"人大代表": "deputy", "涉企": "enterprise", "旅游": "tourist"}  # tags the simulated tickets carry
UNIT_TYPE_KEYS = {"UNIT_TYPE_STREET": "street", "UNIT_TYPE_DEPARTMENT": "department", "UNIT_TYPE_SOE": "soe",
                  "UNIT_TYPE_MANAGEMENT_COMMITTEE": "management_committee", "UNIT_TYPE_COMMUNITY": "community"}
# hotspots of the report weigh more: 消费维权, 物业管理, 停车管理
REPEAT_WINDOW = timedelta(days=30)  # the same problem at the same address within this is a repeat
CATEGORY_WEIGHT = {"消费维权": 3.0, "物业管理": 2.6, "停车管理": 2.0, "城市管理": 1.6}


def _weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([p[0] for p in pairs], [p[1] for p in pairs])[0]


def lifecycles(period: Period, per_day: int = 60, seed: int = 0, as_of: datetime | None = None,
               lead_days: int = 10) -> Iterator[CaseFacts]:
    """Facts of tickets received from ``lead_days`` before the period to its end, as known at
    ``as_of`` (default: the period's end + 20 days, so most cases are evaluated)."""
    rng = random.Random(seed)
    directory = json.loads(DIRECTORY_FILE.read_text("utf-8"))
    items = json.loads((ROUTING_DATA / "responsibilities.json").read_text("utf-8"))["responsibilities"]
    units = {u["unit_id"]: (u["name"], UNIT_TYPE_KEYS[u["unit_type"]]) for u in directory["units"]}
    streets = [uid for uid, (_, kind) in units.items() if kind == "street"]
    others = [uid for uid in units if uid not in streets]
    quality = {uid: rng.uniform(0.75, 0.99) for uid in units}
    places: dict[str, list[str]] = {}
    for place in directory["gazetteer"]:  # {"name", "kind", "street", "community"?, "aliases"?}
        if place["street"] in streets:
            places.setdefault(place["street"], []).append(place["name"])
    addresses = {s: [f"{rng.choice(places.get(s, [units[s][0]]))}{n}号" for n in rng.sample(range(1, 400), 60)]
                 for s in streets}
    as_of = as_of or period.end + timedelta(days=20)
    seen: dict[tuple[str, str], datetime] = {}  # (category, address) -> last received
    start = period.start - timedelta(days=lead_days)
    seconds = int((period.end - start).total_seconds())
    count = per_day * seconds // 86400
    for n, i in enumerate(sorted(rng.randrange(seconds) for _ in range(count))):
        received = (start + timedelta(seconds=i)).astimezone(period.start.tzinfo)
        item = rng.choices(items, [CATEGORY_WEIGHT.get(x["category"], 1.0) for x in items])[0]
        street = rng.choice(streets)
        address = rng.choice(addresses[street])
        primary = item["primary"]
        if primary in ("@street", "@community") or (units[primary][1] == "department" and rng.random() < 0.55):
            primary = street  # 属地管理: streets handle most tickets (57% in the district report)
        lane = next((lane for lane, share in LANES if rng.random() < share), "normal")
        ticket = CaseFacts(
            ticket_id=f"T{seed}-{received:%Y%m%d%H%M%S}-{n:06d}",
            ticket_type=_weighted(rng, TYPES), category=item["category"], list_item=item["rule_id"],
            street=units[street][0], address=address, lane=lane,
            repeat=received - seen.get((item["category"], address), received - REPEAT_WINDOW) < REPEAT_WINDOW,
            received_at=received,
        )
        seen[(item["category"], address)] = received
        for row in _dispatches(rng, ticket, primary, units, quality, others, as_of):
            yield _millis(row)


def _millis(row: CaseFacts) -> CaseFacts:
    """Times at the store's precision (milliseconds), so facts survive a trip through events."""
    times: dict[str, Any] = {name: pb.millis(value) for name, value in vars(row).items() if isinstance(value, datetime)}
    return replace(row, **times)


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


def directly_answered(row: CaseFacts) -> bool:
    """Half the consultations (咨询) are answered from the knowledge base (直接答复); by the ticket
    id, so that the random draws of everything else stay as they were."""
    return row.ticket_type == "consultation" and hashlib.sha256(row.ticket_id.encode()).digest()[0] % 2 == 0


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
        current = replace(current, replied_at=replied, reply_result=result,
                          direct_answer=redo_round == 0 and directly_answered(row))
        if redo_round < 2 and rng.random() < 0.06 * (2 - q):  # review failed: 重办
            yield replace(current, redone=True)
            start = replied + timedelta(hours=rng.uniform(1, 24))
            continue
        reviewed = replied + timedelta(hours=rng.uniform(2, 30))
        if reviewed > as_of:
            yield current
            return
        current = replace(current, closed_at=replied)  # 办结: the reply that passed the review
        evaluated = reviewed + timedelta(hours=rng.uniform(12, 120))
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


def events(facts: Iterable[CaseFacts], topic: Callable[[str], str] = str) -> list[Event]:
    """The platform events that tell these facts, in each ticket's order: TicketReceived,
    then per dispatch TicketAssigned, CaseOpened and the lifecycle events. ``topic`` maps a topic
    setting (``ticket_events``...) to its full name. The KPI projection of these events gives
    back exactly ``facts``."""
    by_ticket: dict[str, list[CaseFacts]] = {}
    for f in facts:
        by_ticket.setdefault(f.ticket_id, []).append(f)
    return [e for ticket_id, rows in by_ticket.items() for e in _ticket_events(ticket_id, rows, topic)]


def _ticket_events(ticket_id: str, rows: list[CaseFacts], topic: Callable[[str], str]) -> list[Event]:
    out: list[Event] = []
    rows.sort(key=lambda r: (r.dispatch_round, r.redo_round))
    first = rows[0]
    tags = [tag for tag, lane in LANE_TAGS.items() if lane == first.lane]

    def emit(field_name: str, name: str, message: Message, at: datetime | None) -> None:
        out.append(Event(topic(field_name), ticket_id, message, f"{ticket_id}/sim/{name}",
                         occurred_at=at or datetime(2026, 1, 1, tzinfo=UTC)))

    emit("ticket_events", "received", events_pb2.TicketReceived(ticket=ticket_pb2.Ticket(
        ticket_id=ticket_id, ticket_type=_enum(TICKET_TYPES, first.ticket_type), address=first.address,
        tags=tags, received_at=pb.ts(first.received_at), source="city",
        repeat_of=["earlier"] if first.repeat else [])), first.received_at)
    for dispatch_round in sorted({r.dispatch_round for r in rows}):
        _dispatch_events([r for r in rows if r.dispatch_round == dispatch_round], tags, emit)
    return out


def _ts(value: datetime | None) -> Timestamp:
    return pb.ts(value) or Timestamp()


def _enum(names: Mapping[Any, str], key: str) -> Any:
    return next((number for number, name in names.items() if name == key), 0)


def _dispatch_events(handlings: list[CaseFacts], tags: list[str],
                     emit: Callable[[str, str, Message, datetime | None], None]) -> None:
    d = handlings[0]
    dr = d.dispatch_round
    unit = events_pb2.Unit(unit_id=d.unit_id, name=d.unit_name, unit_type=_enum(UNIT_TYPES, d.unit_type))
    emit("assignment_events", f"assigned/{dr}", events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(ticket_id=d.ticket_id, primary_unit=unit, category=d.category,
                                         rule_id=d.list_item, dispatch_round=dr, assigned_at=pb.ts(d.assigned_at)),
        ticket_type=_enum(TICKET_TYPES, d.ticket_type), received_at=pb.ts(d.received_at), street=d.street,
        tags=tags), d.assigned_at)
    case = events_pb2.Case(ticket_id=d.ticket_id, primary_unit=unit, ticket_type=_enum(TICKET_TYPES, d.ticket_type),
                           category=d.category, received_at=pb.ts(d.received_at), dispatch_round=dr,
                           sign_off_due=pb.ts(d.sign_off_due), reply_due=pb.ts(handlings[0].reply_due),
                           supervision_level=d.supervision_level, contact_due=pb.ts(d.first_contact_due),
                           lane=d.lane)
    emit("case_events", f"opened/{dr}", events_pb2.CaseOpened(case=case), d.assigned_at)
    if d.signed_off_at:
        case.signed_off_at.CopyFrom(_ts(d.signed_off_at))
        emit("case_events", f"signed/{dr}", lifecycle_pb2.CaseSignedOff(
            case=case, occurred_at=pb.ts(d.signed_off_at), unit_id=d.unit_id), d.signed_off_at)
    if d.first_contact_at:
        case.first_contact_at.CopyFrom(_ts(d.first_contact_at))
        emit("case_events", f"contact/{dr}", lifecycle_pb2.ContactRecorded(
            case=case, occurred_at=pb.ts(d.first_contact_at), first=True,
            contact=case_pb2.Contact(contacted_at=pb.ts(d.first_contact_at))), d.first_contact_at)
    for i, h in enumerate(handlings):
        rr = h.redo_round
        if h.replied_at:
            reply = case_pb2.Reply(result=_enum(REPLY_RESULTS, h.reply_result), replied_at=pb.ts(h.replied_at),
                                   redo_round=rr)
            if h.direct_answer:
                reply.article.CopyFrom(knowledge_pb2.ArticleRef(article_id="KA-SIM", version=1))
            case.reply.CopyFrom(reply)
            emit("case_events", f"replied/{dr}/{rr}", lifecycle_pb2.CaseReplied(
                case=case, occurred_at=pb.ts(h.replied_at), reply=reply), h.replied_at)
        if h.redone and i + 1 < len(handlings):
            case.redo_round = rr + 1
            case.reply_due.CopyFrom(_ts(handlings[i + 1].reply_due))
            emit("case_events", f"review/{dr}/{rr}", lifecycle_pb2.ReviewDecided(
                case=case, passed=False, review=case_pb2.Review(passed=False, redo_round=rr)), h.replied_at)
        if h.closed_at:
            emit("case_events", f"review/{dr}/{rr}", lifecycle_pb2.ReviewDecided(
                case=case, passed=True, review=case_pb2.Review(passed=True, redo_round=rr)), h.closed_at)
        if h.evaluated_at:
            evaluation = case_pb2.Evaluation(resolution=_enum(RESOLUTIONS, h.resolution),
                                             satisfaction=_enum(SATISFACTIONS, h.satisfaction),
                                             evaluated_at=pb.ts(h.evaluated_at), redo_round=rr)
            case.evaluation.CopyFrom(evaluation)
            emit("case_events", f"evaluated/{dr}/{rr}", lifecycle_pb2.CaseEvaluated(
                case=case, occurred_at=pb.ts(h.evaluated_at), evaluation=evaluation), h.evaluated_at)
    if d.returned:
        emit("assignment_events", f"return/{dr}", lifecycle_pb2.ReturnDecision(
            ticket_id=d.ticket_id, dispatch_round=dr, approved=True), d.signed_off_at)
        emit("case_events", f"closed/{dr}", lifecycle_pb2.CaseClosed(
            case=case, closure=case_pb2.CLOSURE_REDISPATCHED), d.signed_off_at)


def supervision_items(facts: Iterable[CaseFacts], seed: int = 0, whistle_share: float = 0.01,
                      as_of: datetime | None = None) -> tuple[list[Any], list[Any]]:
    """Whistles (吹哨报到) on some tickets handled by streets and a 屡办不成 item per month for each
    (category, address) with three or more tickets that month, as the KPI engine's item facts
    (services/metrics/kpi_items.py). Deterministic for a seed and the facts."""
    from services.metrics.kpi_items import RecurringFacts, WhistleFacts

    rng = random.Random(seed)
    rows = sorted((f for f in facts if f.dispatch_round == 1 and f.redo_round == 0 and f.received_at),
                  key=lambda f: f.key)
    departments = sorted({f.unit_id for f in rows if f.unit_type == "department"})
    whistles: list[WhistleFacts] = []
    per_month: dict[tuple[str, str, str], list[CaseFacts]] = {}
    for f in rows:
        assert f.received_at is not None
        if departments and f.unit_type == "street" and rng.random() < whistle_share:
            blown = f.received_at + timedelta(hours=rng.uniform(2, 48))
            summoned = tuple((u, rng.choices(["on_time", "late", "pending"], [0.8, 0.15, 0.05])[0])
                             for u in rng.sample(departments, rng.randint(1, min(3, len(departments)))))
            closed = blown + timedelta(days=rng.uniform(1, 20)) if rng.random() < 0.9 else None
            if as_of is not None and blown >= as_of:
                continue
            closed = closed if closed and (as_of is None or closed < as_of) else None
            resolved = rng.random() < 0.8 and closed is not None
            whistles.append(WhistleFacts(f"WH-{f.ticket_id}", f.unit_id, pb.millis(blown), summoned,
                                         pb.millis(closed) if closed else None, resolved))
        month = f"{f.received_at.astimezone(f.received_at.tzinfo):%Y-%m}"
        per_month.setdefault((month, f.category, f.address), []).append(f)
    items = []
    for (month, category, address), tickets in sorted(per_month.items()):
        if len(tickets) >= 3 and address:
            last = tickets[-1].received_at
            assert last is not None
            solved = last + timedelta(days=rng.uniform(5, 60)) if rng.random() < 0.7 else None
            items.append(RecurringFacts(f"{month}/{category}/{address}", month, tickets[0].street, category, address,
                                        pb.millis(solved) if solved and (as_of is None or solved < as_of) else None))
    return whistles, items


def item_events(whistles: Iterable[Any], items: Iterable[Any]) -> list[Message]:
    """The supervision events that tell these whistles and 屡办不成 items (their projection gives them back)."""
    from hotline.v1 import supervision_pb2 as sv

    out: list[Message] = []
    for w in whistles:
        snapshot = sv.Whistle(whistle_id=w.whistle_id, street_unit_id=w.street_unit_id, blown_at=_ts(w.blown_at),
                              state=sv.WHISTLE_STATE_OPEN)
        for unit, _ in w.summoned:
            snapshot.summoned.add(unit_id=unit)
        out.append(sv.WhistleBlown(whistle=snapshot, occurred_at=_ts(w.blown_at)))
        for i, (unit, report) in enumerate(w.summoned):
            if report != "pending":
                s = snapshot.summoned[i]
                s.reported_at.CopyFrom(_ts(w.blown_at + timedelta(hours=1)))
                s.on_time = report == "on_time"
                out.append(sv.WhistleReportedIn(whistle=snapshot, unit_id=unit, occurred_at=s.reported_at))
        if w.closed_at is not None:
            snapshot.state, snapshot.resolved = sv.WHISTLE_STATE_CLOSED, w.resolved
            snapshot.closed_at.CopyFrom(_ts(w.closed_at))
            out.append(sv.WhistleClosed(whistle=snapshot, occurred_at=_ts(w.closed_at)))
    by_month: dict[str, list[Any]] = {}
    for item in items:
        by_month.setdefault(item.month, []).append(item)
    for month, listed in sorted(by_month.items()):
        out.append(sv.RecurringListed(list=sv.RecurringList(month=month, items=[
            sv.RecurringItem(item_id=i.item_id, month=i.month, street=i.street, category=i.category,
                             address=i.address) for i in listed])))
        for i in listed:
            if i.resolved_at is not None:
                out.append(sv.RecurringResolved(item=sv.RecurringItem(
                    item_id=i.item_id, month=i.month, street=i.street, category=i.category, address=i.address,
                    state=sv.RECURRING_STATE_RESOLVED, resolved_at=_ts(i.resolved_at)), occurred_at=_ts(i.resolved_at)))
    return out
