"""Supervision's consumer of deputy liaison's events (topic hotline.deputy.v1): a deputy's
escalation (DeputyEscalated) raises the case's supervision to level 1 through the four-level
supervision module's command (EscalationCommands.deputy_escalation, deputy_escalation.decide), so
the level record, the case's level, its audit entry and a CaseEscalatedByDeputy on the case
topic are saved in one transaction. The idempotency key names the submission: the same
escalation delivered again (a redelivery, a replay from offset 0) finds the first answer and
changes and emits nothing. A deputy's rating (DeputyRated) is the evaluation (回访) of the
deputy's ticket (deputy_closure.py): the lifecycle's evaluate command, keyed by the rating, closes
the case when satisfied or basically satisfied. Every other type on the topic (monthly lists...)
is skipped, not dead-lettered (EventTypes)."""

from __future__ import annotations

from prometheus_client import Counter

from hotline import observability as obs
from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.envelope import Event, EventTypes, Record
from hotline.logging import get_logger
from hotline.v1 import deputy_pb2, events_pb2
from services.supervision.cases.commands import CaseCommands, Evaluate
from services.supervision.cases.deputy_closure import rating_evaluation
from services.supervision.levels.escalation_store import EscalationCommands

log = get_logger(__name__)

ESCALATIONS = Counter("hotline_case_deputy_escalations_total",
                      "Deputies' escalations (代表提请督办) consumed, by outcome (applied, refused).", ["outcome"])
RATINGS = Counter("hotline_case_deputy_ratings_total",
                  "Deputies' ratings (代表评价) applied as the evaluation of their tickets, by outcome "
                  "(applied, refused, ignored).", ["outcome"])
DEPUTY = Principal.system("deputy_liaison")


class DeputyEscalations:
    def __init__(self, commands: EscalationCommands, cases: CaseCommands | None = None) -> None:
        self.commands = commands
        self.cases = cases
        self.types = EventTypes(deputy_pb2.DeputyEscalated, *([deputy_pb2.DeputyRated] if cases else []))
        obs.at_zero(ESCALATIONS, ["applied", "refused"])
        obs.at_zero(RATINGS, ["applied", "refused", "ignored"])

    def decode(self, record: Record) -> deputy_pb2.DeputyEscalated | deputy_pb2.DeputyRated:
        message = self.types.decode(record)  # any other type on the topic: Skip
        assert isinstance(message, deputy_pb2.DeputyEscalated | deputy_pb2.DeputyRated)
        return message

    async def apply(self, items: list[tuple[Record, deputy_pb2.DeputyEscalated | deputy_pb2.DeputyRated]],
                    ) -> list[Event]:
        for _record, message in items:
            if isinstance(message, deputy_pb2.DeputyRated):
                await self.evaluate(message)
            else:
                await self.raise_supervision(message)
        return []  # the events went through the outbox with the supervision or the evaluation

    async def evaluate(self, rated: deputy_pb2.DeputyRated) -> events_pb2.Case | None:
        """The deputy's rating as the evaluation of the case (idempotent: keyed by the evaluation id)."""
        evaluation = rating_evaluation(rated)
        if evaluation is None or self.cases is None:
            RATINGS.labels("ignored").inc()
            return None
        try:
            case = await self.cases.handle(Evaluate(evaluation, DEPUTY, f"evaluation/{evaluation.evaluation_id}"))
        except DomainError as exc:
            RATINGS.labels("refused").inc()
            log.warning("deputy rating not applied", ticket_id=rated.ticket_id, reason=exc.message)
            return None
        RATINGS.labels("applied").inc()
        return case

    async def raise_supervision(self, escalated: deputy_pb2.DeputyEscalated) -> events_pb2.Case | None:
        try:
            case = await self.commands.deputy_escalation(escalated)
        except DomainError as exc:  # no such case: nothing to supervise (logged and counted, not retried)
            ESCALATIONS.labels("refused").inc()
            log.warning("deputy escalation refused", ticket_id=escalated.ticket_id, reason=exc.message)
            return None
        ESCALATIONS.labels("applied").inc()
        return case
