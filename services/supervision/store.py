"""Supervision's store: one case per ticket (collection ``cases``).

Each open case carries ``next_deadline``: the due time of the clock now running (sign-off
while awaiting sign-off, the reply deadline after). Two indexes serve every query: lists by
state or by unit, most urgent first, and the deadline scan. (Each secondary index entry
costs ~0.1 ms per insert in the development store, so there are no more than needed.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import audit, pb
from hotline.mongo import Doc, find_in, insert_missing
from hotline.v1 import events_pb2

INDEXES = {
    "cases": [
        IndexModel([("state", ASCENDING), ("next_deadline", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("primary_unit.unit_id", ASCENDING), ("next_deadline", ASCENDING), ("_id", ASCENDING)]),
    ]
}


def next_deadline(case: events_pb2.Case) -> datetime | None:
    if case.state == events_pb2.CASE_STATE_AWAITING_SIGN_OFF:
        return pb.dt(case.sign_off_due)
    if case.state in (events_pb2.CASE_STATE_IN_PROGRESS, events_pb2.CASE_STATE_SENT_BACK):
        return pb.dt(case.reply_due)
    return None


def page_token(case: events_pb2.Case) -> str:
    due = next_deadline(case)
    return f"{due.isoformat() if due else ''}|{case.ticket_id}"


class CaseStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.cases = db["cases"]

    async def get_many(self, ticket_ids: Sequence[str]) -> dict[str, events_pb2.Case]:
        return {d["_id"]: pb.from_doc(d, events_pb2.Case) for d in await find_in(self.cases, ticket_ids)}

    async def get(self, ticket_id: str) -> events_pb2.Case | None:
        return (await self.get_many([ticket_id])).get(ticket_id)

    async def insert_new(self, cases: Sequence[events_pb2.Case]) -> set[str]:
        docs = [{"_id": c.ticket_id, **pb.to_doc(c), "next_deadline": next_deadline(c)} for c in cases]
        existed = await insert_missing(self.cases, docs)
        await audit.record(self.db, [audit.entry(
            at=pb.dt(c.opened_at), actor=audit.system_actor("supervision"), action="open_case", kind="case",
            target_id=c.ticket_id, entry_id=f"{c.ticket_id}/opened/{c.dispatch_round}",
            reason=f"assigned to {c.primary_unit.unit_id}",
        ) for c in cases if c.ticket_id not in existed])
        return existed

    async def list(self, state: str | None, unit_id: str | None, after: str, limit: int) -> list[events_pb2.Case]:
        """Cases by state and/or primary unit, most urgent first; ``after`` is a page token."""
        query: dict[str, Any] = {}
        if state:
            query["state"] = state
        if unit_id:
            query["primary_unit.unit_id"] = unit_id
        if after:
            due_text, _, last_id = after.partition("|")
            due = datetime.fromisoformat(due_text) if due_text else None
            query["$or"] = [{"next_deadline": {"$gt": due}}, {"next_deadline": due, "_id": {"$gt": last_id}}]
        docs = await self.cases.find(query).sort([("next_deadline", ASCENDING), ("_id", ASCENDING)]) \
            .limit(limit).to_list()
        return [pb.from_doc(d, events_pb2.Case) for d in docs]
