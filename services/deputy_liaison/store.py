"""Deputy liaison's store: deputies (人大代表) and their submissions."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline.mongo import Doc

INDEXES = {
    "submissions": [IndexModel([("deputy_id", ASCENDING), ("submitted_at", ASCENDING)])],
    "deputies": [IndexModel([("liaison_officer_id", ASCENDING)])],
}


class DeputyStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.deputies = db["deputies"]
        self.submissions = db["submissions"]

    async def deputy(self, deputy_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        return await self.deputies.find_one({"_id": deputy_id}, {"_id": 0}, session=session)

    async def submission(self, submission_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        return await self.submissions.find_one({"_id": submission_id}, {"_id": 0}, session=session)

    async def of_deputy(self, deputy_id: str, limit: int) -> list[Doc]:
        return await self.submissions.find({"deputy_id": deputy_id}, {"_id": 0}).sort(
            "submitted_at", ASCENDING).limit(limit).to_list()

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


class SubmissionRepository:
    kind = "submission"

    def __init__(self, store: DeputyStore) -> None:
        self.store = store

    async def load(self, target: str, session: AsyncClientSession | None) -> Doc | None:
        return await self.store.submission(target, session)

    async def save(self, state: Doc, session: AsyncClientSession | None) -> None:
        await self.store.submissions.insert_one({"_id": state["submission_id"], **state}, session=session)
