"""The audit trail (留痕): every state change of a ticket, assignment, case, list item, policy
or deputy record, with who (subject and role), when, what, why, and the record before and
after. Each service keeps its own ``audit`` collection; commands write their entry in the
same transaction as the change (hotline/commands.py), consumers in the same batch as theirs
(with a deterministic id, so a replay writes nothing twice). The office and admins query it
by ticket or actor through ``GET /audit`` on every service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from fastapi import APIRouter, HTTPException, Query, Request
from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline import masking
from hotline.mongo import Doc, insert_missing
from hotline.policy import Role

COLLECTION = "audit"
INDEXES = {
    COLLECTION: [
        IndexModel([("ticket_id", DESCENDING), ("at", DESCENDING)]),
        IndexModel([("actor.subject", DESCENDING), ("at", DESCENDING)]),
    ]
}


def entry(
    *, at: datetime, actor: dict[str, str], action: str, kind: str, target_id: str, ticket_id: str = "",
    reason: str = "", before: Doc | None = None, after: Doc | None = None, entry_id: str | None = None,
) -> Doc:
    return {
        "_id": entry_id or ObjectId(), "at": at, "actor": actor, "action": action, "kind": kind,
        "target_id": target_id, "ticket_id": ticket_id or target_id, "reason": reason,
        # issue #19: snapshots keep no caller or citizen contact (the trail is kept far longer than they are)
        "before": masking.strip_contact(before), "after": masking.strip_contact(after),
    }


def system_actor(service: str) -> dict[str, str]:
    return {"subject": f"service:{service}", "role": str(Role.SYSTEM)}


async def record(db: AsyncDatabase[Doc], entries: Sequence[Doc], session: AsyncClientSession | None = None) -> None:
    """Store entries; one already stored under the same id (a replay) is kept as it was."""
    await insert_missing(db[COLLECTION], entries, session)


def routes(db: AsyncDatabase[Doc]) -> APIRouter:
    api = APIRouter(tags=["audit"])

    @api.get("/audit", summary="Audit trail (留痕) of this service by ticket or actor, newest first")
    async def audit_trail(
        request: Request, ticket_id: str = Query("", max_length=128), actor: str = Query("", max_length=200),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        if not ticket_id and not actor:
            raise HTTPException(400, "give ticket_id or actor (a token subject)")
        who = getattr(request.state, "principal", None)
        entries = await query(db, ticket_id, actor, limit)
        # the one masking table (entries written before issue #19 may still hold contact)
        return {"entries": [masking.mask_doc(e, who.role if who else None) for e in entries]}

    return api


async def query(db: AsyncDatabase[Doc], ticket_id: str, actor: str, limit: int) -> list[Doc]:
    wanted: dict[str, Any] = {}
    if ticket_id:
        wanted["ticket_id"] = ticket_id
    if actor:
        wanted["actor.subject"] = actor
    docs = await db[COLLECTION].find(wanted).sort("at", DESCENDING).limit(limit).to_list()
    for d in docs:
        d["_id"] = str(d["_id"])
    return docs
