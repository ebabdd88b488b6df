"""Supervision levels, meetings, merges and whistles: stores and the command side.

* ``case_supervision``: one document per case (CaseSupervision), written with the case's
  ``supervision_level`` (the highest open level) in the same transaction;
* ``supervision_records``: one small document per record (level, state, due), which the
  resolution-rate gauge counts through an index;
* ``whistles``: one document per whistle, found by street and by summoned unit.

Every write is a kit Command through the CommandBus (idempotency, audit, outbox). This module
decides the case's ``supervision_level`` (the case repository, cases/store.py, writes it: the one
writer of the case document): an overdue deadline (the timers' OverdueSupervisionRaised) and a
poor evaluation reach it in process through escalation_handlers.py (the outbox's follow-ups,
:meth:`EscalationCommands.raise_supervision`), a deputy's escalation through
:meth:`EscalationCommands.deputy_escalation`. A merged case closes with its parent through the
lifecycle (:meth:`EscalationCommands.close_merged`, lifecycle.CLOSE_MERGED). The gauges are
recounted by a background loop (:meth:`EscalationCommands.export_forever`), not by the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from prometheus_client import Gauge
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline import timers as timers_module
from hotline.auth import Principal
from hotline.clock import Clock
from hotline.commands import Command, CommandBus, DomainError, Invalid, NotFound
from hotline.logging import get_logger
from hotline.mongo import Doc
from hotline.policy import Role
from hotline.v1 import deputy_pb2, events_pb2, merging_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.cases.commands import CaseCommands, CloseMerged
from services.supervision.cases.store import CaseClocks, CaseRepository, CaseStore
from services.supervision.levels import deputy_escalation, merging, recurring
from services.supervision.levels import escalation as esc
from services.supervision.levels import whistles as wh
from services.supervision.levels.whistle_clocks import WhistleClocks
from services.supervision.warnings.warning_store import fact_of_doc

SUPERVISIONS, RECORDS, WHISTLES, RECURRING = "case_supervision", "supervision_records", "whistles", "recurring_lists"
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


class SupervisedRepository:
    """A case's supervision with its case (the case must exist; its level is mirrored)."""

    kind = "case_supervision"

    def __init__(self, db: AsyncDatabase[Doc], clocks: CaseClocks | None = None) -> None:
        self.db = db
        self.clocks = clocks  # the case's timers follow its open level's limit (督办 timer, issue #22)
        self.cases = CaseRepository(CaseStore(db), clocks)  # reads and writes the case (the one writer)

    async def load(self, target: str, session: AsyncClientSession | None) -> esc.Supervised | None:
        case = await self.cases.load(target, session)
        if case is None:
            return None
        doc = await self.db[SUPERVISIONS].find_one({"_id": target}, session=session)
        supervision = pb.from_doc(doc, sv.CaseSupervision) if doc else sv.CaseSupervision(ticket_id=target)
        return esc.Supervised(case, supervision)

    async def save(self, state: esc.Supervised, session: AsyncClientSession | None) -> None:
        s = state.supervision
        await self.db[SUPERVISIONS].replace_one({"_id": s.ticket_id}, {"_id": s.ticket_id, **pb.to_doc(s)},
                                                upsert=True, session=session)
        top = max((r for r in s.records if r.state == sv.SUPERVISION_STATE_OPEN and r.HasField("due")),
                  key=lambda r: (r.level, r.raised_at.seconds), default=None)
        # the case's level (a deputy's escalation also moves its revision) and the open level's limit as a
        # clock: written by the case repository, the one writer of the case document
        await self.cases.save_supervision(state.case, (top.due, top.raised_at) if top is not None else None, session)
        for r in s.records:
            await self.db[RECORDS].replace_one(
                {"_id": r.record_id}, {"_id": r.record_id, "ticket_id": s.ticket_id, "level": r.level,
                                       "state": sv.SupervisionState.Name(r.state), "due": pb.dt(r.due)},
                upsert=True, session=session)


class MergeRepository(SupervisedRepository):
    """The parent's supervision with the named children's (并单)."""

    def __init__(self, db: AsyncDatabase[Doc], children: list[str], clocks: CaseClocks | None = None) -> None:
        super().__init__(db, clocks)
        self.wanted = children

    async def load(self, target: str, session: AsyncClientSession | None) -> esc.Supervised | None:
        parent = await super().load(target, session)
        if parent is not None:
            for tid in self.wanted:
                if tid != target and (child := await super().load(tid, session)) is not None:
                    parent.children[tid] = child
        return parent

    async def save(self, state: esc.Supervised, session: AsyncClientSession | None) -> None:
        await super().save(state, session)
        for child in state.children.values():
            await super().save(child, session)


class RecurringRepository:
    """A month's 屡办不成 list (one document per month)."""

    kind = "recurring_list"

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.lists = db[RECURRING]

    async def load(self, target: str, session: AsyncClientSession | None) -> sv.RecurringList | None:
        doc = await self.lists.find_one({"_id": target}, session=session)
        return pb.from_doc(doc, sv.RecurringList) if doc else None

    async def save(self, state: sv.RecurringList, session: AsyncClientSession | None) -> None:
        await self.lists.replace_one({"_id": state.month}, {"_id": state.month, **pb.to_doc(state)}, upsert=True,
                                     session=session)


