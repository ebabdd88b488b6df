"""Intake's HTTP and gRPC adapters."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import APIRouter, Query

from hotline.api import as_json, grpc_found, grpc_require, not_found
from hotline.v1 import services_pb2, services_pb2_grpc, ticket_pb2
from services.intake.store import TicketStore


def http_routes(store: TicketStore) -> APIRouter:
    router = APIRouter(tags=["tickets"])

    @router.get("/tickets/{ticket_id}", summary="One ticket as the district keeps it")
    async def get_ticket(ticket_id: str) -> dict[str, Any]:
        ticket = await store.get(ticket_id)
        return as_json(ticket) if ticket else not_found("ticket", ticket_id)

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
        ticket = await self.store.get(request.ticket_id)
        result: ticket_pb2.Ticket = await grpc_found(context, ticket, "ticket", request.ticket_id)
        return result
