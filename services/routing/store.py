"""Routing's store.

* ``assignments``: one assignment record per ticket, kept as the TicketAssigned event it
  published, so a replay republishes exactly the same event.
* the first-responsible list: the kit's versioned-policy store (hotline/policies.py, ``policy_versions``,
  policy ``responsibility_list``): every version with the change-log entry that made it, the newest
  the current one, so who changed what, when and why is never lost (``responsibility_versions``, the
  store before issue #20, is copied in once).
* ``desk``: per ticket, what the office's desk needs (services/routing/desk.py): the ticket,
  its queue entry while it waits for manual dispatch, its return, its joint review, its sub-dispatches.
* ``examples``: labelled examples from the office's decisions (dispatch, redispatch,
  recategorize) that ``hotline classify retrain --from-store`` learns from.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.commands import DomainError
from hotline.logging import get_logger
from hotline.mongo import Doc, find_in, insert_missing
from hotline.policies import INDEXES as POLICY_INDEXES
from hotline.policies import PolicyStore, PolicyVersion
from hotline.v1 import events_pb2, routing_pb2, ticket_pb2
from services.routing.desk import Desk
from services.routing.responsibility import Listing, ListVersion, LogEntry, seed

# assignments are looked up by _id only; the list's versions by name and version (the kit's policy store)
INDEXES: dict[str, list[IndexModel]] = {
    "assignments": [], **POLICY_INDEXES,
    "desk": [IndexModel([("queue.arrived_at", 1)], sparse=True), IndexModel([("ret.status", 1), ("ret.unit_id", 1)]),
             IndexModel([("review.status", 1), ("review.opened_at", 1)], sparse=True)],
    "examples": [IndexModel([("decided_at", 1)])],
}
CURRENT = "current"
LEGACY_VERSIONS = "responsibility_versions"
log = get_logger(__name__)


class AssignmentStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.assignments = db["assignments"]

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, events_pb2.TicketAssigned]:
        docs = await find_in(self.assignments, ticket_ids)
        return {d["_id"]: pb.from_doc(d, events_pb2.TicketAssigned) for d in docs}

    async def get(self, ticket_id: str) -> events_pb2.TicketAssigned | None:
        return (await self.get_many([ticket_id])).get(ticket_id)


class DeskStore:
    """Routing's record per ticket for the office's desk (a Repository of :class:`Desk`)."""

    kind = "dispatch"

    def __init__(self, db: AsyncDatabase[Doc], lists: ResponsibilityStore) -> None:
        self.db = db
        self.desk = db["desk"]
        self.assignments = db["assignments"]
        self.examples = db["examples"]
        self.lists = lists
        self.waiting = QueueLedger()  # the queue gauges' counts, kept by this store's writes (issue 21)

    async def insert_new(self, tickets: Sequence[ticket_pb2.Ticket],
                         queued: Sequence[routing_pb2.QueueEntry]) -> None:
        """The tickets routing decided (and the queue entries of those it could not)."""
        entries = {q.ticket_id: q for q in queued}
        existed = await insert_missing(self.desk, [
            {"_id": t.ticket_id, "ticket": pb.to_doc(t),
             **({"queue": pb.to_doc(entries[t.ticket_id])} if t.ticket_id in entries else {})}
            for t in tickets])
        for tid, q in entries.items():
            if tid not in existed:
                self.waiting.note(tid, pb.dt(q.arrived_at))

    async def load(self, target: str, session: Any = None) -> Desk | None:
        doc = await self.desk.find_one({"_id": target}, session=session)
        assigned = await self.assignments.find_one({"_id": target}, session=session)
        if doc is None or assigned is None:
            return None
        return Desk(
            ticket=pb.from_doc(doc["ticket"], ticket_pb2.Ticket),
            assigned=pb.from_doc(assigned, events_pb2.TicketAssigned),
            queue=pb.from_doc(doc["queue"], routing_pb2.QueueEntry) if doc.get("queue") else None,
            ret=pb.from_doc(doc["ret"], routing_pb2.PendingReturn) if doc.get("ret") else None,
            review=pb.from_doc(doc["review"], routing_pb2.JointReview) if doc.get("review") else None,
            subs=[pb.from_doc(s, routing_pb2.SubDispatched) for s in doc.get("subs", [])],
        )

    async def save(self, state: Desk, session: Any = None) -> None:
        tid = state.ticket.ticket_id
        doc: Doc = {"ticket": pb.to_doc(state.ticket), "subs": [pb.to_doc(s) for s in state.subs]}
        unset: Doc = {}
        for name, value in (("queue", state.queue), ("ret", state.ret), ("review", state.review)):
            if value is None:
                unset[name] = ""
            else:
                doc[name] = pb.to_doc(value)
        await self.desk.update_one({"_id": tid}, {"$set": doc, **({"$unset": unset} if unset else {})},
                                   upsert=True, session=session)
        self.waiting.note(tid, pb.dt(state.queue.arrived_at) if state.queue is not None else None)
        await self.assignments.replace_one({"_id": tid}, {"_id": tid, **pb.to_doc(state.assigned)}, upsert=True,
                                           session=session)
        if state.list_after is not None:
            await self.lists.save(state.list_after, session)
        for example in state.examples:
            await self.examples.replace_one({"_id": example["_id"]}, example, upsert=True, session=session)

    async def queue(self, limit: int = 50) -> list[routing_pb2.QueueEntry]:
        docs = await self.desk.find({"queue": {"$exists": True}}, {"queue": 1}).sort(
            "queue.arrived_at", 1).limit(limit).to_list()
        return [pb.from_doc(d["queue"], routing_pb2.QueueEntry) for d in docs]

    async def queue_stats(self) -> tuple[int, datetime | None]:
        """Queue length and the oldest arrival waiting."""
        length = await self.desk.count_documents({"queue": {"$exists": True}})
        oldest = await self.queue(1)
        return length, (pb.dt(oldest[0].arrived_at) if oldest else None)

    async def queue_gauges(self, reconcile_seconds: float = 3600.0) -> tuple[int, datetime | None]:
        """The queue's length and oldest arrival for the gauges, from the ledger this store's writes
        keep (no store round trip); read in full first and every ``reconcile_seconds`` (the writes of
        another replica, a command whose transaction failed after it saved)."""
        if self.waiting.stale(reconcile_seconds):
            self.waiting.begin_reconcile()
            docs = await self.desk.find({"queue": {"$exists": True}}, {"queue.arrived_at": 1}).to_list()
            self.waiting.reconcile((d["_id"], d["queue"].get("arrived_at")) for d in docs)
        return self.waiting.figures()

    async def returns(self, unit_id: str = "", pending_only: bool = False,
                      limit: int = 200) -> list[routing_pb2.PendingReturn]:
        query: Doc = {"ret": {"$exists": True}}
        if unit_id:
            query["ret.unit_id"] = unit_id
        if pending_only:
            query["ret.status"] = "RETURN_STATUS_REQUESTED"
        docs = await self.desk.find(query, {"ret": 1}).sort("_id", 1).limit(limit).to_list()
        return [pb.from_doc(d["ret"], routing_pb2.PendingReturn) for d in docs]

    async def reviews(self, status: str = "", limit: int = 200) -> list[routing_pb2.JointReview]:
        """联席研判: the joint reviews (in one ``status``, e.g. "REVIEW_STATUS_OPEN"), oldest opened first."""
        query: Doc = {"review": {"$exists": True}}
        if status:
            query["review.status"] = status
        docs = await self.desk.find(query, {"review": 1}).sort([("review.opened_at", 1), ("_id", 1)]).limit(
            limit).to_list()
        return [pb.from_doc(d["review"], routing_pb2.JointReview) for d in docs]

    async def labelled_examples(self) -> list[Doc]:
        """The office's decisions as labelled examples (for ``hotline classify retrain --from-store``)."""
        return await self.examples.find({}).sort("decided_at", 1).to_list()


