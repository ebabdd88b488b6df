"""Deputy liaison's store: deputies (人大代表) and their submissions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline.mongo import Doc, insert_missing

INDEXES = {
    "submissions": [IndexModel([("deputy_id", ASCENDING), ("submitted_at", ASCENDING)])],
    "deputies": [IndexModel([("liaison_officer_id", ASCENDING)])],
    "ticket_facts": [IndexModel([("received_month", ASCENDING), ("street", ASCENDING)])],
    "monthly_lists": [IndexModel([("deputy_id", ASCENDING), ("month", ASCENDING)])],
}


class DeputyStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.deputies = db["deputies"]
        self.submissions = db["submissions"]
        self.officers = db["officers"]  # 人大联络员
        self.imports = db["imports"]  # each import of deputies (CSV/XLSX), with its rows
        self.ticket_facts = db["ticket_facts"]  # per ticket: month, street, community, category, place; no contact
        self.monthly_lists = db["monthly_lists"]  # 每月问题清单, one per month and deputy
        self.invitations = db["invitations"]  # whistle meetings (吹哨会议) deputies are invited to

    async def deputy(self, deputy_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        return await self.deputies.find_one({"_id": deputy_id}, {"_id": 0}, session=session)

    async def submission(self, submission_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        return await self.submissions.find_one({"_id": submission_id}, {"_id": 0}, session=session)

    async def of_deputy(self, deputy_id: str, limit: int) -> list[Doc]:
        return await self.submissions.find({"deputy_id": deputy_id}, {"_id": 0}).sort(
            "submitted_at", ASCENDING).limit(limit).to_list()

    async def all_deputies(self, officer_id: str = "") -> list[Doc]:
        query = {"liaison_officer_id": officer_id} if officer_id else {}
        return await self.deputies.find(query, {"_id": 0}).to_list()

    async def all_submissions(self) -> list[Doc]:
        return await self.submissions.find({}, {"_id": 0, "timeline": 0, "citizen": 0}).to_list()

    async def facts_of_month(self, month: str) -> list[Doc]:
        """Each ticket received in ``month``: its receipt's fields merged with its other facts (the
        category of its latest dispatch round, the overdue, redone and unsatisfied flags)."""
        merged: dict[str, Doc] = {}
        rounds: dict[str, int] = {}
        docs = await self.ticket_facts.find({"received_month": month}, {"_id": 0}).to_list()
        for d in sorted(docs, key=lambda d: (d.get("fact", ""), d.get("round", 0))):
            fact, round_ = d.pop("fact", ""), d.pop("round", 0)
            slot = merged.setdefault(d["ticket_id"], {})
            if fact == "category":
                if round_ < rounds.get(d["ticket_id"], 0):
                    continue
                rounds[d["ticket_id"]] = round_
            slot.update(d)
        return list(merged.values())

    async def merge_facts(self, facts: Sequence[Doc]) -> None:
        """Ticket facts from tickets, assignments and cases, insert-only: the receipt's under the
        ticket id, each other fact under ``<ticket>|<fact>[|<round>]`` (a replayed event finds its
        document and inserts nothing). Merged at read time (facts_of_month)."""
        docs: dict[str, Doc] = {}
        for f in facts:
            fact = f.get("fact")
            key = f["ticket_id"] if not fact else f"{f['ticket_id']}|{fact}" + (
                f"|{f['round']}" if "round" in f else "")
            docs.setdefault(key, {"_id": key, **f})
        if docs:
            await insert_missing(self.ticket_facts, list(docs.values()))

    async def record_steps(self, steps: Sequence[tuple[str, Doc, Doc]]) -> None:
        """Follow the cases of deputy tickets: each step (submission id, timeline entry, case view)
        joins the submission's timeline once, and the case view and status move forward only
        (by the case's revision), so replays and late duplicates change nothing."""
        writes: list[UpdateOne] = []
        for sid, entry, case in steps:
            writes.append(UpdateOne({"_id": sid}, {"$addToSet": {"timeline": entry}}))
            revision = int(case.get("revision", 0))
            writes.append(UpdateOne(
                {"_id": sid, "$or": [{"case_revision": {"$lt": revision}}, {"case_revision": {"$exists": False}}]},
                {"$set": {"case": case, "case_revision": revision, "status": entry["status"],
                          "status_text": entry["status_text"]}}))
        if writes:
            await self.submissions.bulk_write(writes, ordered=True)


class DeputyRepository:
    """Deputies on the command path (hotline/commands.py)."""

    kind = "deputy"

    def __init__(self, store: DeputyStore) -> None:
        self.store = store

    async def load(self, target: str, session: AsyncClientSession | None) -> Doc | None:
        return await self.store.deputy(target, session)

    async def save(self, state: Doc, session: AsyncClientSession | None) -> None:
        await self.store.deputies.replace_one({"_id": state["deputy_id"]}, state, upsert=True, session=session)


FOLLOWED = {"timeline", "case", "case_revision", "status", "status_text"}


class SubmissionRepository:
    kind = "submission"

    def __init__(self, store: DeputyStore) -> None:
        self.store = store

    async def load(self, target: str, session: AsyncClientSession | None) -> Doc | None:
        return await self.store.submission(target, session)

    async def save(self, state: Doc, session: AsyncClientSession | None) -> None:
        # the consumer owns the case view, status and timeline: a command never overwrites them
        mine = {k: v for k, v in state.items() if k not in FOLLOWED}
        await self.store.submissions.update_one({"_id": state["submission_id"]},
                                                {"$set": mine, "$setOnInsert": {"status": state.get("status", "")}},
                                                upsert=True, session=session)


class DocRepository:
    """Documents of one collection on the command path, keyed by one field."""

    def __init__(self, collection: Any, kind: str, id_field: str) -> None:
        self.collection, self.kind, self.id_field = collection, kind, id_field

    async def load(self, target: str, session: AsyncClientSession | None) -> Doc | None:
        found: Doc | None = await self.collection.find_one({"_id": target}, {"_id": 0}, session=session)
        return found

    async def save(self, state: Doc, session: AsyncClientSession | None) -> None:
        await self.collection.replace_one({"_id": state[self.id_field]}, state, upsert=True, session=session)


class ImportRepository:
    """An import batch and the deputies it brings, saved together (one command)."""

    kind = "deputy_import"

    def __init__(self, store: DeputyStore) -> None:
        self.store = store

    async def load(self, target: str, session: Any) -> Doc | None:
        found: Doc | None = await self.store.imports.find_one({"_id": target}, {"_id": 0}, session=session)
        return found

    async def save(self, state: Doc, session: Any) -> None:
        await self.store.imports.replace_one({"_id": state["import_id"]}, state, upsert=True, session=session)
        for deputy in state["deputies"]:
            await self.store.deputies.replace_one({"_id": deputy["deputy_id"]}, deputy, upsert=True, session=session)


class MonthRepository:
    """A month's lists: one document per deputy (read by the deputy), one marker per month."""

    kind = "monthly_lists"

    def __init__(self, store: DeputyStore) -> None:
        self.store = store

    async def load(self, target: str, session: Any) -> Doc | None:
        found: Doc | None = await self.store.monthly_lists.find_one({"_id": f"month/{target}"}, {"_id": 0},
                                                                    session=session)
        return found

    async def save(self, state: Doc, session: Any) -> None:
        for x in state["lists"]:
            await self.store.monthly_lists.replace_one({"_id": x["list_id"]}, x, upsert=True, session=session)
        await self.store.monthly_lists.replace_one(
            {"_id": f"month/{state['month']}"}, {"month": state["month"], "marker": True, "items": state["items"],
                                                 "deputies": len(state["lists"]),
                                                 "policy_version": state.get("policy_version", "")},
            upsert=True, session=session)
