"""Routing's store: one assignment record per ticket (collection ``assignments``), kept as the
TicketAssigned event it published, so a replay republishes exactly the same event."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import audit, pb
from hotline.mongo import Doc, find_in, insert_missing
from hotline.v1 import events_pb2

INDEXES: dict[str, list[IndexModel]] = {"assignments": []}  # looked up by _id (= ticket_id) only


class AssignmentStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.assignments = db["assignments"]

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, events_pb2.TicketAssigned]:
        docs = await find_in(self.assignments, ticket_ids)
        return {d["_id"]: pb.from_doc(d, events_pb2.TicketAssigned) for d in docs}

    async def get(self, ticket_id: str) -> events_pb2.TicketAssigned | None:
        return (await self.get_many([ticket_id])).get(ticket_id)

    async def insert_new(self, assigned: Sequence[events_pb2.TicketAssigned]) -> set[str]:
        """Insert; returns the ticket ids that were stored already (by another attempt)."""
        docs = [{"_id": a.assignment.ticket_id, **pb.to_doc(a)} for a in assigned]
        existed = await insert_missing(self.assignments, docs)
        await audit.record(self.db, [audit.entry(
            at=pb.dt(a.assignment.assigned_at), actor=audit.system_actor("routing"), action="assign",
            kind="assignment", target_id=a.assignment.ticket_id, reason=f"method {a.assignment.method}",
            after=doc, entry_id=f"{a.assignment.ticket_id}/assigned/{a.assignment.dispatch_round}",
        ) for a, doc in zip(assigned, docs, strict=True) if a.assignment.ticket_id not in existed])
        return existed
