"""Intake's store: the canonical ticket records (collection ``tickets``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.mongo import Doc, insert_missing
from hotline.v1 import ticket_pb2

INDEXES = {
    "tickets": [
        IndexModel([("repeat_keys", ASCENDING), ("ingested_at", DESCENDING)]),
        IndexModel([("ingested_at", DESCENDING)]),
    ]
}
REPEAT_WINDOW = timedelta(days=30)
MAX_REPEAT_LINKS = 5


class TicketStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.tickets = db["tickets"]

    async def insert_new(self, tickets: Sequence[ticket_pb2.Ticket], keys: Sequence[list[str]]) -> set[str]:
        """Insert tickets not stored yet; returns the ids that already existed."""
        docs = [
            {"_id": t.ticket_id, **pb.to_doc(t), "repeat_keys": k} for t, k in zip(tickets, keys, strict=True)
        ]
        return await insert_missing(self.tickets, docs)

    async def get(self, ticket_id: str) -> ticket_pb2.Ticket | None:
        doc = await self.tickets.find_one({"_id": ticket_id})
        return pb.from_doc(doc, ticket_pb2.Ticket) if doc else None

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, ticket_pb2.Ticket]:
        docs = await self.tickets.find({"_id": {"$in": list(ticket_ids)}}).to_list()
        return {d["_id"]: pb.from_doc(d, ticket_pb2.Ticket) for d in docs}

    async def earlier_by_keys(self, keys: set[str], since: ticket_pb2.Ticket) -> dict[str, list[str]]:
        """For each repeat key, ids of stored tickets with that key in the repeat window."""
        if not keys:
            return {}
        cutoff = pb.dt(since.ingested_at) - REPEAT_WINDOW
        found: dict[str, list[str]] = {}
        cursor = self.tickets.find(
            {"repeat_keys": {"$in": sorted(keys)}, "ingested_at": {"$gte": cutoff}},
            {"_id": 1, "repeat_keys": 1},
        ).sort("ingested_at", DESCENDING).limit(50 * MAX_REPEAT_LINKS)
        async for doc in cursor:
            for key in doc.get("repeat_keys", []):
                if key in keys:
                    found.setdefault(key, []).append(doc["_id"])
        return found

    async def recent(self, limit: int) -> list[ticket_pb2.Ticket]:
        docs = await self.tickets.find({}).sort("ingested_at", DESCENDING).limit(limit).to_list()
        return [pb.from_doc(d, ticket_pb2.Ticket) for d in docs]
