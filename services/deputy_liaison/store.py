"""Deputy liaison's store: deputies (人大代表) and their submissions."""

from __future__ import annotations

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

    async def record_cases(self, updates: dict[str, Doc]) -> None:
        """Follow the cases of deputy tickets (idempotent: the latest case view is set)."""
        if updates:
            await self.submissions.bulk_write(
                [UpdateOne({"_id": sid}, {"$set": {"case": case, "status": "case_opened"}})
                 for sid, case in updates.items()],
                ordered=False,
            )


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