class ListConflict(DomainError):
    """The list changed since the version a change was made from (failed_precondition: 409):
    load it again and retry."""

    def __init__(self, message: str) -> None:
        super().__init__("failed_precondition", message)


class ResponsibilityStore:
    """Versions of the first-responsible list (a repository: load the current, save the next), kept in the
    kit's versioned-policy store (hotline/policies.py, policy ``responsibility_list``): the newest version is
    the current list, every version keeps the change-log entry that made it."""

    kind = "responsibility_list"
    name = "responsibility_list"  # the policy's name in the kit's store

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.policies = PolicyStore(db, self.name)
        self.legacy = db[LEGACY_VERSIONS]  # before issue #20: copied into the policy store once (ensure)

    async def load(self, target: str = CURRENT, session: Any = None) -> ListVersion | None:
        found = await self.policies.load(session=session)
        return _from_doc(found.doc) if found else None

    async def save(self, state: ListVersion, session: Any = None) -> None:
        """Store ``state`` as the current version, if the current one is still the version it was
        made from (``entry.previous_version``); else :class:`ListConflict`. Adds it to the history."""
        listing, entry = state.listing, state.entry
        current = await self.policies.load(session=session)
        if current is not None and not entry.previous_version:
            raise ListConflict("the list is stored already")
        if entry.previous_version and (current is None or current.doc["list_version"] != entry.previous_version):
            raise ListConflict(f"the list is no longer at version {entry.previous_version}")
        if current is not None and listing.version <= current.version:
            raise ListConflict(f"version {listing.version} is stored already")
        version = PolicyVersion(self.name, listing.version, _to_doc(state), entry.actor, entry.at, entry.reason)
        try:
            await self.policies.save(version, session=session)
        except DomainError as exc:  # a concurrent save of the same version number
            raise ListConflict(f"version {listing.version} is stored already") from exc

    async def ensure(self, shipped: Listing, actor: str, at: datetime) -> ListVersion:
        """The current list, seeded from the shipped file when the store has none, or when the
        file carries a higher version than the store (a new list shipped with a release)."""
        current = await self.load() or await self._adopt_legacy()
        if current is not None and current.listing.version >= shipped.version:
            if current.listing.version == shipped.version and current.listing.list_version != shipped.list_version:
                log.warning("the shipped list differs from the stored one at the same version; keeping the stored",
                            stored=current.listing.list_version, shipped=shipped.list_version)
            return current
        if current is None:
            first = seed(shipped, actor, at)
        else:
            first = seed(shipped, actor, at, "newer shipped list", previous=current.listing.list_version)
        try:
            await self.save(first)
        except ListConflict:  # another replica seeded it first
            stored = await self.load()
            assert stored is not None
            return stored
        return first

    async def _adopt_legacy(self) -> ListVersion | None:
        """A store written before the list moved to the policy store: its versions, oldest first, become the
        policy's versions (history kept); None when there are none."""
        for doc in await self.legacy.find({}).sort("_id", 1).to_list():
            state = _from_doc(doc)
            version = PolicyVersion(self.name, state.listing.version, _to_doc(state), state.entry.actor,
                                    state.entry.at, state.entry.reason)
            with contextlib.suppress(DomainError):  # another replica copied it first
                await self.policies.save(version)
        return await self.load()

    async def version(self, number: int, session: Any = None) -> ListVersion | None:
        found = await self.policies.get(number)
        return _from_doc(found.doc) if found else None

    async def history(self, limit: int = 50, session: Any = None) -> list[LogEntry]:
        """The change log, newest first."""
        return [LogEntry.from_doc(v.doc["change"]) for v in await self.policies.history(limit)]


