"""Routing's command for a ticket intake announced (TicketReceived): :class:`RouteTicket`, one
handler, the consumer's batch (handlers.py TicketRouting) in one ``bus.handle_many``.

One transaction per batch: the desk's record (with its queue entry when routing cannot decide:
人工派单), the assignment, the audit entry, and the batch's TicketAssigned events (ONE outbox
document) are one bulk write. RouteTicket is idempotent on the state (``by_state``): no answer is
stored; a replayed record (key ``<ticket_id>/routed``) finds the ticket's assignment stored and
changes and emits nothing. The classifier runs for the batch in the consumer, before the
transaction; its prediction rides on the command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.auth import Principal
from hotline.bus import MessageBus, Request
from hotline.clock import Clock
from hotline.commands import Command, Decision
from hotline.mongo import Doc
from hotline.uow import Work
from hotline.v1 import events_pb2, ticket_pb2
from services.routing.core import Prediction, assignment_event
from services.routing.desk import Desk

ROUTING = Principal.system("routing")


@dataclass(frozen=True)
class RouteTicket(Request[ticket_pb2.Ticket], message=ticket_pb2.Ticket, name="assign"):
    """A ticket to assign to its first-responsible unit (round 1), with the classifier's
    prediction when the router needs one. Idempotent on the state (a ticket whose assignment is
    stored changes nothing): no stored answer (hotline/bus.py ``by_state``)."""

    by_state = True

    prediction: Prediction | None = None


def route(ticket: ticket_pb2.Ticket, prediction: Prediction | None = None) -> RouteTicket:
    return RouteTicket(ticket, ROUTING, f"{ticket.ticket_id}/routed", prediction)


class RoutedTickets:
    """The desk record and the assignment of a ticket routed (the repository of
    :class:`RouteTicket`, kind ``dispatch`` as the desk's commands). Whether a ticket was routed
    is whether its assignment is stored; the state loaded then is the assignment with the
    ticket's id only (RouteTicket needs no more; the desk's commands load the whole desk)."""

    kind = "dispatch"

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.desk = db["desk"]
        self.assignments = db["assignments"]

    def source(self, target: str) -> tuple[str, Doc]:
        return self.assignments.name, {"_id": target}

    async def loaded(self, doc: Doc | None, session: AsyncClientSession | None) -> Desk | None:
        if doc is None:
            return None
        assigned = pb.from_doc(doc, events_pb2.TicketAssigned)
        return Desk(ticket=ticket_pb2.Ticket(ticket_id=assigned.assignment.ticket_id), assigned=assigned)

    async def load(self, target: str, session: AsyncClientSession | None) -> Desk | None:
        return await self.loaded(await self.assignments.find_one({"_id": target}, session=session), session)

    def _docs(self, state: Desk) -> tuple[Doc, Doc]:
        tid = state.ticket.ticket_id
        desk: Doc = {"ticket": pb.to_doc(state.ticket)}
        if state.queue is not None:
            desk["queue"] = pb.to_doc(state.queue)
        return desk, {"_id": tid, **pb.to_doc(state.assigned)}

    async def write_ops(self, state: Desk, session: AsyncClientSession | None) -> list[Any]:
        desk, assigned = self._docs(state)
        # a desk record kept from before (a crash between the two inserts of the old consumer) stays as it was
        return [UpdateOne({"_id": state.ticket.ticket_id}, {"$setOnInsert": desk}, upsert=True,
                          namespace=self.desk.full_name),
                InsertOne(assigned, namespace=self.assignments.full_name)]

    async def save(self, state: Desk, session: AsyncClientSession | None) -> None:
        desk, assigned = self._docs(state)
        await self.desk.update_one({"_id": state.ticket.ticket_id}, {"$setOnInsert": desk}, upsert=True,
                                   session=session)
        await self.assignments.insert_one(assigned, session=session)


QueueEntryOf = Callable[[ticket_pb2.Ticket, Prediction | None, Any], Any]


class RoutingHandlers:
    """The handler of :class:`RouteTicket`: the router's decision (rules, the classifier's
    prediction, or the manual queue with suggestions), as the desk record and TicketAssigned."""

    def __init__(self, repo: Any, router: Callable[[], Any], clock: Clock, topic: str,
                 queue_entry: QueueEntryOf, assigned: Callable[[Desk], None] | None = None) -> None:
        self.repo = repo
        self.router = router  # the live router (the list in force now)
        self.clock = clock
        self.topic = topic
        self.queue_entry = queue_entry
        self.assigned = assigned  # after the commit of a ticket routed (the counters, the queue ledger)

    async def route(self, command: RouteTicket) -> Work[Desk]:
        ticket = command.body
        made: list[Desk] = []

        def decide(before: Desk | None) -> Decision[Desk]:
            if before is not None:  # routed already: the stored decision stands, and is the answer
                return Decision(None, answer=before.assigned, unchanged=True)
            router, now = self.router(), self.clock.now()
            decided = assignment_event(ticket, router.decide(ticket, command.prediction), 1, now)
            queued = self.queue_entry(ticket, command.prediction, now) \
                if decided.assignment.method == "manual" else None
            made[:] = [Desk(ticket=ticket, assigned=decided, queue=queued)]
            return Decision(made[0], [decided], answer=decided, audit={"reason": f"method {decided.assignment.method}"})

        assigned = self.assigned
        return Work(Command(command.name, ticket.ticket_id, command.actor, command.idempotency_key),
                    self.repo, decide, self.topic,
                    (lambda _answer: assigned(made[0])) if assigned is not None else None)


def register(bus: MessageBus, handlers: RoutingHandlers) -> None:
    bus.register(RouteTicket, handlers.route)
