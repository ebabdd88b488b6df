"""Intake's HTTP and gRPC adapters. The office reads every ticket; a unit reads the tickets it
handles (with the caller's contact, which it needs to call back); nobody else reads tickets."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import APIRouter, Depends, Query

from hotline import auth
from hotline.api import as_json, grpc_require
from hotline.auth import Principal
from hotline.commands import NotFound
from hotline.policy import Role
from hotline.v1 import services_pb2, services_pb2_grpc, ticket_pb2
from services.intake import core
from services.intake.store import TicketStore


async def visible_ticket(store: TicketStore, ticket_id: str, who: Principal) -> ticket_pb2.Ticket:
    """The ticket as ``who`` may see it; NotFound outside their scope (existence not leaked)."""
    found = await store.get_with_units(ticket_id)
    if found is None:
        raise NotFound("ticket", ticket_id)
    ticket, units = found
    handles = who.role == Role.UNIT and who.unit_id in units
    if who.role != Role.OFFICE and not handles:
        raise NotFound("ticket", ticket_id)
    return core.presented(ticket, clear=who.role == Role.OFFICE or handles)


def http_routes(store: TicketStore) -> APIRouter:
    router = APIRouter(tags=["tickets"])

    @router.get("/tickets/{ticket_id}", summary="One ticket as the district keeps it")
    async def get_ticket(ticket_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return as_json(await visible_ticket(store, ticket_id, who))

    @router.get("/tickets", summary="The most recently received tickets")
    async def recent(limit: int = Query(20, ge=1, le=500)) -> list[dict[str, Any]]:
        return [as_json(t) for t in await store.recent(limit)]

    return router


class IntakeGrpc(services_pb2_grpc.IntakeServiceServicer):
    def __init__(self, store: TicketStore) -> None:
        self.store = store

    async def GetTicket(  # noqa: N802 (gRPC method name)
        self, request: services_pb2.GetTicketRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ticket_pb2.Ticket:
        await grpc_require(context, bool(request.ticket_id), "ticket_id is required")
        return await visible_ticket(self.store, request.ticket_id, auth.current())
