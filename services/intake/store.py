"""Intake's store: the canonical ticket records (``tickets``), the repeat index
(``repeat_keys``: for each caller phone or address, the latest tickets that named it) and the
units handling each ticket (``ticket_units``: one small document per ticket and set of units
assigned, ``_id`` = ticket id + "|" + the units, inserted: a replay or the same units again insert
nothing; read by ``_id`` range). Issue #21: the units were an ``$addToSet`` on the ticket's own
document, which the store rewrites whole with its index entries (~3x an insert of a small one)."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from hotline import audit, pb
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

    async def insert_new(self, tickets: Sequence[ticket_pb2.Ticket]) -> set[str]:
        """Insert tickets not stored yet; returns the ids that already existed."""
        return await insert_missing(self.tickets, [{"_id": t.ticket_id, **pb.to_doc(t)} for t in tickets])

    async def existing_ids(self, ticket_ids: Sequence[str]) -> set[str]:
        return {d["_id"] for d in await find_in(self.tickets, ticket_ids, projection={"_id": 1})}

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

    async def audit_received(self, tickets: Sequence[ticket_pb2.Ticket]) -> None:
        if tickets:
            await audit.record(self.db, [audit.entry(
                at=pb.dt(t.ingested_at), actor=audit.system_actor("intake"), action="receive", kind="ticket",
                target_id=t.ticket_id, entry_id=f"{t.ticket_id}/received", reason=f"source {t.source}",
            ) for t in tickets])

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, ticket_pb2.Ticket]:
        return {d["_id"]: pb.from_doc(d, ticket_pb2.Ticket) for d in await find_in(self.tickets, ticket_ids)}

    async def earlier_by_keys(self, keys: Sequence[str]) -> dict[str, list[str]]:
        """For each repeat key, the latest tickets that named it, newest first."""
        return {d["_id"]: d["ids"][::-1] for d in await find_in(self.repeat_keys, keys)}

    async def remember_keys(self, additions: dict[str, list[str]], known: set[str]) -> None:
        """Append ticket ids to their keys' lists (callers pass only ids not there yet).

        Keys seen for the first time (most of them) are inserted, which costs half an update;
        ``known`` keys, and new ones another replica inserted meanwhile, are updated."""
        first_seen = [{"_id": k, "ids": ids[-MAX_REPEAT_LINKS:]} for k, ids in additions.items() if k not in known]
        raced = await insert_missing(self.repeat_keys, first_seen)
        updates = {k: ids for k, ids in additions.items() if k in known or k in raced}
        if updates:
            await self.repeat_keys.bulk_write(
                [UpdateOne({"_id": key}, {"$push": {"ids": {"$each": ids, "$slice": -MAX_REPEAT_LINKS}}}, upsert=True)
                 for key, ids in updates.items()],
                ordered=False,
            )

    async def recent(self, limit: int) -> list[ticket_pb2.Ticket]:
        docs = await self.tickets.find({}).sort("ingested_at", DESCENDING).limit(limit).to_list()
        return [pb.from_doc(d, ticket_pb2.Ticket) for d in docs]