class WhistleRepository:
    """A whistle; every save gives it the report-in clocks it runs now (``clocks``, whistle_clocks.py)."""

    kind = "whistle"

    def __init__(self, db: AsyncDatabase[Doc], clocks: WhistleClocks | None = None) -> None:
        self.whistles = db[WHISTLES]
        self.clocks = clocks
        self._docs: dict[str, Doc] = {}

    async def load(self, target: str, session: AsyncClientSession | None) -> sv.Whistle | None:
        doc = await self.whistles.find_one({"_id": target}, session=session)
        if doc:
            self._docs[target] = doc
        return pb.from_doc(doc, sv.Whistle) if doc else None

    async def save(self, whistle: sv.Whistle, session: AsyncClientSession | None) -> None:
        doc = {"_id": whistle.whistle_id, **pb.to_doc(whistle)}
        if self.clocks is not None:
            doc |= await self.clocks.fields(whistle, self._docs.get(whistle.whistle_id))
        await self.whistles.replace_one({"_id": whistle.whistle_id}, doc, upsert=True, session=session)


class EscalationCommands:
    def __init__(self, bus: CommandBus, db: AsyncDatabase[Doc], rules: esc.Rules, clock: Clock, topic: str,
                 unit_type: wh.UnitType, results_topic: str = "",
                 recurring_rules: recurring.Rules | None = None, clocks: CaseClocks | None = None,
                 cases: CaseCommands | None = None, whistle_clocks: WhistleClocks | None = None) -> None:
        self.cases = cases  # the lifecycle's commands: a merged case closes through them (CLOSE_MERGED)
        self.clocks = clocks  # a merged child's clocks stop as it closes (None: cases without clocks, e.g. a bench)
        self.whistle_clocks = whistle_clocks  # 吹哨报到: each summons' report-in limit is a timer
        self.recurring_rules = recurring_rules or recurring.Rules.load()
        self.results_topic = results_topic  # city.results.v1 (the lifecycle's policy sends merged children's results)
        self.bus = bus
        self.db = db
        self.rules = rules
        self.clock = clock
        self.topic = topic
        self.unit_type = unit_type

    async def run(self, name: str, request: Message, actor: Principal, key: str,
                  at: datetime | None = None) -> sv.CaseSupervision:
        """Run one supervision command on the case ``request.ticket_id``."""
        ticket_id = str(getattr(request, "ticket_id", ""))
        if not ticket_id:
            raise Invalid("ticket_id is required")
        now = at or self.clock.now()

        def decide(state: esc.Supervised | None) -> Any:
            return esc.decide(state, request, actor, now, self.rules)

        command = Command(name, ticket_id, actor, key, str(getattr(request, "reason", ""))[:500])
        repo = SupervisedRepository(self.db, self.clocks)
        answer: sv.CaseSupervision = await self.bus.run(command, repo, decide, self.topic)
        return answer  # the gauges follow with the next recount (export_forever)

    async def raise_supervision(self, ticket_id: str, level: int, reason: str, at: datetime,
                                key: str = "") -> sv.CaseSupervision:
        """The system raises ``level`` (1 on overdue or a poor evaluation) on a case, once: the
        same (ticket, level, time) or key again changes nothing, and a level already open
        stays as it is. For the escalation consumer (overdue requests, poor evaluations)."""
        request = sv.RaiseSupervisionRequest(ticket_id=ticket_id, level=level, reason=reason)
        return await self.run("raise_supervision", request, SYSTEM,
                              key or f"{ticket_id}/supervision/L{level}/{at.isoformat()}", at)

    async def deputy_escalation(self, escalated: deputy_pb2.DeputyEscalated) -> events_pb2.Case:
        """代表提请督办: level 1 on the deputy's case, once per submission (deputy_escalation.py)."""
        now = self.clock.now()

        def decide(state: esc.Supervised | None) -> Any:
            return deputy_escalation.decide(state, escalated, now, self.rules)

        command = Command("deputy_escalation", escalated.ticket_id, deputy_escalation.DEPUTY_LIAISON,
                          deputy_escalation.command_key(escalated),
                          escalated.comment[:500] or deputy_escalation.REASON)
        repo = SupervisedRepository(self.db, self.clocks)
        case: events_pb2.Case = await self.bus.run(command, repo, decide, self.topic)
        return case

    async def merge(self, request: sv.MergeTicketsRequest, actor: Principal, key: str) -> sv.CaseSupervision:
        """并单: the office merges tickets under a parent case."""
        if not request.parent_ticket_id:
            raise Invalid("parent_ticket_id is required")
        now = self.clock.now()

        def decide(state: esc.Supervised | None) -> Any:
            return merging.merge(state, request, actor, now)

        command = Command("merge_tickets", request.parent_ticket_id, actor, key, request.reason[:500])
        repo = MergeRepository(self.db, list(request.ticket_ids)[:merging.MAX_CHILDREN + 1], self.clocks)
        answer: sv.CaseSupervision = await self.bus.run(command, repo, decide, self.topic)
        return answer

    async def settle(self, closed: events_pb2.Case, at: datetime) -> bool:
        """The case closed: close its open supervision with it (once). False: none was open."""
        tid = closed.ticket_id
        if await self.db[SUPERVISIONS].find_one({"_id": tid, "records.state": "SUPERVISION_STATE_OPEN"},
                                                {"_id": 1}) is None:
            return False

        def decide(state: esc.Supervised | None) -> Any:
            return esc.settle(state, closed, at)

        await self.bus.run(Command("settle_supervision", tid, SYSTEM, f"{tid}/supervision/settle/{at.isoformat()}"),
                           SupervisedRepository(self.db, self.clocks), decide, self.topic)
        return True

    async def close_merged(self, parent: events_pb2.Case, at: datetime) -> int:
        """The parent closed: each case merged under it closes with its result through the case
        lifecycle (lifecycle.CLOSE_MERGED, a command keyed by child and parent: once). A child
        archived on its own before keeps its own closing. Returns how many were merged under it."""
        if self.cases is None:
            raise RuntimeError("closing merged cases needs the case commands (EscalationCommands(cases=...))")
        doc = await self.db[SUPERVISIONS].find_one({"_id": parent.ticket_id}, {"merged": 1})
        children = list((doc or {}).get("merged", []))
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
            raise NotFound("ticket", ticket_id)
        fact = fact_of_doc(doc)
        span = timedelta(days=merging.SUGGEST_DAYS)
        cursor = self.db["warning_facts"].find({"street": fact.street,
                                                "at": {"$gte": fact.at - span, "$lte": fact.at + span}})
        candidates = [fact_of_doc(d) async for d in cursor]
        found = merging.suggest(fact, candidates, limit * 2)
        open_cases = await CaseStore(self.db).get_many([s.ticket_id for s in found])
        return [s for s in found if s.ticket_id in open_cases and open_cases[s.ticket_id].state != esc.ARCHIVED][:limit]

    async def generate_recurring(self, month: str, actor: Principal, key: str) -> sv.RecurringList:
        """屡办不成: find the month's recurring unresolved problems and add them to its list."""
        start, end = recurring.month_span(month, self.rules.tz)
        since = end - timedelta(days=self.recurring_rules.lookback_days)
        cursor = self.db["warning_facts"].find({"at": {"$gte": since, "$lt": end}, "address": {"$exists": True}})
        facts = [fact_of_doc(d) async for d in cursor]
        per_problem: dict[tuple[str, str], int] = {}
        for f in facts:
            per_problem[(f.address, f.category)] = per_problem.get((f.address, f.category), 0) + 1
        facts = [f for f in facts if per_problem[(f.address, f.category)] >= self.recurring_rules.min_tickets]
        cases = await CaseStore(self.db).get_many([f.ticket_id for f in facts])
        found = recurring.find(month, facts, cases, self.recurring_rules, self.rules.tz)
        now = self.clock.now()

        def decide(existing: sv.RecurringList | None) -> Any:
            return recurring.generate(existing, month, found, now)

        answer: sv.RecurringList = await self.bus.run(Command("generate_recurring_list", month, actor, key),
                                                      RecurringRepository(self.db), decide, self.topic)
        return answer

    async def resolve_recurring(self, request: sv.ResolveRecurringItemRequest, actor: Principal,
                                key: str) -> sv.RecurringItem:
        month = request.item_id.partition("/")[0]
        now = self.clock.now()

        def decide(existing: sv.RecurringList | None) -> Any:
            return recurring.resolve(existing, request, actor, now)

        answer: sv.RecurringItem = await self.bus.run(
            Command("resolve_recurring_item", month, actor, key, request.outcome[:500]), RecurringRepository(self.db),
            decide, self.topic)
        return answer

    async def recurring_list(self, month: str) -> sv.RecurringList:
        recurring.month_span(month, self.rules.tz)  # validates
        return await RecurringRepository(self.db).load(month, None) or sv.RecurringList(month=month)

    async def get(self, ticket_id: str, who: Principal) -> esc.Supervised:
        return esc.visible(await SupervisedRepository(self.db).load(ticket_id, None), ticket_id, who)

    async def whistle(self, name: str, request: Message, actor: Principal, key: str) -> sv.Whistle:
        wid = wh.whistle_id(actor, key) if isinstance(request, sv.BlowWhistleRequest) else \
            str(getattr(request, "whistle_id", ""))
        if not wid:
            raise Invalid("whistle_id is required")
        now = self.clock.now()

        def decide(before: sv.Whistle | None) -> Any:
            return wh.decide(before, wid, request, actor, now, self.rules, self.unit_type)

        answer: sv.Whistle = await self.bus.run(Command(name, wid, actor, key),
                                                WhistleRepository(self.db, self.whistle_clocks), decide, self.topic)
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
