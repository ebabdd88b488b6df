"""Supervision's HTTP and gRPC adapters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from fastapi import APIRouter, Body, Depends, Query
from google.protobuf.message import Message

from hotline import auth
from hotline.api import as_json, grpc_idempotency_key, grpc_require, idempotency_key, parse_body
from hotline.auth import Principal
from hotline.commands import Invalid, NotFound
from hotline.policy import Role
from hotline.v1 import (
    events_pb2,
    knowledge_pb2,
    lifecycle_pb2,
    park_pb2,
    park_pb2_grpc,
    services_pb2,
    services_pb2_grpc,
)
from services.supervision.cases import actions
from services.supervision.cases import commands as cc
from services.supervision.cases.commands import CaseCommands
from services.supervision.cases.store import CaseStore, page_token

MAX_PAGE = 500


def state_name(value: str | int) -> str | None:
    """Accept a CaseState by name, short name (``in_progress``) or number; None = any."""
    if value in ("", 0, "CASE_STATE_UNSPECIFIED"):
        return None
    if isinstance(value, int):
        return events_pb2.CaseState.Name(events_pb2.CaseState.ValueType(value))
    name = value.upper()
    name = name if name.startswith("CASE_STATE_") else f"CASE_STATE_{name}"
    if name not in events_pb2.CaseState.keys():
        raise ValueError(f"unknown case state {value!r}")
    return name


def involves(case: events_pb2.Case, unit_id: str) -> bool:
    return unit_id in {u.unit_id for u in (case.primary_unit, *case.assisting_units)}


async def visible_case(store: CaseStore, ticket_id: str, who: Principal) -> events_pb2.Case:
    """The case, if ``who`` may see it: the office any, a unit those it is primary or assisting on."""
    case = await store.get(ticket_id)
    if case is None or (who.role == Role.UNIT and not involves(case, who.unit_id)):
        raise NotFound("case", ticket_id)
    return case


def unit_filter(who: Principal, unit_id: str) -> str | None:
    """Which unit's cases a listing shows: a unit only ever its own."""
    if who.role == Role.UNIT:
        if unit_id and unit_id != who.unit_id:
            raise NotFound("unit", unit_id)
        return who.unit_id
    return unit_id or None


# The lifecycle's HTTP commands: path (under /cases/{ticket_id}), command type (its request message and
# its name), summary. The JSON body is the request message's JSON mapping (either name style); ticket_id
# comes from the path.
COMMANDS: list[tuple[str, type[cc.CaseCommand], str]] = [
    ("sign-off", cc.SignOff, "签收: the primary unit signs off the case, an assisting unit its sub-case"),
    ("contacts", cc.RecordContact, "联系: record a contact with the citizen"),
    ("reply", cc.Reply, "办结反馈: the primary unit replies (result, text, explanation, attachments)"),
    ("extension", cc.RequestExtension, "延期申请: once, 1-10 working days"),
    ("extension/decision", cc.DecideExtension, "延期审批 (office)"),
    ("park", cc.Park, "挂账申请: a plan and a target date; the office decides (the clocks run until it approves)"),
    ("park/decision", cc.DecidePark, "挂账审批 (office): approved, the clocks the SLA policy's park_stops names "
                                     "stop"),
    ("resume", cc.Resume, "恢复办理: a parked case resumes; its stopped limits move by the time parked"),
    ("progress", cc.ReportProgress, "挂账进展: a progress report"),
    ("return", cc.RequestReturn, "退单申请: within the return limit; routing decides"),
    ("review", cc.Review, "审核 (office): pass sends the result to the city, fail sends the case back to redo"),
    ("redo-decision", cc.DecideRedo, "重办或结案 after a poor evaluation (office)"),
    ("contribution", cc.Contribute, "协办意见: an assisting unit contributes"),
    ("direct-answer", cc.DirectAnswer, "直接答复 (office): a consultation (咨询) answered with a knowledge article; "
                                       "reviewed like any reply"),
]


