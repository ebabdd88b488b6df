"""Supervision's store: one case per ticket (collection ``cases``), the current dispatch round,
with its clocks (the ``timers`` field of hotline/timers.py, embedded). The SLA policy's versions
are the kit's versioned policy ``sla_policy`` (hotline/policies.py, :data:`SlaPolicies`); a case
keeps the version it started with, and its limits are rebuilt from it (:func:`limits_of_doc`).

Each open case carries ``next_deadline``: the due time of the clock now running (sign-off
while awaiting sign-off, the reply deadline while the unit handles it, asks for an extension
or a return); a parked case (挂账) and cases waiting for the office or the city have none, so
they leave the overdue count; and ``timers.fire_at``, the next alarm of any of its clocks,
for the timer scan. Indexes serve every query: lists by state or by unit, most urgent first,
the timer scan, and a sparse one for assisting units' sub-cases (only cases with assisting
units pay for it). (Each secondary index entry costs ~0.1 ms per insert in the development
store, so there are no more than needed.)

ONE WRITER: this module is the only code that writes the ``cases`` collection (issue #20;
tests/unit/test_one_writer.py checks the source, tests/integration/test_one_writer.py the
writes at run time). A first round's cases open through :meth:`CaseStore.insert_new`; the
lifecycle's commands (and the levels wing's close of a merged case, lifecycle.CLOSE_MERGED)
save through :class:`CaseRepository`; the levels wing's 督办 fields go through
:meth:`CaseRepository.save_supervision`; the timers' stage bookkeeping (a fired stage claimed)
through :meth:`CaseStore.write_clocks`, which lets them touch the ``timers`` sub-document only.

The lifecycle's commands load and save cases through :class:`CaseRepository` inside the
command path's transaction; every save gives the case exactly the clocks its new state runs
(core.case_timers), so a transition arms, moves or stops its timers in the same write.
Evaluations that come before their case exists wait in ``evaluation_inbox`` and join the case
the next time a command loads it. The case history is the audit trail (hotline/audit.py): one
entry per command, with actor, reason, before and after.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import ASCENDING, DeleteMany, DeleteOne, IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.results import BulkWriteResult

from hotline import audit, pb
from hotline import timers as timers_module
from hotline.calendar import WorkCalendar
from hotline.clock import Clock
from hotline.mongo import Doc, find_in, insert_missing
from hotline.outbox import Outbox
from hotline.policies import LivePolicy
from hotline.timers import OnFire, Timers
from hotline.v1 import events_pb2, lifecycle_pb2
from services.supervision.cases import gauge_ledger
from services.supervision.cases.core import case_timers
from services.supervision.cases.lifecycle import evaluation_of
from services.supervision.cases.sla import Limits, Policy, limits_of

COLLECTION = "cases"  # written by this module only
INBOX = "evaluation_inbox"
INDEXES = {
    COLLECTION: [
        IndexModel([("state", ASCENDING), ("next_deadline", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("primary_unit.unit_id", ASCENDING), ("next_deadline", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("assists.unit_id", ASCENDING), ("next_deadline", ASCENDING)], sparse=True),
        *timers_module.indexes(COLLECTION)[COLLECTION],  # the case clocks live in the case documents
    ],
    INBOX: [IndexModel([("ticket_id", ASCENDING)])],
}
REPLY_CLOCK = frozenset({events_pb2.CASE_STATE_IN_PROGRESS, events_pb2.CASE_STATE_SENT_BACK,
                         events_pb2.CASE_STATE_EXTENSION_REQUESTED, events_pb2.CASE_STATE_RETURN_REQUESTED})
CITY_DAYS = "sla_city_days"  # the city's own reply limit, kept when it set one (the rest is on the Case)


SlaPolicies = LivePolicy[Policy]  # the SLA policy's versions, parsed (hotline/policies.py, sla.POLICY_NAME)


async def limits_of_doc(policies: SlaPolicies, doc: Mapping[str, Any]) -> Limits:
    """The limits of a stored case (its policy version, lanes and the city's limit); a case
    without a version (opened before the policy existed) gets the current policy's."""
    version = int(doc.get("policy_version", 0) or 0)
    policy = (await policies.get(version) if version else None) or await policies.current()
    return limits_of(policy, doc.get("sla_lanes", []), int(doc.get(CITY_DAYS, 0) or 0))


def sla_extras(limits: Limits) -> Doc:
    """What a case document keeps beside the Case to rebuild its limits (see ``CaseStore.limits``)."""
    return {CITY_DAYS: limits.reply_cap.amount} if limits.reply_cap else {}


def next_deadline(case: events_pb2.Case) -> datetime | None:
    if case.state == events_pb2.CASE_STATE_AWAITING_SIGN_OFF:
        return pb.dt(case.sign_off_due)
    if case.state in REPLY_CLOCK:
        return pb.dt(case.reply_due)
    return None  # parked (挂账), or waiting for the office or the city


def page_token(case: events_pb2.Case) -> str:
    due = next_deadline(case)
    return f"{due.isoformat() if due else ''}|{case.ticket_id}"


class CaseStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.cases = db[COLLECTION]

    def clock_timers(self, outbox: Outbox, clock: Clock, on_fire: OnFire, batch: int = 500) -> Timers:
        """The case clocks (hotline/timers.py), embedded in the case documents: they are set by
        every save (:class:`CaseClocks`), and the timer scan's own writes (a stage claimed) come
        back here (:meth:`write_clocks`)."""
        return Timers(self.db, outbox, clock, on_fire, collection=COLLECTION, batch=batch, embedded=True,
                      writer=self.write_clocks)

    async def write_clocks(self, ops: Sequence[UpdateOne | DeleteOne],
                           session: AsyncClientSession | None) -> BulkWriteResult:
        """The timers' bookkeeping writes: conditional updates of the ``timers`` sub-document of
        existing cases, nothing else (no insert, no delete, no other field)."""
        for op in ops:
            update = getattr(op, "_doc", None)
            if not isinstance(op, UpdateOne) or getattr(op, "_upsert", False) or not isinstance(update, dict) or \
                    any(set(fields) != {timers_module.FIELD} for fields in update.values()):
                raise ValueError(f"the timers may only rewrite a case's {timers_module.FIELD!r}, not {op!r}")
        return await self.cases.bulk_write(list(ops), ordered=False, session=session)

    async def get_many(self, ticket_ids: Sequence[str], session: AsyncClientSession | None = None,
                       ) -> dict[str, events_pb2.Case]:
        return {d["_id"]: pb.from_doc(d, events_pb2.Case)
                for d in await find_in(self.cases, ticket_ids, session=session)}

    async def get(self, ticket_id: str) -> events_pb2.Case | None:
        return (await self.get_many([ticket_id])).get(ticket_id)

    async def insert_new(self, cases: Sequence[events_pb2.Case], extras: Mapping[str, Doc] | None = None,
                         ) -> set[str]:
        """Insert the cases not stored yet, each with its ``extras`` (the limits it starts with and
        its clocks, hotline/timers.py: one write per case); returns the ids already there (a replay
        inserts nothing, so a case's clocks are set once, with the case)."""
        extras = extras or {}
        docs = [{"_id": c.ticket_id, **pb.to_doc(c), "next_deadline": next_deadline(c), **extras.get(c.ticket_id, {})}
                for c in cases]
        existed = await insert_missing(self.cases, docs)
        gauge_ledger.note(self.db.name, (d for d in docs if d["_id"] not in existed))  # the SLA gauges' counts
        await audit.record(self.db, [audit.entry(
            at=pb.dt(c.opened_at), actor=audit.system_actor("supervision"), action="open_case", kind="case",
            target_id=c.ticket_id, entry_id=f"{c.ticket_id}/opened/{c.dispatch_round}",
            reason=f"assigned to {c.primary_unit.unit_id}",
        ) for c in cases if c.ticket_id not in existed])
        return existed

    async def limits(self, ticket_id: str, policies: SlaPolicies, session: AsyncClientSession | None = None,
                     ) -> Limits | None:
        """The limits the case started with: its policy version, its lanes, the city's limit."""
        doc = await self.cases.find_one({"_id": ticket_id}, {"policy_version": 1, "sla_lanes": 1, CITY_DAYS: 1},
                                        session=session)
        return None if doc is None else await limits_of_doc(policies, doc)

    async def list(self, state: str | None, unit_id: str | None, after: str, limit: int,
                   assisting: bool = False) -> list[events_pb2.Case]:
        """Cases by state and/or primary unit (or assisting unit), most urgent first; ``after``
        is a page token."""
        query: dict[str, Any] = {}
        if state:
            query["state"] = state
        if unit_id:
            query["assists.unit_id" if assisting else "primary_unit.unit_id"] = unit_id
        if after:
            due_text, _, last_id = after.partition("|")
            due = datetime.fromisoformat(due_text) if due_text else None
            query["$or"] = [{"next_deadline": {"$gt": due}}, {"next_deadline": due, "_id": {"$gt": last_id}}]
        docs = await self.cases.find(query).sort([("next_deadline", ASCENDING), ("_id", ASCENDING)]) \
            .limit(limit).to_list()
        return [pb.from_doc(d, events_pb2.Case) for d in docs]

    async def keep_evaluation(self, evaluation: lifecycle_pb2.CityEvaluation) -> bool:
        """Keep an evaluation whose case does not exist yet; False if it was kept before."""
        doc = {"_id": evaluation.evaluation_id, "ticket_id": evaluation.city_ticket_id, **pb.to_doc(evaluation)}
        return not await insert_missing(self.db[INBOX], [doc])

    async def history(self, ticket_id: str, limit: int = 1000) -> Sequence[Doc]:
        """The case's audit entries, oldest first."""
        return list(reversed(await audit.query(self.db, ticket_id, "", limit)))



class CaseClocks:
    """What a saved case needs to get its clocks: the policy versions, the calendar, the timers."""

    def __init__(self, policies: SlaPolicies, calendar: WorkCalendar, timers: Timers) -> None:
        self.policies = policies
        self.calendar = calendar
        self.timers = timers

    async def fields(self, case: events_pb2.Case, doc: Doc) -> Doc:
        """The timer fields of ``case`` about to replace ``doc`` (its stored document, or the
        limits-keeping extras of a new one): exactly the clocks its state runs."""
        limits = await limits_of_doc(self.policies, {**doc, "policy_version": case.policy_version,
                                                     "sla_lanes": list(case.sla_lanes)})
        return self.timers.replacing(doc.get(timers_module.FIELD), case_timers(case, limits, self.calendar))


class CaseRepository:
    """Cases as the command path loads and saves them (inside its transaction). With
    ``inbox``, waiting evaluations join the case as it loads (for the commands that can apply
    them: a passed review); the others skip the two extra round trips. Every save gives the case
    the clocks of its new state (``clocks``), keeping what the stored document kept beside the
    Case (the city's limit)."""

    kind = "case"

    def __init__(self, store: CaseStore, clocks: CaseClocks | None, inbox: bool = False) -> None:
        self.store = store
        self.clocks = clocks
        self.inbox = inbox
        self._merged = False
        self._docs: dict[str, Doc] = {}
        self.opening: Doc = {}  # a new case's fields beside the Case (the city's limit: sla_extras)

    async def load(self, target: str, session: AsyncClientSession | None) -> events_pb2.Case | None:
        doc = await self.store.cases.find_one({"_id": target}, session=session)
        side = await self.store.db[INBOX].find({"ticket_id": target}, session=session).to_list() if self.inbox else []
        return await self.loaded(doc, session, side=side)

    async def save(self, case: events_pb2.Case, session: AsyncClientSession | None) -> None:
        doc = await self._doc(case)
        await self.store.cases.replace_one({"_id": case.ticket_id}, doc, upsert=True, session=session)
        gauge_ledger.note(self.store.db.name, [doc])  # the SLA gauges' counts (idempotent: a retry notes it again)
        if self._merged:  # they live in the case now
            await self.store.db[INBOX].delete_many({"ticket_id": case.ticket_id}, session=session)

    # the kit's three-round-trip command path (hotline/commands.py Repository): the case document is
    # read with the stored answer, and saved in the command's one bulk write
    def source(self, target: str) -> tuple[str, Doc] | None:
        return self.store.cases.name, {"_id": target}

    def side(self, target: str) -> tuple[str, str] | None:
        """With ``inbox``: the evaluations waiting for the case, read beside it (one find for a
        whole batch of commands, hotline/uow.py ``load``)."""
        return (INBOX, "ticket_id") if self.inbox else None

    def doc(self, target: str) -> Doc | None:
        """The stored document of the case loaded (None: there is none)."""
        return self._docs.get(target)

    async def loaded(self, doc: Doc | None, session: AsyncClientSession | None,
                     side: Sequence[Doc] = ()) -> events_pb2.Case | None:
        """The case of its stored document; ``side``: the evaluations waiting in the inbox for
        it (with ``inbox``), which join the case (and leave the inbox when it is saved)."""
        if doc is None:
            return None
        self._docs[doc["_id"]] = doc
        case = pb.from_doc(doc, events_pb2.Case)
        if self.inbox:
            known = {e.evaluation_id for e in case.pending_evaluations}
            for waiting in side:
                evaluation = pb.from_doc(waiting, lifecycle_pb2.CityEvaluation)
                self._merged = True
                if evaluation.evaluation_id not in known:
                    case.pending_evaluations.append(evaluation_of(evaluation))
        return case

    async def save_supervision(self, case: events_pb2.Case, limit: tuple[Timestamp, Timestamp] | None,
                               session: AsyncClientSession | None) -> None:
        """The levels wing's part of a loaded case (services/supervision/levels asks; it writes no
        case itself): its 督办 level, revision and update time, and the open level's own limit
        (``limit``: due, raised at; None: no level open) as a clock of the case. An archived case
        runs no clock: it stays as its last lifecycle event left it (but for the level)."""
        fields: Doc = {"supervision_level": case.supervision_level, "revision": case.revision}
        if case.HasField("updated_at"):
            fields["updated_at"] = pb.dt(case.updated_at)
        unset: Doc = {}
        if case.state == events_pb2.CASE_STATE_ARCHIVED:
            pass
        elif limit is not None:
            due, raised_at = limit
            case.supervision_due.CopyFrom(due)
            case.supervision_raised_at.CopyFrom(raised_at)
            fields["supervision_due"], fields["supervision_raised_at"] = pb.dt(due), pb.dt(raised_at)
        else:
            case.ClearField("supervision_due")
            case.ClearField("supervision_raised_at")
            unset = {"supervision_due": "", "supervision_raised_at": ""}
        doc = self._docs.get(case.ticket_id)
        if self.clocks is not None and doc is not None:
            clocks = await self.clocks.fields(case, doc)
            fields.update(clocks)
            if not clocks and timers_module.FIELD in doc:  # no clock runs any more: none is left behind
                unset[timers_module.FIELD] = ""
        update: Doc = {"$set": fields, **({"$unset": unset} if unset else {})}
        await self.store.cases.update_one({"_id": case.ticket_id}, update, session=session)
        gauge_ledger.note_level(self.store.db.name, case.ticket_id, case.supervision_level)  # the SLA gauges' counts

    async def write_ops(self, case: events_pb2.Case, session: AsyncClientSession | None) -> list[Any]:
        doc = await self._doc(case)
        ops: list[Any] = [ReplaceOne({"_id": case.ticket_id}, doc, upsert=True, namespace=self.store.cases.full_name)]
        gauge_ledger.note(self.store.db.name, [doc])  # the SLA gauges' counts (idempotent: a retry notes it again)
        if self._merged:
            ops.append(DeleteMany({"ticket_id": case.ticket_id}, namespace=self.store.db[INBOX].full_name))
        return ops

    async def _doc(self, case: events_pb2.Case) -> Doc:
        stored = self._docs.get(case.ticket_id) or self.opening
        kept = {CITY_DAYS: stored[CITY_DAYS]} if CITY_DAYS in stored else {}  # the ticket's, every round
        return {"_id": case.ticket_id, **pb.to_doc(case), "next_deadline": next_deadline(case), **kept,
                **(await self.clocks.fields(case, stored) if self.clocks else {})}
