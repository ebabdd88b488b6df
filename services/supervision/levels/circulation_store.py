"""Circulation of letters (公文流转): the store, the command side and the HTTP routes.

* ``letters``: one document per letter (Letter), found by addressee and by state;
* ``letter_register``: the next number of each year's register (登记簿), moved in the same
  transaction as the letter it numbers.

Every write is a typed command (commands.py) through the service's message bus (idempotency, audit, outbox);
roles are in hotline/policy.py, scope (a unit: its own letters) in services/supervision/levels/circulation.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import HTMLResponse
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import auth, pb
from hotline.api import as_json, idempotency_key
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.clock import Clock
from hotline.commands import Illegal, Invalid, NotFound
from hotline.mongo import Doc
from hotline.policy import Role
from hotline.v1 import circulation_pb2 as cp
from services.supervision.levels import circulation as circ
from services.supervision.levels import commands as lc
from services.supervision.levels import talks
from services.supervision.levels.repositories import (  # noqa: F401 (the repositories and collections, as before)
    LETTERS,
    REGISTER,
    TALKS,
    LetterRepository,
    RegisterRepository,
    TalkRepository,
)
from services.supervision.warnings import warnings as w
from services.supervision.warnings.warning_store import WarningStore

INDEXES = {LETTERS: [IndexModel([("unit_id", ASCENDING), ("sent_at", ASCENDING)]),
                     IndexModel([("state", ASCENDING), ("answer_due", ASCENDING)])],
           TALKS: [IndexModel([("unit_id", ASCENDING), ("held_at", ASCENDING)])]}
MAX_LIST = 500


class Circulation:
    """公文流转 and 约谈 for the routes: build the typed command (commands.py), ``bus.handle`` it."""

    def __init__(self, bus: MessageBus, db: AsyncDatabase[Doc], clock: Clock, topic: str, tz: ZoneInfo,
                 warnings: WarningStore, known_unit: Callable[[str], bool]) -> None:
        self.bus, self.db, self.clock, self.topic, self.tz = bus, db, clock, topic, tz
        self.warnings, self.known_unit = warnings, known_unit
        self.letters = LetterRepository(db)
        self.talks = TalkRepository(db)

    async def record_talk(self, request: dict[str, Any], who: Principal, key: str) -> dict[str, Any]:
        try:
            held = datetime.fromisoformat(str(request.get("held_at", ""))).isoformat()
        except ValueError:
            held = ""
        tid = talks.talk_id(str(request.get("unit_id", "")).strip(), held)
        answer: dict[str, Any] = await self.bus.handle(lc.RecordTalk(request, who, key, ref=tid))
        return answer

    async def talk_follow_up(self, tid: str, request: dict[str, Any], who: Principal, key: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.bus.handle(
            lc.RecordTalkFollowUp(request, who, key, ref=tid))
        return answer

    async def list_talks(self, who: Principal, unit_id: str = "", limit: int = 100) -> list[dict[str, Any]]:
        query: Doc = {"unit_id": who.unit_id} if who.role == Role.UNIT else ({"unit_id": unit_id} if unit_id else {})
        docs = await self.db[TALKS].find(query).sort("held_at", -1).limit(limit).to_list()
        return [talks.shown(d) for d in docs]

    async def send(self, request: dict[str, Any], who: Principal, key: str) -> cp.Letter:
        kind, ref, unit = (str(request.get(k, "")) for k in ("kind", "ref", "unit_id"))
        if kind in ("warning_letter", "sentiment_report"):  # about a stored warning; a 专报 about a 舆情 one
            warning = await self.warnings.get(ref)
            if warning is None:
                raise NotFound("warning", ref)
            if kind == "sentiment_report" and warning.kind != "keyword":
                raise Illegal(f"a 舆情预警专报 is about a 舆情 (keyword) warning; {ref} is a {warning.kind} warning")
            request = {"title": f"{w.KIND_NAMES.get(warning.kind, warning.kind)}（{warning.street or '全区'}）",
                       "body": warning.explanation, **request}
        lid = circ.letter_id(kind, ref, unit)
        answer: cp.Letter = await self.bus.handle(lc.SendLetter(request, who, key, ref=lid))
        return answer

    async def acknowledge(self, lid: str, who: Principal, key: str) -> cp.Letter:
        answer: cp.Letter = await self.bus.handle(lc.AcknowledgeLetter({}, who, key, ref=lid))
        return answer

    async def answer(self, lid: str, request: dict[str, Any], who: Principal, key: str) -> cp.Letter:
        answer: cp.Letter = await self.bus.handle(lc.AnswerLetter(request, who, key, ref=lid))
        return answer

    async def get(self, lid: str, who: Principal) -> cp.Letter:
        return circ.visible(await self.letters.load(lid, None), lid, who)

    async def list(self, who: Principal, unit_id: str = "", kind: str = "", ref: str = "", state: str = "",
                   limit: int = 100) -> list[cp.Letter]:
        """Letters, newest first; ``state`` is sent | acknowledged | answered | overdue."""
        query: Doc = {}
        if who.role == Role.UNIT:
            query["unit_id"] = who.unit_id
        elif unit_id:
            query["unit_id"] = unit_id
        if kind:
            query["kind"] = kind
        if ref:
            query["ref"] = ref
        names = {"sent": "LETTER_STATE_SENT", "acknowledged": "LETTER_STATE_ACKNOWLEDGED",
                 "answered": "LETTER_STATE_ANSWERED"}
        if state == "overdue":
            query["state"] = {"$ne": names["answered"]}
            query["answer_due"] = {"$lt": self.clock.now()}
        elif state:
            if state not in names:
                raise Invalid(f"state is one of {', '.join([*names, 'overdue'])}, not {state!r}")
            query["state"] = names[state]
        docs = await self.db[LETTERS].find(query).sort("sent_at", -1).limit(limit).to_list()
        return [pb.from_doc(d, cp.Letter) for d in docs]


def shown(letter: cp.Letter, now: datetime) -> dict[str, Any]:
    return as_json(letter) | {"overdue": circ.overdue(letter, now),
                              "kind_name": circ.KINDS.get(letter.kind, (letter.kind,))[0]}


def circulation_routes(c: Circulation) -> APIRouter:
    api = APIRouter(tags=["circulation"])

    @api.post("/letters", summary="发函: send a warning letter, 督办函, list or 舆情预警专报 to a unit; numbered in "
                                  "the register with a deadline to answer (body: kind, ref, unit_id, title?, "
                                  "body?, answer_days?)")
    async def send_letter(body: dict[str, Any] = Body(default_factory=dict), who: Principal = Depends(auth.principal),
                          key: str = Depends(idempotency_key)) -> dict[str, Any]:
        return shown(await c.send(body, who, key), c.clock.now())

    @api.get("/letters", summary="The register (登记簿): letters newest first; a unit: its own. state: sent | "
                                 "acknowledged | answered | overdue (逾期未回复)")
    async def list_letters(unit_id: str = "", kind: str = "", ref: str = "", state: str = "",
                           limit: int = Query(100, ge=1, le=MAX_LIST),
                           who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        now = c.clock.now()
        return {"letters": [shown(x, now) for x in await c.list(who, unit_id, kind, ref, state, limit)]}

    @api.get("/letters/{letter_id}", summary="One letter with its answer")
    async def get_letter(letter_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return shown(await c.get(letter_id, who), c.clock.now())

    @api.get("/letters/{letter_id}/document", response_class=HTMLResponse, summary="The letter as a document (HTML)")
    async def letter_document(letter_id: str, who: Principal = Depends(auth.principal)) -> HTMLResponse:
        letter = await c.get(letter_id, who)
        content = ""
        if letter.kind == "warning_letter" and (warning := await c.warnings.get(letter.ref)) is not None:
            content = w.letter(warning, c.tz, letter.number)
            content = content[content.index("<body>") + 6: content.index("</body>")]
        return HTMLResponse(circ.document(letter, c.tz, content))

    @api.post("/letters/{letter_id}/acknowledgement", summary="签收: the addressee unit acknowledges the letter")
    async def acknowledge_letter(letter_id: str, who: Principal = Depends(auth.principal),
                                 key: str = Depends(idempotency_key)) -> dict[str, Any]:
        return shown(await c.acknowledge(letter_id, who, key), c.clock.now())

    @api.post("/letters/{letter_id}/answer", summary="回复: the addressee unit's answer (body: answer, attachments: "
                                                     "[http(s) references])")
    async def answer_letter(letter_id: str, body: dict[str, Any] = Body(default_factory=dict),
                            who: Principal = Depends(auth.principal),
                            key: str = Depends(idempotency_key)) -> dict[str, Any]:
        return shown(await c.answer(letter_id, body, who, key), c.clock.now())

    @api.get("/warnings/{warning_id}/special-report", response_class=HTMLResponse,
             summary="舆情预警专报 of a 舆情 (keyword) warning, with where its letters stand")
    async def special_report(warning_id: str, who: Principal = Depends(auth.principal)) -> HTMLResponse:
        warning = await c.warnings.get(warning_id)
        if warning is None:
            raise NotFound("warning", warning_id)
        if warning.kind != "keyword":
            raise Illegal(f"a 舆情预警专报 is made of a 舆情 (keyword) warning; {warning_id} is a {warning.kind} "
                          "warning")
        return HTMLResponse(circ.sentiment_report(warning, await c.list(who, ref=warning_id, limit=MAX_LIST), c.tz))

    @api.post("/talks", summary="约谈记录: who, when, why (the ranking: ranking_period, ranking_list black|red, rank, "
                                "score; reason), attendees, outcome, follow_up, follow_up_due")
    async def record_talk(body: dict[str, Any] = Body(default_factory=dict), who: Principal = Depends(auth.principal),
                          key: str = Depends(idempotency_key)) -> dict[str, Any]:
        return await c.record_talk(body, who, key)

    @api.post("/talks/{talk_id}/follow-up", summary="整改跟踪: what the unit did after the talk (body: note)")
    async def talk_follow_up(talk_id: str, body: dict[str, Any] = Body(default_factory=dict),
                             who: Principal = Depends(auth.principal),
                             key: str = Depends(idempotency_key)) -> dict[str, Any]:
        return await c.talk_follow_up(talk_id, body, who, key)

    @api.get("/talks", summary="约谈记录, newest first; a unit: its own")
    async def list_talks(unit_id: str = "", limit: int = Query(100, ge=1, le=MAX_LIST),
                         who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return {"talks": await c.list_talks(who, unit_id, limit)}

    @api.get("/talks/{talk_id}", summary="One talk with its follow-up")
    async def get_talk(talk_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return talks.shown(talks.visible(await c.talks.load(talk_id, None), talk_id, who))

    return api
