"""Routing's HTTP and gRPC adapters."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import APIRouter, Body, Depends, Query
from google.protobuf import json_format
from google.protobuf.message import Message

from hotline import auth
from hotline.api import as_json, grpc_idempotency_key, grpc_require, idempotency_key, parse_body
from hotline.auth import Principal
from hotline.commands import Invalid, NotFound
from hotline.mongo import utcnow
from hotline.policy import Role
from hotline.v1 import events_pb2, routing_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from services.routing.commands import DeskCommands, LiveRouter
from services.routing.core import Router, assignment_event, classifier_text
from services.routing.desk import list_item
from services.routing.handlers import Classify
from services.routing.store import AssignmentStore, DeskStore

Context = grpc.aio.ServicerContext[Any, Any]
MAX_PAGE = 500


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


# The desk's commands over HTTP: path, request message, DeskCommands method, summary. The JSON body is
# the request message's JSON mapping; ticket_id comes from the path. Header Idempotency-Key is required.
DESK_COMMANDS: list[tuple[str, type[Message], str, str]] = [
    ("dispatch", routing_pb2.DispatchRequest, "dispatch", "人工派单 (office): dispatch a queued ticket"),
    ("return-decision", routing_pb2.DecideReturnRequest, "decide_return",
     "退单审核 (office): approve (re-dispatch to other units) or refuse (back to the unit)"),
    ("recategorize", routing_pb2.RecategorizeRequest, "recategorize", "改类 (office): re-route in a new category"),
    ("sub-dispatch", routing_pb2.SubDispatchRequest, "sub_dispatch",
     "加派 (street office): send on to a community under it, with its own deadline"),
    ("joint-review", routing_pb2.OpenJointReviewRequest, "open_review", "联席研判 (office): open a joint review"),
    ("joint-review/decision", routing_pb2.DecideJointReviewRequest, "decide_review",
     "研判结论 (office): fix the units; optionally change the list (list_change)"),
]


async def visible_returns(store: DeskStore, who: Principal, pending_only: bool) -> routing_pb2.ListReturnsResponse:
    """Returns: the office all, a unit only its own."""
    unit = who.unit_id if who.role == Role.UNIT else ""
    if who.role == Role.UNIT and not unit:
        return routing_pb2.ListReturnsResponse()
    return routing_pb2.ListReturnsResponse(returns=await store.returns(unit, pending_only))


async def queue(store: DeskStore, page_size: int) -> routing_pb2.ListQueueResponse:
    if not 0 <= page_size <= MAX_PAGE:
        raise Invalid(f"page_size must be 0-{MAX_PAGE}")
    length, _ = await store.queue_stats()
    return routing_pb2.ListQueueResponse(entries=await store.queue(page_size or 50), length=length)


REVIEW_STATES = {"open": routing_pb2.REVIEW_STATUS_OPEN, "decided": routing_pb2.REVIEW_STATUS_DECIDED}


async def joint_reviews(store: DeskStore, status: int, page_size: int) -> routing_pb2.ListJointReviewsResponse:
    """联席研判 list: the reviews in ``status`` (REVIEW_STATUS_UNSPECIFIED: any), oldest opened first."""
    if not 0 <= page_size <= MAX_PAGE:
        raise Invalid(f"page_size must be 0-{MAX_PAGE}")
    if status not in routing_pb2.ReviewStatus.values():
        raise Invalid(f"unknown review status {status}")
    name = routing_pb2.ReviewStatus.Name(status) if status else ""  # type: ignore[arg-type]
    return routing_pb2.ListJointReviewsResponse(reviews=await store.reviews(name, page_size or 200))


def get_item(live: LiveRouter, rule_id: str) -> routing_pb2.ListItem:
    rule = next((r for r in live.router.rules if r.rule_id == rule_id), None)
    if rule is None:
        raise NotFound("list item", rule_id)
    return list_item(rule)


def list_items(live: LiveRouter, category: str) -> routing_pb2.ListListItemsResponse:
    router = live.router
    return routing_pb2.ListListItemsResponse(
        items=[list_item(r) for r in router.rules if not category or r.category == category],
        list_version=router.list_version)


def _desk_route(api: APIRouter, commands: DeskCommands, path: str, message_type: type[Message], method: str,
                summary: str) -> None:
    async def route(ticket_id: str, body: dict[str, Any] = Body(default_factory=dict),
                    who: Principal = Depends(auth.principal), key: str = Depends(idempotency_key)) -> dict[str, Any]:
        request = parse_body(body, message_type, ticket_id=ticket_id)
        return as_json(await getattr(commands, method)(request, who, key))

    api.post(f"/tickets/{{ticket_id}}/{path}", summary=summary, name=method,
             description=f"Body: the JSON of `hotline.v1.{message_type.DESCRIPTOR.name}` (routing.proto). "
                         "Header Idempotency-Key is required.")(route)


def http_routes(live: LiveRouter, store: AssignmentStore, classify: Classify | None, desk: DeskStore,
                commands: DeskCommands) -> APIRouter:
    api = APIRouter(tags=["routing"])
    for path, message_type, method, summary in DESK_COMMANDS:
        _desk_route(api, commands, path, message_type, method, summary)

    @api.get("/queue", summary="人工派单队列: tickets waiting for the office, oldest first, with suggestions")
    async def list_queue(limit: int = Query(50, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        return as_json(await queue(desk, limit))

    @api.get("/returns", summary="退单: the office sees all, a unit its own")
    async def list_returns(pending_only: bool = False, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        return as_json(await visible_returns(desk, who, pending_only))

    @api.get("/joint-reviews", summary="联席研判 (office, admin): joint reviews, open or decided, oldest first")
    async def list_joint_reviews(state: str = Query("", description="open | decided | empty for any"),
                                 limit: int = Query(200, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        if state and state not in REVIEW_STATES:
            raise Invalid(f"state must be one of {', '.join(REVIEW_STATES)} (or empty for any), not {state!r}")
        return as_json(await joint_reviews(desk, REVIEW_STATES.get(state, 0), limit))

    @api.get("/list-items/{rule_id}", summary="One item of the first-responsible list")
    async def get_list_item(rule_id: str) -> dict[str, Any]:
        return as_json(get_item(live, rule_id))

    @api.get("/list-items", summary="The list's items (of a category), with the list version")
    async def list_list_items(category: str = "") -> dict[str, Any]:
        return as_json(list_items(live, category))

    @api.put("/list-items/{rule_id}", summary="Add or change a list item (office, admin): a new list version",
             description="Body: {\"item\": ListItem JSON, \"reason\": why}. Header Idempotency-Key is required.")
    async def upsert_list_item(rule_id: str, body: dict[str, Any] = Body(...), who: Principal = Depends(auth.principal),
                               key: str = Depends(idempotency_key)) -> dict[str, Any]:
        request = parse_body(body, routing_pb2.UpsertListItemRequest)
        assert isinstance(request, routing_pb2.UpsertListItemRequest)
        if request.item.rule_id and request.item.rule_id != rule_id:
            raise Invalid(f"item.rule_id {request.item.rule_id!r} differs from the path ({rule_id!r})")
        request.item.rule_id = rule_id
        return as_json(await commands.upsert_item(request, who, key))

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
        return as_json(dry_run(live.router, classify, parsed))

    @api.get("/units", summary="The unit directory (承办单位)")
    async def units() -> list[dict[str, Any]]:
        return [as_json(u) for u in live.router.directory.units.values()]

    @api.get("/responsibilities", summary="The first-responsible list (首接负责主协办清单)")
    async def responsibilities() -> list[dict[str, Any]]:
        return [r.to_doc() for r in live.router.rules]

    return api


class RoutingGrpc(services_pb2_grpc.RoutingServiceServicer):
    def __init__(self, live: LiveRouter, store: AssignmentStore, classify: Classify | None, desk: DeskStore,
                 commands: DeskCommands) -> None:
        self.live, self.store, self.classify, self.desk, self.commands = live, store, classify, desk, commands

    async def Route(  # noqa: N802
        self, request: services_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> events_pb2.Assignment:
        ticket = request.ticket
        await grpc_require(context, bool(ticket.title or ticket.content), "ticket.title or ticket.content is required")
        return dry_run(self.live.router, self.classify, ticket)

    async def GetAssignment(  # noqa: N802
        self, request: services_pb2.GetAssignmentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> events_pb2.Assignment:
        await grpc_require(context, bool(request.ticket_id), "ticket_id is required")
        return await visible_assignment(self.store, request.ticket_id, auth.current())

    async def ListQueue(self, request: routing_pb2.ListQueueRequest,  # noqa: N802
                        context: Context) -> routing_pb2.ListQueueResponse:
        return await queue(self.desk, request.page_size)

    async def Dispatch(self, request: routing_pb2.DispatchRequest, context: Context) -> events_pb2.Assignment:  # noqa: N802
        return await self.commands.dispatch(request, auth.current(), grpc_idempotency_key(context))

    async def ListReturns(self, request: routing_pb2.ListReturnsRequest,  # noqa: N802
                          context: Context) -> routing_pb2.ListReturnsResponse:
        return await visible_returns(self.desk, auth.current(), request.pending_only)

    async def DecideReturn(self, request: routing_pb2.DecideReturnRequest,  # noqa: N802
                           context: Context) -> routing_pb2.PendingReturn:
        return await self.commands.decide_return(request, auth.current(), grpc_idempotency_key(context))

    async def Recategorize(self, request: routing_pb2.RecategorizeRequest, context: Context) -> events_pb2.Assignment:  # noqa: N802
        return await self.commands.recategorize(request, auth.current(), grpc_idempotency_key(context))

    async def SubDispatch(self, request: routing_pb2.SubDispatchRequest, context: Context) -> routing_pb2.SubDispatched:  # noqa: N802
        return await self.commands.sub_dispatch(request, auth.current(), grpc_idempotency_key(context))

    async def OpenJointReview(self, request: routing_pb2.OpenJointReviewRequest,  # noqa: N802
                              context: Context) -> routing_pb2.JointReview:
        return await self.commands.open_review(request, auth.current(), grpc_idempotency_key(context))

    async def DecideJointReview(self, request: routing_pb2.DecideJointReviewRequest,  # noqa: N802
                                context: Context) -> routing_pb2.JointReview:
        return await self.commands.decide_review(request, auth.current(), grpc_idempotency_key(context))

    async def ListJointReviews(self, request: routing_pb2.ListJointReviewsRequest,  # noqa: N802
                               context: Context) -> routing_pb2.ListJointReviewsResponse:
        return await joint_reviews(self.desk, request.status, request.page_size)

    async def GetListItem(self, request: routing_pb2.GetListItemRequest,  # noqa: N802
                          context: Context) -> routing_pb2.ListItem:
        return get_item(self.live, request.rule_id)

    async def ListListItems(self, request: routing_pb2.ListListItemsRequest,  # noqa: N802
                            context: Context) -> routing_pb2.ListListItemsResponse:
        return list_items(self.live, request.category)

    async def UpsertListItem(self, request: routing_pb2.UpsertListItemRequest,  # noqa: N802
                             context: Context) -> routing_pb2.ListItem:
        return await self.commands.upsert_item(request, auth.current(), grpc_idempotency_key(context))
