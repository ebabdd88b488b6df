"""Supervision's HTTP and gRPC adapters."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import APIRouter, Depends, Query

from hotline import auth
from hotline.api import as_json, grpc_require
from hotline.auth import Principal
from hotline.commands import Invalid, NotFound
from hotline.policy import Role
from hotline.v1 import events_pb2, services_pb2, services_pb2_grpc
from services.supervision.store import CaseStore, page_token

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


def http_routes(store: CaseStore) -> APIRouter:
    api = APIRouter(tags=["cases"])

    @api.get("/cases/{ticket_id}", summary="One case (案件) with its deadlines")
    async def get_case(ticket_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return as_json(await visible_case(store, ticket_id, who))

    @api.get("/cases", summary="Cases by state and primary unit, most urgent deadline first")
    async def list_cases(
        state: str = "", unit_id: str = "", after: str = Query("", description="next_page_token of the last page"),
        limit: int = Query(50, ge=1, le=MAX_PAGE), who: Principal = Depends(auth.principal),
    ) -> dict[str, Any]:
        try:
            wanted = state_name(state)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        try:
            cases = await store.list(wanted, unit_filter(who, unit_id), after, limit)
        except ValueError as exc:
            raise Invalid(f"bad page token: {exc}") from exc
        return {"cases": [as_json(c) for c in cases],
                "next_page_token": page_token(cases[-1]) if len(cases) == limit else ""}

    return api


class SupervisionGrpc(services_pb2_grpc.SupervisionServiceServicer):
    def __init__(self, store: CaseStore) -> None:
        self.store = store

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
            cases = await self.store.list(state_name(request.state), units, request.page_token, size)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad page_token: {exc}")
        token = page_token(cases[-1]) if len(cases) == size else ""
        return services_pb2.ListCasesResponse(cases=cases, next_page_token=token)
