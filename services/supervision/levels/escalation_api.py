"""HTTP and gRPC adapters of supervision levels (督办), on-site meetings, merges and whistles
(吹哨报到). Thin: build the typed command (commands.py), ``handle`` it, return the answer; roles are in
hotline/policy.py, scope (a unit: its cases, its whistles) in the pure modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import HTMLResponse
from google.protobuf.message import Message

from hotline import auth
from hotline.api import as_json, grpc_idempotency_key, grpc_require, idempotency_key, parse_body
from hotline.auth import Principal
from hotline.commands import Illegal
from hotline.v1 import supervision_pb2 as sv
from hotline.v1 import supervision_pb2_grpc
from services.supervision.levels import commands as lc
from services.supervision.levels import escalation as esc
from services.supervision.levels import whistles as wh
from services.supervision.levels.escalation_store import EscalationCommands

MAX_PAGE = 500
Context = grpc.aio.ServicerContext[Any, Any]

# POST /cases/{ticket_id}/<path>: the typed command (its message is the body's), summary
CASE_COMMANDS: list[tuple[str, type[lc.SupervisionCommand], str]] = [
    ("supervision", lc.RaiseSupervision,
     "督办: raise a level (2 督办函, 3 作风监督员明察暗访, 4 领导领办; level 1 is the system's)"),
    ("supervision/close", lc.CloseSupervision, "督办办结: close a level with its outcome"),
    ("supervision/visits", lc.RecordVisit, "明察暗访记录 on an open level 3"),
    ("supervision/joint", lc.SetJointSupervision, "联合纪委监委督办 flag"),
    ("meeting", lc.ScheduleMeeting, "有请诉求人到场: flag the case with date and place"),
    ("meeting/outcome", lc.RecordMeeting, "到场会商结果"),
]
WHISTLE_COMMANDS: list[tuple[str, type[lc.WhistleCommand], str]] = [
    ("/whistles/{whistle_id}/report-in", lc.ReportIn, "报到: a summoned unit reports in"),
    ("/whistles/{whistle_id}/close", lc.CloseWhistle, "The street office records the outcome"),
]


def _case_route(api: APIRouter, commands: EscalationCommands, path: str, command_type: type[lc.SupervisionCommand],
                summary: str) -> None:
    message_type = command_type.message

    async def route(ticket_id: str, body: dict[str, Any] = Body(default_factory=dict),
                    who: Principal = Depends(auth.principal), key: str = Depends(idempotency_key)) -> dict[str, Any]:
        request = parse_body(body, message_type, ticket_id=ticket_id)
        return as_json(await commands.handle(command_type(request, who, key)))

    api.post(f"/cases/{{ticket_id}}/{path}", summary=summary, name=command_type.name,
             description=f"Body: the JSON of `hotline.v1.{message_type.DESCRIPTOR.name}` (supervision.proto). "
                         "Header Idempotency-Key is required. Answers the case's supervision.")(route)


def _whistle_route(api: APIRouter, commands: EscalationCommands, path: str, command_type: type[lc.WhistleCommand],
                   summary: str) -> None:
    message_type = command_type.message

    async def route(whistle_id: str, body: dict[str, Any] = Body(default_factory=dict),
                    who: Principal = Depends(auth.principal), key: str = Depends(idempotency_key)) -> dict[str, Any]:
        request = parse_body(body, message_type, whistle_id=whistle_id)
        return as_json(await commands.handle(command_type(request, who, key)))

    api.post(path, summary=summary, name=command_type.name)(route)


def shown(whistle: sv.Whistle, now: datetime) -> dict[str, Any]:
    """A whistle as JSON, with the summoned units late to report in (未按时报到) now."""
    return as_json(whistle) | {"overdue_units": wh.overdue(whistle, now)}


def escalation_routes(commands: EscalationCommands, tz: ZoneInfo) -> APIRouter:
    api = APIRouter(tags=["supervision levels", "whistles"])
    for path, command_type, summary in CASE_COMMANDS:
        _case_route(api, commands, path, command_type, summary)
    for path, whistle_type, summary in WHISTLE_COMMANDS:
        _whistle_route(api, commands, path, whistle_type, summary)

    @api.get("/cases/{ticket_id}/supervision", summary="督办: the case's supervision records, flags and merges")
    async def get_supervision(ticket_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return as_json((await commands.get(ticket_id, who)).supervision)

    @api.get("/cases/{ticket_id}/supervision/letter", response_class=HTMLResponse,
             summary="督办函 (HTML) of the case's latest level 2 supervision")
    async def supervision_letter(ticket_id: str, who: Principal = Depends(auth.principal)) -> HTMLResponse:
        state = await commands.get(ticket_id, who)
        record = next((r for r in reversed(state.supervision.records) if r.level == 2), None)
        if record is None:
            raise Illegal(f"case {ticket_id} has no supervision letter (no level 2 supervision)")
        return HTMLResponse(esc.letter(state, record, tz))

    @api.post("/merges", summary="并单: merge tickets under a parent case (body: MergeTicketsRequest); they close "
                                 "with the parent's result")
    async def merge_tickets(body: dict[str, Any] = Body(default_factory=dict), who: Principal = Depends(auth.principal),
                            key: str = Depends(idempotency_key)) -> dict[str, Any]:
        request = parse_body(body, sv.MergeTicketsRequest)
        assert isinstance(request, sv.MergeTicketsRequest)
        return as_json(await commands.merge(request, who, key))

    @api.get("/cases/{ticket_id}/merge-suggestions",
             summary="并单建议: open cases of the same street within a week, by text similarity and address")
    async def merge_suggestions(ticket_id: str, limit: int = Query(10, ge=1, le=50)) -> dict[str, Any]:
        found = await commands.suggestions(ticket_id, limit)
        return {"suggestions": [{"ticket_id": s.ticket_id, "score": s.score, "text_similarity": s.text_similarity,
                                 "same_address": s.same_address} for s in found]}

    @api.post("/recurring-lists/{month}", summary="屡办不成: find the month's (YYYY-MM) recurring unresolved "
                                                  "problems and add them to its list")
    async def generate_recurring(month: str, who: Principal = Depends(auth.principal),
                                 key: str = Depends(idempotency_key)) -> dict[str, Any]:
        return as_json(await commands.generate_recurring(month, who, key))

    @api.get("/recurring-lists/{month}", summary="屡办不成: the month's list with each item's state")
    async def get_recurring(month: str) -> dict[str, Any]:
        return as_json(await commands.recurring_list(month))

    @api.post("/recurring-lists/{month}/items/{digest}/resolution",
              summary="屡办不成: record how a problem was solved (body: {\"outcome\": ...})")
    async def resolve_recurring(month: str, digest: str, body: dict[str, Any] = Body(default_factory=dict),
                                who: Principal = Depends(auth.principal),
                                key: str = Depends(idempotency_key)) -> dict[str, Any]:
        request = parse_body(body, sv.ResolveRecurringItemRequest, item_id=f"{month}/{digest}")
        assert isinstance(request, sv.ResolveRecurringItemRequest)
        return as_json(await commands.resolve_recurring(request, who, key))

    @api.post("/whistles", summary="吹哨: a street office summons departments (body: BlowWhistleRequest)")
    async def blow_whistle(body: dict[str, Any] = Body(default_factory=dict), who: Principal = Depends(auth.principal),
                           key: str = Depends(idempotency_key)) -> dict[str, Any]:
        return as_json(await commands.handle(lc.BlowWhistle(parse_body(body, sv.BlowWhistleRequest), who, key)))

    @api.get("/whistles", summary="Whistles, newest first: a unit those it raised or is summoned to; "
                                  "overdue_units: summoned units late to report in")
    async def list_whistles(limit: int = Query(100, ge=1, le=MAX_PAGE),
                            who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        now = commands.clock.now()
        return {"whistles": [shown(w, now) for w in await commands.list_whistles(who, limit)]}

    @api.get("/whistles/{whistle_id}", summary="One whistle with each summoned unit's report-in")
    async def get_whistle(whistle_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return shown(await commands.get_whistle(whistle_id, who), commands.clock.now())

    return api


class EscalationGrpc(supervision_pb2_grpc.EscalationServiceServicer):
    def __init__(self, commands: EscalationCommands) -> None:
        self.commands = commands

    async def _case(self, command_type: type[lc.SupervisionCommand], request: Message,
                    context: Context) -> sv.CaseSupervision:
        answer: sv.CaseSupervision = await self.commands.handle(
            command_type(request, auth.current(), grpc_idempotency_key(context)))
        return answer

    async def _whistle(self, command_type: type[lc.WhistleCommand], request: Message, context: Context) -> sv.Whistle:
        answer: sv.Whistle = await self.commands.handle(
            command_type(request, auth.current(), grpc_idempotency_key(context)))
        return answer

    async def RaiseSupervision(  # noqa: N802
            self, request: sv.RaiseSupervisionRequest, context: Context) -> sv.CaseSupervision:
        return await self._case(lc.RaiseSupervision, request, context)

    async def CloseSupervision(  # noqa: N802
            self, request: sv.CloseSupervisionRequest, context: Context) -> sv.CaseSupervision:
        return await self._case(lc.CloseSupervision, request, context)

    async def RecordVisit(self, request: sv.RecordVisitRequest, context: Context) -> sv.CaseSupervision:  # noqa: N802
        return await self._case(lc.RecordVisit, request, context)

    async def SetJointSupervision(  # noqa: N802
            self, request: sv.SetJointSupervisionRequest, context: Context) -> sv.CaseSupervision:
        return await self._case(lc.SetJointSupervision, request, context)

    async def ScheduleMeeting(  # noqa: N802
            self, request: sv.ScheduleMeetingRequest, context: Context) -> sv.CaseSupervision:
        return await self._case(lc.ScheduleMeeting, request, context)

    async def RecordMeeting(  # noqa: N802
            self, request: sv.RecordMeetingRequest, context: Context) -> sv.CaseSupervision:
        return await self._case(lc.RecordMeeting, request, context)

    async def MergeTickets(  # noqa: N802
            self, request: sv.MergeTicketsRequest, context: Context) -> sv.CaseSupervision:
        return await self.commands.merge(request, auth.current(), grpc_idempotency_key(context))

    async def GetSupervision(  # noqa: N802
            self, request: sv.GetSupervisionRequest, context: Context) -> sv.CaseSupervision:
        await grpc_require(context, bool(request.ticket_id), "ticket_id is required")
        return (await self.commands.get(request.ticket_id, auth.current())).supervision

    async def GenerateRecurringList(  # noqa: N802
            self, request: sv.GenerateRecurringListRequest, context: Context) -> sv.RecurringList:
        return await self.commands.generate_recurring(request.month, auth.current(), grpc_idempotency_key(context))

    async def GetRecurringList(  # noqa: N802
            self, request: sv.GetRecurringListRequest, context: Context) -> sv.RecurringList:
        return await self.commands.recurring_list(request.month)

    async def ResolveRecurringItem(  # noqa: N802
            self, request: sv.ResolveRecurringItemRequest, context: Context) -> sv.RecurringItem:
        return await self.commands.resolve_recurring(request, auth.current(), grpc_idempotency_key(context))

    async def BlowWhistle(self, request: sv.BlowWhistleRequest, context: Context) -> sv.Whistle:  # noqa: N802
        return await self._whistle(lc.BlowWhistle, request, context)

    async def ReportIn(self, request: sv.ReportInRequest, context: Context) -> sv.Whistle:  # noqa: N802
        return await self._whistle(lc.ReportIn, request, context)

    async def CloseWhistle(self, request: sv.CloseWhistleRequest, context: Context) -> sv.Whistle:  # noqa: N802
        return await self._whistle(lc.CloseWhistle, request, context)

    async def GetWhistle(self, request: sv.GetWhistleRequest, context: Context) -> sv.Whistle:  # noqa: N802
        await grpc_require(context, bool(request.whistle_id), "whistle_id is required")
        return await self.commands.get_whistle(request.whistle_id, auth.current())

    async def ListWhistles(  # noqa: N802
            self, request: sv.ListWhistlesRequest, context: Context) -> sv.ListWhistlesResponse:
        await grpc_require(context, 0 <= request.page_size <= MAX_PAGE, f"page_size must be 0..{MAX_PAGE}")
        return sv.ListWhistlesResponse(
            whistles=await self.commands.list_whistles(auth.current(), request.page_size or 100))
