"""Routing's HTTP and gRPC adapters."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import APIRouter, Body, HTTPException
from google.protobuf import json_format

from hotline.api import as_json, grpc_found, grpc_require, not_found
from hotline.mongo import utcnow
from hotline.v1 import events_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from services.routing.core import Router, classifier_text
from services.routing.handlers import Classify, assignment_event
from services.routing.store import AssignmentStore


def dry_run(router: Router, classify: Classify | None, ticket: ticket_pb2.Ticket) -> events_pb2.Assignment:
    prediction = None
    if classify and router.needs_classifier(ticket):
        prediction = classify([classifier_text(ticket)])[0]
    return assignment_event(ticket, router.decide(ticket, prediction), 1, utcnow()).assignment


def http_routes(router: Router, store: AssignmentStore, classify: Classify | None) -> APIRouter:
    api = APIRouter(tags=["routing"])

    @api.get("/assignments/{ticket_id}", summary="The dispatch decision for a ticket")
    async def get_assignment(ticket_id: str) -> dict[str, Any]:
        assigned = await store.get(ticket_id)
        return as_json(assigned.assignment) if assigned else not_found("assignment", ticket_id)

    @api.post("/route", summary="Dry run: which units would get this ticket (nothing is stored)")
    async def route(ticket: dict[str, Any] = Body(..., examples=[{"title": "小区物业不作为", "content": "…",
                                                                     "address": "瑞金北村12栋"}])) -> dict[str, Any]:
        try:
            parsed = json_format.ParseDict(ticket, ticket_pb2.Ticket())
        except json_format.ParseError as exc:
            raise HTTPException(status_code=422, detail=f"not a Ticket: {exc}") from exc
        return as_json(dry_run(router, classify, parsed))

    @api.get("/units", summary="The unit directory (承办单位)")
    async def units() -> list[dict[str, Any]]:
        return [as_json(u) for u in router.directory.units.values()]

    @api.get("/responsibilities", summary="The first-responsible list (首接负责主协办清单)")
    async def responsibilities() -> list[dict[str, Any]]:
        return [r.to_doc() for r in router.rules]

    return api


class RoutingGrpc(services_pb2_grpc.RoutingServiceServicer):
    def __init__(self, router: Router, store: AssignmentStore, classify: Classify | None) -> None:
        self.router, self.store, self.classify = router, store, classify

    async def Route(  # noqa: N802
        self, request: services_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> events_pb2.Assignment:
        ticket = request.ticket
        await grpc_require(context, bool(ticket.title or ticket.content), "ticket.title or ticket.content is required")
        return dry_run(self.router, self.classify, ticket)

    async def GetAssignment(  # noqa: N802
        self, request: services_pb2.GetAssignmentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> events_pb2.Assignment:
        await grpc_require(context, bool(request.ticket_id), "ticket_id is required")
        assigned = await grpc_found(context, await self.store.get(request.ticket_id), "assignment", request.ticket_id)
        return assigned.assignment  # type: ignore[no-any-return]