def _command_route(api: APIRouter, commands: CaseCommands, path: str, command_type: type[cc.CaseCommand],
                   summary: str) -> None:
    message_type = command_type.message

    async def route(ticket_id: str, body: dict[str, Any] = Body(default_factory=dict),
                    who: Principal = Depends(auth.principal), key: str = Depends(idempotency_key)) -> dict[str, Any]:
        return as_json(await commands.handle(command_type(parse_body(body, message_type, ticket_id=ticket_id),
                                                          who, key)))

    proto_file = message_type.DESCRIPTOR.file.name.rsplit("/", 1)[-1]
    api.post(f"/cases/{{ticket_id}}/{path}", summary=summary, name=command_type.name,
             description=f"Body: the JSON of `hotline.v1.{message_type.DESCRIPTOR.name}` ({proto_file}). "
                         "Header Idempotency-Key is required. Answers the case after the transition.")(route)


def http_routes(store: CaseStore, commands: CaseCommands) -> APIRouter:
    api = APIRouter(tags=["cases"])
    for path, command_type, summary in COMMANDS:
        _command_route(api, commands, path, command_type, summary)

    @api.post("/cases/{ticket_id}/assists/{unit_id}/waive", summary="免于协办 (office): the primary may reply "
                                                                     "without this assisting unit")
    async def waive_assist(ticket_id: str, unit_id: str, body: dict[str, Any] = Body(default_factory=dict),
                           who: Principal = Depends(auth.principal),
                           key: str = Depends(idempotency_key)) -> dict[str, Any]:
        request = parse_body(body, lifecycle_pb2.WaiveAssistRequest, ticket_id=ticket_id, unit_id=unit_id)
        return as_json(await commands.handle(cc.WaiveAssist(request, who, key)))

    @api.post("/cases/{ticket_id}/callback", summary="回访 (office) of a deputy's ticket the deputy did not rate "
                                                     "within the SLA policy's deputy_callback limit")
    async def office_callback(ticket_id: str, body: dict[str, Any] = Body(default_factory=dict),
                              who: Principal = Depends(auth.principal),
                              key: str = Depends(idempotency_key)) -> dict[str, Any]:
        from services.supervision.cases.deputy_closure import json_body

        request = parse_body(json_body(body), lifecycle_pb2.CityEvaluation, city_ticket_id=ticket_id)
        return as_json(await commands.handle(cc.OfficeCallback(request, who, key)))

    @api.get("/cases/{ticket_id}/history", summary="案件流转记录: every step with its actor and reason")
    async def history(ticket_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        await visible_case(store, ticket_id, who)
        return as_json(await commands.history(ticket_id))

    @api.get("/cases/{ticket_id}/actions",
             summary="可办理的操作: the actions the caller may take on the case now (state, role, unit), with labels")
    async def case_actions(ticket_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        case = await visible_case(store, ticket_id, who)
        return {"ticket_id": case.ticket_id, "state": events_pb2.CaseState.Name(case.state),
                "actions": [offered.as_json() for offered in actions.allowed(case, who)]}

    @api.get("/cases/{ticket_id}", summary="One case (案件) with its deadlines")
    async def get_case(ticket_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return as_json(await visible_case(store, ticket_id, who))

    @api.get("/cases", summary="Cases by state and primary (or assisting) unit, most urgent deadline first")
    async def list_cases(
        state: str = "", unit_id: str = "", after: str = Query("", description="next_page_token of the last page"),
        limit: int = Query(50, ge=1, le=MAX_PAGE), who: Principal = Depends(auth.principal),
        assisting: bool = Query(False, description="the unit's assisting sub-cases (协办) instead of its own"),
    ) -> dict[str, Any]:
        try:
            wanted = state_name(state)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        try:
            cases = await store.list(wanted, unit_filter(who, unit_id), after, limit, assisting)
        except ValueError as exc:
            raise Invalid(f"bad page token: {exc}") from exc
        return {"cases": [as_json(c) for c in cases],
                "next_page_token": page_token(cases[-1]) if len(cases) == limit else ""}

    return api


Context = grpc.aio.ServicerContext[Any, Any]


class SupervisionGrpc(services_pb2_grpc.SupervisionServiceServicer):
    def __init__(self, store: CaseStore, commands: CaseCommands) -> None:
        self.store = store
        self.commands = commands

    def _run(self, command_type: type[cc.CaseCommand]) -> Callable[[Message, Context], Awaitable[events_pb2.Case]]:
        async def call(request: Message, context: Context) -> events_pb2.Case:
            return await self.commands.handle(command_type(request, auth.current(), grpc_idempotency_key(context)))

        return call

    async def SignOff(self, request: lifecycle_pb2.SignOffRequest, context: Context) -> events_pb2.Case:  # noqa: N802
        return await self._run(cc.SignOff)(request, context)

    async def RecordContact(  # noqa: N802
            self, request: lifecycle_pb2.RecordContactRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.RecordContact)(request, context)

    async def Reply(self, request: lifecycle_pb2.ReplyRequest, context: Context) -> events_pb2.Case:  # noqa: N802
        return await self._run(cc.Reply)(request, context)

    async def RequestExtension(  # noqa: N802
            self, request: lifecycle_pb2.RequestExtensionRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.RequestExtension)(request, context)

    async def DecideExtension(  # noqa: N802
            self, request: lifecycle_pb2.DecideExtensionRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.DecideExtension)(request, context)

    async def Park(self, request: lifecycle_pb2.ParkRequest, context: Context) -> events_pb2.Case:  # noqa: N802
        return await self._run(cc.Park)(request, context)

    async def ReportProgress(  # noqa: N802
            self, request: lifecycle_pb2.ReportProgressRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.ReportProgress)(request, context)

    async def RequestReturn(  # noqa: N802
            self, request: lifecycle_pb2.RequestReturnRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.RequestReturn)(request, context)

    async def Review(self, request: lifecycle_pb2.ReviewRequest, context: Context) -> events_pb2.Case:  # noqa: N802
        return await self._run(cc.Review)(request, context)

    async def DecideRedo(  # noqa: N802
            self, request: lifecycle_pb2.DecideRedoRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.DecideRedo)(request, context)

    async def Contribute(  # noqa: N802
            self, request: lifecycle_pb2.ContributeRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.Contribute)(request, context)

    async def WaiveAssist(  # noqa: N802
            self, request: lifecycle_pb2.WaiveAssistRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.WaiveAssist)(request, context)

    async def DirectAnswer(  # noqa: N802
            self, request: knowledge_pb2.DirectAnswerRequest, context: Context) -> events_pb2.Case:
        return await self._run(cc.DirectAnswer)(request, context)

    async def GetCaseHistory(  # noqa: N802
            self, request: lifecycle_pb2.GetCaseHistoryRequest, context: Context) -> lifecycle_pb2.CaseHistory:
        await grpc_require(context, bool(request.ticket_id), "ticket_id is required")
        await visible_case(self.store, request.ticket_id, auth.current())
        return await self.commands.history(request.ticket_id)

    async def GetCase(  # noqa: N802
        self, request: services_pb2.GetCaseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> events_pb2.Case:
        await grpc_require(context, bool(request.ticket_id), "ticket_id is required")
        return await visible_case(self.store, request.ticket_id, auth.current())

    async def ListCases(  # noqa: N802
        self, request: services_pb2.ListCasesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> services_pb2.ListCasesResponse:
        await grpc_require(context, 0 <= request.page_size <= MAX_PAGE, f"page_size must be 0..{MAX_PAGE}")
        size = request.page_size or 50
        units = unit_filter(auth.current(), request.unit_id)
        try:
            cases = await self.store.list(state_name(request.state), units, request.page_token, size,
                                          request.assisting)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad page_token: {exc}")
        token = page_token(cases[-1]) if len(cases) == size else ""
        return services_pb2.ListCasesResponse(cases=cases, next_page_token=token)


class ParkGrpc(park_pb2_grpc.ParkServiceServicer):
    """挂账审批 and 恢复办理 over gRPC (issue #22)."""

    def __init__(self, commands: CaseCommands) -> None:
        self.commands = commands

    async def DecidePark(self, request: park_pb2.DecideParkRequest, context: Context) -> events_pb2.Case:  # noqa: N802
        return await self.commands.handle(cc.DecidePark(request, auth.current(), grpc_idempotency_key(context)))

    async def Resume(self, request: park_pb2.ResumeRequest, context: Context) -> events_pb2.Case:  # noqa: N802
        return await self.commands.handle(cc.Resume(request, auth.current(), grpc_idempotency_key(context)))
