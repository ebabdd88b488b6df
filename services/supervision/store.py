"""Supervision's store: one case per ticket (collection ``cases``)."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.mongo import Doc, insert_missing
from hotline.v1 import events_pb2

INDEXES = {
    "cases": [
        IndexModel([("state", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("primary_unit.unit_id", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("state", ASCENDING), ("sign_off_due", ASCENDING)]),
        IndexModel([("state", ASCENDING), ("reply_due", ASCENDING)]),
    ]
}


class CaseStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.cases = db["cases"]

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, events_pb2.Case]:
        docs = await self.cases.find({"_id": {"$in": list(ticket_ids)}}).to_list()
        return {d["_id"]: pb.from_doc(d, events_pb2.Case) for d in docs}

    async def get(self, ticket_id: str) -> events_pb2.Case | None:
        return (await self.get_many([ticket_id])).get(ticket_id)

    async def insert_new(self, cases: Sequence[events_pb2.Case]) -> set[str]:
        docs = [{"_id": c.ticket_id, **pb.to_doc(c)} for c in cases]
        return await insert_missing(self.cases, docs)

    async def list(self, state: str | None, unit_id: str | None, after: str, limit: int) -> list[events_pb2.Case]:
        query: dict[str, object] = {}
        if state:
            query["state"] = state
        if unit_id:
            query["primary_unit.unit_id"] = unit_id
        if after:
            query["_id"] = {"$gt": after}
        docs = await self.cases.find(query).sort("_id", ASCENDING).limit(limit).to_list()
        return [pb.from_doc(d, events_pb2.Case) for d in docs]
