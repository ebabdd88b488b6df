"""Supervision's consumer of deputy liaison's events (topic hotline.deputy.v1): a deputy's
escalation (DeputyEscalated) raises the case's supervision to level 1 through the four-level
supervision module's command (EscalationCommands.deputy_escalation, deputy_escalation.decide), so
the level record, the case's level, its audit entry and a CaseEscalatedByDeputy on the case
topic are saved in one transaction. The idempotency key names the submission: the same
escalation delivered again (a redelivery, a replay from offset 0) finds the first answer and
changes and emits nothing. Every other type on the topic (ratings, monthly lists...) is
skipped, not dead-lettered (EventTypes)."""

from __future__ import annotations

from prometheus_client import Counter

from hotline import observability as obs
from hotline.commands import DomainError
from hotline.envelope import Event, EventTypes, Record
from hotline.logging import get_logger
from hotline.v1 import deputy_pb2, events_pb2
from services.supervision.escalation_store import EscalationCommands

log = get_logger(__name__)

ESCALATIONS = Counter("hotline_case_deputy_escalations_total",
                      "Deputies' escalations (代表提请督办) consumed, by outcome (applied, refused).", ["outcome"])


class DeputyEscalations:
    def __init__(self, commands: EscalationCommands) -> None:
        self.commands = commands
        self.types = EventTypes(deputy_pb2.DeputyEscalated)
        obs.at_zero(ESCALATIONS, ["applied", "refused"])

    def decode(self, record: Record) -> deputy_pb2.DeputyEscalated:
        message = self.types.decode(record)  # any other type on the topic: Skip
        assert isinstance(message, deputy_pb2.DeputyEscalated)
        return message

    async def apply(self, items: list[tuple[Record, deputy_pb2.DeputyEscalated]]) -> list[Event]:
        for _record, escalated in items:
            await self.raise_supervision(escalated)
        return []  # the events went through the outbox with the supervision

    async def raise_supervision(self, escalated: deputy_pb2.DeputyEscalated) -> events_pb2.Case | None:
        try:
            case = await self.commands.deputy_escalation(escalated)
        except DomainError as exc:  # no such case: nothing to supervise (logged and counted, not retried)
            ESCALATIONS.labels("refused").inc()
            log.warning("deputy escalation refused", ticket_id=escalated.ticket_id, reason=exc.message)
            return None
        ESCALATIONS.labels("applied").inc()
        return case
