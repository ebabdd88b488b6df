"""Deputy liaison's store: deputies (人大代表) and their submissions."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from hotline.envelope import Event
from hotline.mongo import Doc, insert_missing
from hotline.outbox import Outbox

INDEXES = {"submissions": [IndexModel([("deputy_id", ASCENDING), ("submitted_at", ASCENDING)])]}


class DeputyStore:
    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], outbox: Outbox) -> None:
        self.client = client
        self.deputies = db["deputies"]
        self.submissions = db["submissions"]
        self.outbox = outbox

    async def add_deputy(self, deputy: Doc) -> bool:
        """Registers a deputy; False if the id is taken."""
        return not await insert_missing(self.deputies, [{"_id": deputy["deputy_id"], **deputy}])

    async def deputy(self, deputy_id: str) -> Doc | None:
        return await self.deputies.find_one({"_id": deputy_id}, {"_id": 0})

    async def submit(self, submission: Doc, event: Event) -> None:
        """Store the submission and stage its event in one transaction (outbox)."""
        async with self.client.start_session() as session:
            async def write(s: Any) -> None:
                await self.submissions.insert_one({"_id": submission["submission_id"], **submission}, session=s)
                await self.outbox.stage([event], session=s)

            await session.with_transaction(write)

    async def submission(self, submission_id: str) -> Doc | None:
        return await self.submissions.find_one({"_id": submission_id}, {"_id": 0})

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
