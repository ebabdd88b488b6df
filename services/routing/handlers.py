"""Routing's consumer: ticket received -> assignment decided and published."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from prometheus_client import Counter

from hotline import observability as obs
from hotline import pb
from hotline.envelope import Event, Record
from hotline.mongo import utcnow
from hotline.v1 import events_pb2, ticket_pb2
from services.routing.core import METHODS, Decision, Prediction, Router, classifier_text
from services.routing.store import AssignmentStore

ASSIGNED = Counter(
    "hotline_assignments_total", "Tickets assigned to a primary unit, by unit type and decision method.",
    ["unit_type", "method"],
)

Classify = Callable[[Sequence[str]], Sequence[Prediction]]


def assignment_event(
    ticket: ticket_pb2.Ticket, decision: Decision, dispatch_round: int, at: datetime
) -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(
            ticket_id=ticket.ticket_id,
            primary_unit=decision.primary,
            assisting_units=decision.assisting,
            category=decision.category,
            method=decision.method,
            confidence=decision.confidence,
            model_version=decision.model_version,
            rule_id=decision.rule_id,
            dispatch_round=dispatch_round,
            assigned_at=pb.ts(at),
            classifier_label=decision.classifier_label,
        ),
        ticket_type=ticket.ticket_type,
        urgency=ticket.urgency,
        received_at=ticket.received_at,
        tags=list(ticket.tags),
        time_limit_working_days=ticket.time_limit_working_days,
        street=ticket.street,
        city_ticket_id=ticket.city_ticket_id if ticket.source == "city" else "",
    )


class TicketRouting:
    def __init__(self, router: Router, store: AssignmentStore, out_topic: str, classify: Classify | None) -> None:
        self.router = router
        self.store = store
        self.out_topic = out_topic
        self.classify = classify
        unit_types = [n for n in events_pb2.UnitType.keys() if n != "UNIT_TYPE_UNSPECIFIED"]
        obs.at_zero(ASSIGNED, unit_types, METHODS)

    def decode(self, record: Record) -> ticket_pb2.Ticket:
        return record.decode(events_pb2.TicketReceived).ticket

    async def apply(self, items: list[tuple[Record, ticket_pb2.Ticket]]) -> list[Event]:
        batch = {t.ticket_id: (r, t) for r, t in reversed(items)}  # first occurrence wins
        tickets = [t for _, t in batch.values()]
        predictions = self._predict(tickets)
        now = utcnow()
        decided = {t.ticket_id: assignment_event(t, self.router.decide(t, predictions.get(t.ticket_id)), 1, now)
                   for t in tickets}
        existed = await self.store.insert_new(list(decided.values()))  # insert first: a replay inserts nothing
        if existed:  # decided before: publish the stored decision, not today's
            decided.update(await self.store.get_many(sorted(existed)))
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
