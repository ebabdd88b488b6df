"""Routing's consumers: ticket received -> assignment decided and published (RouteTicket through
the message bus, routed.py) (a ticket routing
cannot decide also waits in the manual dispatch queue); a unit's return request (退单申请, from
hotline.cases.v1) -> kept for the office's decision."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter

from hotline import observability as obs
from hotline import pb
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.commands import DomainError
from hotline.envelope import Event, EventTypes, Record
from hotline.logging import get_logger
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2, ticket_pb2
from services.routing.core import (  # assignment_event: core.py, so desk.py need not import this module
    COMMUNITY,
    METHODS,
    STREET,
    Prediction,
    Router,
    Rule,
    classifier_text,
)
from services.routing.routed import route
from services.routing.store import AssignmentStore, DeskStore

if TYPE_CHECKING:
    from services.routing.commands import DeskCommands, LiveRouter
    from services.routing.desk import Desk

ASSIGNED = Counter(
    "hotline_assignments_total", "Tickets assigned to a primary unit, by unit type and decision method.",
    ["unit_type", "method"],
)

RETURNS = Counter("hotline_routing_returns_total", "Return requests (退单) routing took in, by outcome.",
                  ["outcome"])
Classify = Callable[[Sequence[str]], Sequence[Prediction]]
log = get_logger(__name__)


class TicketRouting:
    def __init__(self, live: LiveRouter, store: AssignmentStore, out_topic: str, classify: Classify | None,
                 desk: DeskStore | None = None, commands: DeskCommands | None = None,
                 bus: MessageBus | None = None) -> None:
        self.live = live
        self.bus = bus  # RouteTicket's handler registered (routed.py)
        self.store = store
        self.desk = desk
        self.commands = commands
        self.out_topic = out_topic
        self.classify = classify
        unit_types = [n for n in events_pb2.UnitType.keys() if n != "UNIT_TYPE_UNSPECIFIED"]
        obs.at_zero(ASSIGNED, unit_types, METHODS)

    def decode(self, record: Record) -> ticket_pb2.Ticket:
        return record.decode(events_pb2.TicketReceived).ticket

    @property
    def router(self) -> Router:
        return self.live.router

    def counted(self, routed: Desk) -> None:
        """After the commit of a ticket routed (RoutingHandlers' ``assigned``)."""
        a = routed.assigned.assignment
        ASSIGNED.labels(events_pb2.UnitType.Name(a.primary_unit.unit_type), a.method).inc()
        if routed.queue is not None and self.desk is not None:
            self.desk.waiting.note(a.ticket_id, pb.dt(routed.queue.arrived_at))  # the queue gauges' ledger

    async def apply(self, items: list[tuple[Record, ticket_pb2.Ticket]]) -> list[Event]:
        """The batch as :class:`RouteTicket` commands (the classifier's predictions made for the
        batch first) through ``bus.handle_many``: one transaction; TicketAssigned is staged in
        the outbox with each desk record and assignment. A ticket routed before gets its first
        answer and changes nothing."""
        if self.bus is None:
            raise RuntimeError("TicketRouting needs the service's message bus to apply a batch")
        first = {t.ticket_id: t for _, t in reversed(items)}  # the same id twice: predict once
        predictions = self._predict(list(first.values()))
        results = await self.bus.handle_many([route(t, predictions.get(t.ticket_id)) for _, t in items])
        for (record, _), result in zip(items, results, strict=True):
            if isinstance(result, DomainError):
                log.warning("ticket not routed", ticket_id=record.key, reason=result.message)
        if self.commands is not None:
            await self.commands.update_gauges()
        return []  # the events are in the outbox, staged with the assignments

    def _predict(self, tickets: list[ticket_pb2.Ticket]) -> dict[str, Prediction]:
        if not self.classify:
            return {}
        todo = [t for t in tickets if self.router.needs_classifier(t)]
        if not todo:
            return {}
        predictions = self.classify([classifier_text(t) for t in todo])
        return {t.ticket_id: p for t, p in zip(todo, predictions, strict=True)}


def queue_entry_of(router: Router, ticket: ticket_pb2.Ticket, prediction: Prediction | None,
                   now: datetime) -> routing_pb2.QueueEntry:
    """A ticket for manual dispatch, with the top 3 suggestions."""
    from services.routing.desk import queue_entry

    location = router.directory.locate(ticket)

    def resolve(rule: Rule) -> str:
        if rule.primary == STREET:
            return location.street or ""
        if rule.primary == COMMUNITY:
            return location.community or location.street or ""
        return rule.primary

    return queue_entry(ticket, router.suggest(ticket, prediction), resolve, now)


class ReturnIntake:
    """A unit's return request (ReturnRequested on hotline.cases.v1) becomes a pending return for
    the office (a command by the system principal; the event id is its idempotency key)."""

    ACTOR = Principal.system("routing")

    def __init__(self, commands: DeskCommands) -> None:
        self.commands = commands
        self.types = EventTypes(lifecycle_pb2.ReturnRequested)
        obs.at_zero(RETURNS, ["pending", "refused_late", "ignored"])

    def decode(self, record: Record) -> lifecycle_pb2.ReturnRequested:
        message = self.types.decode(record)
        assert isinstance(message, lifecycle_pb2.ReturnRequested)
        return message

    async def apply(self, items: list[tuple[Record, lifecycle_pb2.ReturnRequested]]) -> list[Event]:
        for record, event in items:
            key = record.event_id or f"{record.topic}/{record.partition}/{record.offset}"
            try:
                answer = await self.commands.receive_return(event, self.ACTOR, key)
            except DomainError as exc:  # a stale round, a ticket routing never saw: nothing to decide
                log.warning("return ignored", ticket_id=event.case.ticket_id, reason=exc.message)
                RETURNS.labels("ignored").inc()
                continue
            refused = getattr(answer, "status", 0) == case_pb2.RETURN_STATUS_REFUSED
            RETURNS.labels("refused_late" if refused else "pending").inc()
        return []
