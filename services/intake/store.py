"""Intake's store: the canonical ticket records (``tickets``) and the repeat index
(``repeat_keys``: for each caller phone or address, the latest tickets that named it), as the
APIs and retention read them. A ticket received is written by ReceiveTicket's repository
(commands.py TicketRepository), with its repeat keys, in the consumer batch's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.mongo import Doc, find_in
from hotline.v1 import ticket_pb2

INDEXES = {"tickets": [IndexModel([("ingested_at", DESCENDING)]), IndexModel([("received_at", ASCENDING)])],
           "repeat_keys": []}
MAX_REPEAT_LINKS = 5


class TicketStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.tickets = db["tickets"]
        self.repeat_keys = db["repeat_keys"]

    async def get(self, ticket_id: str) -> ticket_pb2.Ticket | None:
        doc = await self.tickets.find_one({"_id": ticket_id})
        return pb.from_doc(doc, ticket_pb2.Ticket) if doc else None

    async def get_with_units(self, ticket_id: str) -> tuple[ticket_pb2.Ticket, set[str]] | None:
        """The ticket and the units handling it (primary and assisting, every dispatch round)."""
        doc = await self.tickets.find_one({"_id": ticket_id})
        return (pb.from_doc(doc, ticket_pb2.Ticket), set(doc.get("handling_units", []))) if doc else None

    async def add_handling_units(self, units: dict[str, set[str]]) -> None:
        if units:
            await self.tickets.bulk_write(
                [UpdateOne({"_id": tid}, {"$addToSet": {"handling_units": {"$each": sorted(ids)}}})
                 for tid, ids in units.items()], ordered=False)

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, ticket_pb2.Ticket]:
        return {d["_id"]: pb.from_doc(d, ticket_pb2.Ticket) for d in await find_in(self.tickets, ticket_ids)}

    async def recent(self, limit: int) -> list[ticket_pb2.Ticket]:
        docs = await self.tickets.find({}).sort("ingested_at", DESCENDING).limit(limit).to_list()
        return [pb.from_doc(d, ticket_pb2.Ticket) for d in docs]
