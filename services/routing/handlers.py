"""Routing's consumers: ticket received -> assignment decided and published (a ticket routing
cannot decide also waits in the manual dispatch queue); a unit's return request (退单申请, from
hotline.cases.v1) -> kept for the office's decision."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter

from hotline import observability as obs
from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.envelope import Event, EventTypes, Record
from hotline.logging import get_logger
from hotline.mongo import utcnow
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2, ticket_pb2
from services.routing.core import (  # assignment_event: core.py, so desk.py need not import this module
    COMMUNITY,
    METHODS,
    STREET,
    Prediction,
    Router,
    Rule,
    assignment_event,
    classifier_text,
)
from services.routing.store import AssignmentStore, DeskStore

if TYPE_CHECKING:
    from services.routing.commands import DeskCommands, LiveRouter

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
                 desk: DeskStore | None = None, commands: DeskCommands | None = None) -> None:
        self.live = live
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

    async def apply(self, items: list[tuple[Record, ticket_pb2.Ticket]]) -> list[Event]:
        batch = {t.ticket_id: (r, t) for r, t in reversed(items)}  # first occurrence wins
        tickets = [t for _, t in batch.values()]
        predictions = self._predict(tickets)
        now = utcnow()
        router = self.router
        decided = {t.ticket_id: assignment_event(t, router.decide(t, predictions.get(t.ticket_id)), 1, now)
                   for t in tickets}
        if self.desk is not None:  # the desk's record first: an assignment stored always has one
            queued = [queue_entry_of(router, t, predictions.get(t.ticket_id), now)
                      for t in tickets if decided[t.ticket_id].assignment.method == "manual"]
            await self.desk.insert_new(tickets, queued)
        existed = await self.store.insert_new(list(decided.values()))  # insert first: a replay inserts nothing
        if existed:  # decided before: publish the stored decision, not today's
            decided.update(await self.store.get_many(sorted(existed)))
        if self.commands is not None:
            await self.commands.update_gauges()
        for ticket_id, a in decided.items():
            if ticket_id not in existed:
                unit_type = events_pb2.UnitType.Name(a.assignment.primary_unit.unit_type)
                ASSIGNED.labels(unit_type, a.assignment.method).inc()
        return [
            Event(self.out_topic, tid, decided[tid], f"{tid}/assigned/{decided[tid].assignment.dispatch_round}",
                  record.correlation_id)
            for tid, (record, _) in batch.items()
        ]

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
