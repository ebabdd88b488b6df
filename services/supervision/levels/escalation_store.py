"""Supervision levels, meetings, merges and whistles: the queries and the adapters' command side.

* ``case_supervision``: one document per case (CaseSupervision), written with the case's
  ``supervision_level`` (the highest open level) in the same transaction;
* ``supervision_records``: one small document per record (level, state, due), which the
  resolution-rate gauge counts through an index;
* ``whistles``: one document per whistle, found by street and by summoned unit.

Every write is a typed command (commands.py: one handler each, on supervision's message bus;
idempotency, audit, outbox); :class:`EscalationCommands` builds them. The levels decide the case's
``supervision_level`` (the case repository, cases/store.py, writes it: the one writer of the case
document): an overdue deadline (the timers' OverdueSupervisionRaised) and a
poor evaluation reach it in process through escalation_handlers.py (the outbox's follow-ups,
:meth:`EscalationCommands.raise_supervision`), a deputy's escalation through
:meth:`EscalationCommands.deputy_escalation`. A merged case closes with its parent through the
lifecycle (:meth:`EscalationCommands.close_merged`, lifecycle.CLOSE_MERGED). The gauges are
recounted by a background loop (:meth:`EscalationCommands.export_forever`), not by the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from prometheus_client import Gauge
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline import timers as timers_module
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.clock import Clock
from hotline.commands import CommandBus, DomainError, Invalid, NotFound
from hotline.logging import get_logger
from hotline.mongo import Doc
from hotline.policy import Role
from hotline.v1 import deputy_pb2, events_pb2, merging_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.cases.commands import CaseCommands, CloseMerged
from services.supervision.cases.store import CaseClocks, CaseStore
from services.supervision.levels import commands as lc
from services.supervision.levels import deputy_escalation, merging, recurring
from services.supervision.levels import escalation as esc
from services.supervision.levels import whistles as wh
from services.supervision.levels.repositories import (  # noqa: F401 (the repositories and collections, as before)
    RECORDS,
    RECURRING,
    SUPERVISIONS,
    WHISTLES,
    MergeRepository,
    RecurringRepository,
    SupervisedRepository,
    WhistleRepository,
)
from services.supervision.levels.whistle_clocks import WhistleClocks
from services.supervision.warnings.warning_store import fact_of_doc

INDEXES = {
    RECORDS: [IndexModel([("level", ASCENDING), ("state", ASCENDING)])],
    WHISTLES: [IndexModel([("street_unit_id", ASCENDING), ("blown_at", DESCENDING)]),
               IndexModel([("summoned.unit_id", ASCENDING), ("blown_at", DESCENDING)]),
               *timers_module.indexes(WHISTLES)[WHISTLES]],  # 吹哨报到: report-in clocks (whistle_clocks.py)
}
RESOLUTION = Gauge("hotline_supervision_resolution_ratio",
                   "Supervisions (督办) closed as resolved, of those closed, by level (1 system, 2 letter, "
                   "3 conduct supervisors, 4 leader).", ["level"])
OPEN = Gauge("hotline_supervision_open", "Open supervisions (督办中) by level.", ["level"])
SYSTEM = Principal.system("supervision")
log = get_logger(__name__)


class EscalationCommands:
    """The levels wing's adapters' side: build the typed command (commands.py), ``bus.handle`` it.

    ``bus``: the service's MessageBus, on which main registered the levels handlers
    (``commands.register(bus, escalation.handlers)``); a CommandBus (a bench, a test) gets its own
    MessageBus with them."""

    def __init__(self, bus: MessageBus | CommandBus, db: AsyncDatabase[Doc], rules: esc.Rules, clock: Clock,
                 topic: str, unit_type: wh.UnitType, results_topic: str = "",
                 recurring_rules: recurring.Rules | None = None, clocks: CaseClocks | None = None,
                 cases: CaseCommands | None = None, whistle_clocks: WhistleClocks | None = None) -> None:
        self.cases = cases  # the lifecycle's commands: a merged case closes through them (CLOSE_MERGED)
        self.clocks = clocks  # a merged child's clocks stop as it closes (None: cases without clocks, e.g. a bench)
        self.whistle_clocks = whistle_clocks  # 吹哨报到: each summons' report-in limit is a timer
        self.recurring_rules = recurring_rules or recurring.Rules.load()
        self.results_topic = results_topic  # city.results.v1 (the lifecycle's policy sends merged children's results)
        self.db = db
        self.rules = rules
        self.clock = clock
        self.topic = topic
        self.unit_type = unit_type
        self.handlers = lc.LevelHandlers(db, rules, clock, topic, unit_type, clocks, whistle_clocks,
                                         self.find_recurring)
        if not isinstance(bus, MessageBus):
            bus = MessageBus(bus.uow)
            lc.register(bus, self.handlers)
        self.bus = bus

    async def handle(self, command: lc.LevelCommand) -> Any:
        return await self.bus.handle(command)

    async def run(self, name: str, request: Message, actor: Principal, key: str,
                  at: datetime | None = None) -> sv.CaseSupervision:
        """Run one supervision command (by its name, e.g. ``raise_supervision``) on ``request.ticket_id``."""
        answer: sv.CaseSupervision = await self.bus.handle(lc.BY_NAME[name](request, actor, key, at))
        return answer  # the gauges follow with the next recount (export_forever)

    async def raise_supervision(self, ticket_id: str, level: int, reason: str, at: datetime,
                                key: str = "") -> sv.CaseSupervision:
        """The system raises ``level`` (1 on overdue or a poor evaluation) on a case, once: the
        same (ticket, level, time) or key again changes nothing, and a level already open
        stays as it is. For the escalation consumer (overdue requests, poor evaluations)."""
        request = sv.RaiseSupervisionRequest(ticket_id=ticket_id, level=level, reason=reason)
        answer: sv.CaseSupervision = await self.bus.handle(lc.RaiseSupervision(
            request, SYSTEM, key or f"{ticket_id}/supervision/L{level}/{at.isoformat()}", at))
        return answer

    async def deputy_escalation(self, escalated: deputy_pb2.DeputyEscalated) -> events_pb2.Case:
        """代表提请督办: level 1 on the deputy's case, once per submission (deputy_escalation.py)."""
        case: events_pb2.Case = await self.bus.handle(lc.DeputyEscalation(
            escalated, deputy_escalation.DEPUTY_LIAISON, deputy_escalation.command_key(escalated)))
        return case

    async def merge(self, request: sv.MergeTicketsRequest, actor: Principal, key: str) -> sv.CaseSupervision:
        """并单: the office merges tickets under a parent case."""
        if not request.parent_ticket_id:
            raise Invalid("parent_ticket_id is required")
        answer: sv.CaseSupervision = await self.bus.handle(lc.MergeTickets(request, actor, key))
        return answer

    async def closing(self, ticket_ids: Sequence[str]) -> dict[str, tuple[bool, list[str]]]:
        """For cases that closed, in ONE read (the outbox's follow-ups of a relay batch): whether
        each has an open supervision, and the cases merged under it. A case without a supervision
        document is absent (nothing to settle, nothing merged under it)."""
        if not ticket_ids:
            return {}
        cursor = self.db[SUPERVISIONS].find({"_id": {"$in": list(dict.fromkeys(ticket_ids))}},
                                            {"records.state": 1, "merged": 1})
        return {d["_id"]: (any(r.get("state") == "SUPERVISION_STATE_OPEN" for r in d.get("records", [])),
                           list(d.get("merged", []))) async for d in cursor}

    async def settle(self, closed: events_pb2.Case, at: datetime, is_open: bool | None = None) -> bool:
        """The case closed: close its open supervision with it (once). False: none was open.
        ``is_open``: known from :meth:`closing` (None: read it here)."""
        tid = closed.ticket_id
        if is_open is None:
            is_open = await self.db[SUPERVISIONS].find_one(
                {"_id": tid, "records.state": "SUPERVISION_STATE_OPEN"}, {"_id": 1}) is not None
        if not is_open:
            return False
        await self.bus.handle(lc.SettleSupervision(closed, SYSTEM, f"{tid}/supervision/settle/{at.isoformat()}", at))
        return True

    async def close_merged(self, parent: events_pb2.Case, at: datetime, merged: list[str] | None = None) -> int:
        """The parent closed: each case merged under it closes with its result through the case
        lifecycle (lifecycle.CLOSE_MERGED, a command keyed by child and parent: once). A child
        archived on its own before keeps its own closing. Returns how many were merged under it.
        ``merged``: the children, known from :meth:`closing` (None: read them here)."""
        if self.cases is None:
            raise RuntimeError("closing merged cases needs the case commands (EscalationCommands(cases=...))")
        if merged is None:
            doc = await self.db[SUPERVISIONS].find_one({"_id": parent.ticket_id}, {"merged": 1})
            merged = list((doc or {}).get("merged", []))
        children = merged
        for child in children:
            request = merging_pb2.CloseMergedRequest(ticket_id=child, parent=parent)
            try:
                await self.cases.handle(CloseMerged(request, SYSTEM, f"{child}/merged-close/{parent.ticket_id}"))
            except DomainError as exc:
                if exc.code != "failed_precondition":
                    raise
                log.info("merged case not closed with its parent", ticket_id=child, reason=exc.message)
        return len(children)

    async def suggestions(self, ticket_id: str, limit: int) -> list[merging.Suggestion]:
        """Tickets that may be about the same event (from the early warnings' ticket facts)."""
        doc = await self.db["warning_facts"].find_one({"_id": ticket_id})
        if doc is None:
            # The facts come from a side consumer that gathers records for a moment: a case opened
            # a moment ago has none yet, and then nothing can be suggested for it (yet).
            if await CaseStore(self.db).get(ticket_id) is not None:
                return []
            raise NotFound("ticket", ticket_id)
        fact = fact_of_doc(doc)
        span = timedelta(days=merging.SUGGEST_DAYS)
        cursor = self.db["warning_facts"].find({"street": fact.street,
                                                "at": {"$gte": fact.at - span, "$lte": fact.at + span}})
        candidates = [fact_of_doc(d) async for d in cursor]
        found = merging.suggest(fact, candidates, limit * 2)
        open_cases = await CaseStore(self.db).get_many([s.ticket_id for s in found])
        return [s for s in found if s.ticket_id in open_cases and open_cases[s.ticket_id].state != esc.ARCHIVED][:limit]

    async def find_recurring(self, month: str) -> list[sv.RecurringItem]:
        """The month's 屡办不成 items from the stored ticket facts and cases (read before the command)."""
        start, end = recurring.month_span(month, self.rules.tz)
        since = end - timedelta(days=self.recurring_rules.lookback_days)
        cursor = self.db["warning_facts"].find({"at": {"$gte": since, "$lt": end}, "address": {"$exists": True}})
        facts = [fact_of_doc(d) async for d in cursor]
        per_problem: dict[tuple[str, str], int] = {}
        for f in facts:
            per_problem[(f.address, f.category)] = per_problem.get((f.address, f.category), 0) + 1
        facts = [f for f in facts if per_problem[(f.address, f.category)] >= self.recurring_rules.min_tickets]
        cases = await CaseStore(self.db).get_many([f.ticket_id for f in facts])
        return list(recurring.find(month, facts, cases, self.recurring_rules, self.rules.tz))

    async def generate_recurring(self, month: str, actor: Principal, key: str) -> sv.RecurringList:
        """屡办不成: find the month's recurring unresolved problems and add them to its list."""
        answer: sv.RecurringList = await self.bus.handle(
            lc.GenerateRecurringList(sv.GenerateRecurringListRequest(month=month), actor, key))
        return answer

    async def resolve_recurring(self, request: sv.ResolveRecurringItemRequest, actor: Principal,
                                key: str) -> sv.RecurringItem:
        answer: sv.RecurringItem = await self.bus.handle(lc.ResolveRecurringItem(request, actor, key))
        return answer

    async def recurring_list(self, month: str) -> sv.RecurringList:
        recurring.month_span(month, self.rules.tz)  # validates
        return await RecurringRepository(self.db).load(month, None) or sv.RecurringList(month=month)

    async def get(self, ticket_id: str, who: Principal) -> esc.Supervised:
        return esc.visible(await SupervisedRepository(self.db).load(ticket_id, None), ticket_id, who)

    async def whistle(self, name: str, request: Message, actor: Principal, key: str) -> sv.Whistle:
        """吹哨报到 by the command's name (blow_whistle, report_in, close_whistle)."""
        answer: sv.Whistle = await self.bus.handle(lc.BY_NAME[name](request, actor, key))
        return answer

    async def get_whistle(self, wid: str, who: Principal) -> sv.Whistle:
        return wh.visible(await WhistleRepository(self.db).load(wid, None), wid, who)

    async def list_whistles(self, who: Principal, limit: int) -> list[sv.Whistle]:
        query: Doc = {}
        if who.role == Role.UNIT:  # a unit: the whistles its street raised or it is summoned to
            query = {"$or": [{"street_unit_id": who.unit_id}, {"summoned.unit_id": who.unit_id}]}
        cursor = self.db[WHISTLES].find(query, sort=[("blown_at", DESCENDING)], limit=limit)
        return [pb.from_doc(d, sv.Whistle) async for d in cursor]

    async def export_forever(self, every: float) -> None:
        """Recount the gauges every ``every`` seconds (setting ``sla.level_gauge_seconds``): the
        only place they are set, so no command waits for the 12 counts, and what other replicas
        changed is counted too."""
        while True:
            with contextlib.suppress(Exception):  # figures are best effort; the next round retries
                await self.export()
            await asyncio.sleep(every)

    async def export(self) -> None:
        """Set the per-level gauges from the records (12 indexed counts, at once)."""
        keys: list[tuple[int, int]] = [(level, state) for level in esc.LEVELS
                                       for state in (esc.OPEN, esc.RESOLVED, esc.UNRESOLVED)]
        found = await asyncio.gather(*(self.db[RECORDS].count_documents(
            {"level": level, "state": sv.SupervisionState.Name(state)})  # type: ignore[arg-type]
            for level, state in keys))
        counts = dict(zip(keys, found, strict=True))
        for level, rate in esc.resolution_rates(counts).items():
            RESOLUTION.labels(str(level)).set(rate)
            OPEN.labels(str(level)).set(counts[(level, esc.OPEN)])


def unit_types(directory: Doc) -> Callable[[str], Any]:
    """A unit's type by its id in the directory (None when unknown)."""
    types = {u["unit_id"]: events_pb2.UnitType.Value(u["unit_type"]) for u in directory["units"]}
    return types.get
