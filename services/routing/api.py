"""Routing's HTTP and gRPC adapters."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import APIRouter, Body, Depends
from google.protobuf import json_format

from hotline import auth
from hotline.api import as_json, grpc_require
from hotline.auth import Principal
from hotline.commands import Invalid, NotFound
from hotline.mongo import utcnow
from hotline.policy import Role
from hotline.v1 import events_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from services.routing.core import Router, classifier_text
from services.routing.handlers import Classify, assignment_event
from services.routing.store import AssignmentStore


def dry_run(router: Router, classify: Classify | None, ticket: ticket_pb2.Ticket) -> events_pb2.Assignment:
    prediction = None
    if classify and router.needs_classifier(ticket):
        prediction = classify([classifier_text(ticket)])[0]
    return assignment_event(ticket, router.decide(ticket, prediction), 1, utcnow()).assignment


async def visible_assignment(store: AssignmentStore, ticket_id: str, who: Principal) -> events_pb2.Assignment:
    """The assignment, if ``who`` may see it: the office any, a unit those naming it."""
    assigned = await store.get(ticket_id)
    if assigned is None:
        raise NotFound("assignment", ticket_id)
    a = assigned.assignment
    if who.role == Role.UNIT and who.unit_id not in {u.unit_id for u in (a.primary_unit, *a.assisting_units)}:
        raise NotFound("assignment", ticket_id)
    return a


def http_routes(router: Router, store: AssignmentStore, classify: Classify | None) -> APIRouter:
    api = APIRouter(tags=["routing"])

    @api.get("/assignments/{ticket_id}", summary="The dispatch decision for a ticket")
    async def get_assignment(ticket_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return as_json(await visible_assignment(store, ticket_id, who))

    @api.post("/route", summary="Dry run: which units would get this ticket (nothing is stored)")
    async def route(ticket: dict[str, Any] = Body(..., examples=[{"title": "小区物业不作为", "content": "…",
                                                                     "address": "瑞金北村12栋"}])) -> dict[str, Any]:
        try:
            parsed = json_format.ParseDict(ticket, ticket_pb2.Ticket())
        except json_format.ParseError as exc:
            raise Invalid(f"not a Ticket: {exc}") from exc
        return as_json(dry_run(router, classify, parsed))

    @api.get("/units", summary="The unit directory (承办单位)")
    async def units() -> list[dict[str, Any]]:
        return [as_json(u) for u in router.directory.units.values()]

    @api.get("/responsibilities", summary="The first-responsible list (首接负责主协办清单)")
    async def responsibilities() -> list[dict[str, Any]]:
        return [r.__dict__ for r in router.rules]

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
        return await visible_assignment(self.store, request.ticket_id, auth.current())
