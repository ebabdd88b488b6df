"""事前提醒 for the workbench (issue #22): ``GET /reminders`` lists the due-soon clocks of a unit's
open cases, each as the ``DeadlineReminder`` the notifications topic carried for it (same id, same
text: :func:`services.supervision.cases.core.reminders` builds both).

A clock is due soon when its due-soon alarm has fired (its stored stage moved on to ``due``) and its
limit has not passed yet; the clocks are the ones stored with each case (hotline/timers.py,
embedded), so the list is what the timers see, read-only. A unit sees the clocks that run against
it (primary or assisting unit), the office any unit's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pymongo.asynchronous.database import AsyncDatabase

from hotline import auth, pb
from hotline import timers as timers_module
from hotline.api import as_json
from hotline.auth import Principal
from hotline.clock import Clock
from hotline.mongo import Doc
from hotline.policy import Role
from hotline.timers import Fired, Stage, Timer
from hotline.v1 import events_pb2, reminders_pb2
from services.supervision.cases.api import unit_filter
from services.supervision.cases.core import reminders

MAX_CASES = 500  # open cases of one unit read per request
CLOSED = "CASE_STATE_ARCHIVED"


def due_soon(subject: str, stored: Mapping[str, Any] | None, now: datetime) -> list[Fired]:
    """The clocks of one case whose due-soon alarm fired and whose limit is still ahead, as the
    Fired stages that raised their reminders."""
    out = []
    for kind, clock in sorted(((stored or {}).get("clocks") or {}).items()):
        warn, due = clock.get("warn"), clock.get("due")
        if clock.get("stage") == Stage.DUE.value and warn is not None and due is not None and warn <= now < due:
            out.append(Fired(Timer(subject, kind, due, warn), Stage.DUE_SOON, warn))
    return out


def board(docs: Sequence[Doc], unit_id: str | None, now: datetime, tz: ZoneInfo,
          topic: str = "") -> list[reminders_pb2.DeadlineReminder]:
    """The reminders of these case documents for ``unit_id`` (None: every unit's), soonest first."""
    fired: list[Fired] = []
    cases: dict[str, events_pb2.Case] = {}
    for doc in docs:
        found = due_soon(str(doc["_id"]), doc.get(timers_module.FIELD), now)
        if found:
            fired += found
            cases[str(doc["_id"])] = pb.from_doc(doc, events_pb2.Case)
    out = [e.message for e in reminders(fired, cases, topic, tz)]
    mine = [r for r in out if isinstance(r, reminders_pb2.DeadlineReminder)
            and (unit_id is None or r.unit.unit_id == unit_id)]
    return sorted(mine, key=lambda r: (pb.dt(r.due_at), r.ticket_id, r.clock_key))


def reminder_routes(db: AsyncDatabase[Doc], clock: Clock, tz: ZoneInfo) -> APIRouter:
    api = APIRouter(tags=["cases"])
    cases = db["cases"]

    @api.get("/reminders", summary="事前提醒: the due-soon clocks of a unit's open cases (a unit its own), soonest "
                                   "first, as the DeadlineReminder the notifications topic carried")
    async def list_reminders(unit_id: str = Query("", description="the office: one unit's (empty: all)"),
                             who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        unit = unit_filter(who, unit_id)
        if who.role == Role.UNIT and not unit:  # a unit token without its unit sees nothing, never all
            return {"reminders": []}
        # only the cases with a warning running (hotline/timers.py ``warned``): a unit's hundreds of open
        # cases are not read, and none with a reminder is cut off by the page limit
        query: dict[str, Any] = {"state": {"$ne": CLOSED}, f"{timers_module.FIELD}.warned": {"$gt": clock.now()}}
        if unit:
            query["$or"] = [{"primary_unit.unit_id": unit}, {"assists.unit_id": unit}]
        docs = await cases.find(query).limit(MAX_CASES).to_list()
        return {"reminders": [as_json(r) for r in board(docs, unit, clock.now(), tz)]}

    return api
