"""Intake's store: the canonical ticket records (``tickets``), the repeat index
(``repeat_keys``: for each caller phone or address, the latest tickets that named it) and the
units handling each ticket (``ticket_units``: one small document per ticket and set of units
assigned, ``_id`` = ticket id + "|" + the units, inserted: a replay or the same units again insert
nothing; read by ``_id`` range). A ticket received is written by ReceiveTicket's repository
(commands.py TicketRepository), with its repeat keys, in the consumer batch's transaction.
Issue #21: the units were an ``$addToSet`` on the ticket's own document, which the store rewrites
whole with its index entries (~3x an insert of a small one)."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.mongo import Doc, find_in, insert_missing
from hotline.v1 import ticket_pb2

INDEXES = {"tickets": [IndexModel([("ingested_at", DESCENDING)]), IndexModel([("received_at", ASCENDING)])],
           "repeat_keys": [], "ticket_units": []}
UNITS_SEP = "|"  # ticket id | units: a ticket's documents are the _id range [id|, id}) ("}" follows "|")
MAX_REPEAT_LINKS = 5


class TicketStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.tickets = db["tickets"]
        self.repeat_keys = db["repeat_keys"]
        self.units = db["ticket_units"]

    async def get(self, ticket_id: str) -> ticket_pb2.Ticket | None:
        doc = await self.tickets.find_one({"_id": ticket_id})
        return pb.from_doc(doc, ticket_pb2.Ticket) if doc else None

    async def get_with_units(self, ticket_id: str) -> tuple[ticket_pb2.Ticket, set[str]] | None:
        """The ticket and the units handling it (primary and assisting, every dispatch round)."""
        doc = await self.tickets.find_one({"_id": ticket_id})
        if not doc:
            return None
        units = set(doc.get("handling_units", []))  # as stored before ticket_units
        async for d in self.units.find({"_id": {"$gte": ticket_id + UNITS_SEP, "$lt": ticket_id + "}"}}):
            units.update(d["units"])
        return pb.from_doc(doc, ticket_pb2.Ticket), units

    async def add_handling_units(self, units: dict[str, set[str]]) -> None:
        """The units assigned to each ticket: one insert for the batch."""
        await insert_missing(self.units, [
            {"_id": tid + UNITS_SEP + ",".join(sorted(ids)), "units": sorted(ids)}
            for tid, ids in units.items() if ids])

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, ticket_pb2.Ticket]:
        return {d["_id"]: pb.from_doc(d, ticket_pb2.Ticket) for d in await find_in(self.tickets, ticket_ids)}

    async def recent(self, limit: int) -> list[ticket_pb2.Ticket]:
        docs = await self.tickets.find({}).sort("ingested_at", DESCENDING).limit(limit).to_list()
        return [pb.from_doc(d, ticket_pb2.Ticket) for d in docs]