def _to_doc(state: ListVersion) -> Doc:
    listing = state.listing
    return {"version": listing.version, "list_version": listing.list_version, "listing": listing.to_doc(),
            "change": state.entry.to_doc()}


def _from_doc(doc: Doc) -> ListVersion:
    return ListVersion(Listing.from_doc(doc["listing"]), LogEntry.from_doc(doc["change"]))


class QueueLedger:
    """Tickets waiting for manual dispatch (人工派单) and when each arrived, kept from the desk's
    writes (issue 21: the queue gauges were a count and a sorted read of the desk per batch of
    tickets). ``note`` is idempotent: a ticket's entry is replaced; None takes it off the queue."""

    def __init__(self) -> None:
        self.arrived: dict[str, datetime] = {}
        self._sorted: list[datetime] = []
        self._during: list[tuple[str, datetime | None]] | None = None
        self.reconciled_at: float | None = None  # monotonic seconds

    def note(self, ticket_id: str, arrived_at: datetime | None) -> None:
        if self._during is not None:
            self._during.append((ticket_id, arrived_at))
        old = self.arrived.pop(ticket_id, None)
        if old is not None:
            i = bisect.bisect_left(self._sorted, old)
            if i < len(self._sorted) and self._sorted[i] == old:
                del self._sorted[i]
        if arrived_at is not None:
            arrived_at = arrived_at if arrived_at.tzinfo else arrived_at.replace(tzinfo=UTC)
            self.arrived[ticket_id] = arrived_at
            bisect.insort(self._sorted, arrived_at)

    def stale(self, reconcile_seconds: float) -> bool:
        return self.reconciled_at is None or time.monotonic() - self.reconciled_at >= reconcile_seconds

    def begin_reconcile(self) -> None:
        self._during = []

    def reconcile(self, entries: Iterable[tuple[str, datetime | None]]) -> None:
        """Start again from a full read; the notes made while it read are applied again over it."""
        during, self._during = self._during or [], None
        self.arrived, self._sorted = {}, []
        for tid, at in entries:
            self.note(tid, at if isinstance(at, datetime) else None)
        for tid, at in during:
            self.note(tid, at)
        self.reconciled_at = time.monotonic()

    def figures(self) -> tuple[int, datetime | None]:
        return len(self.arrived), (self._sorted[0] if self._sorted else None)
