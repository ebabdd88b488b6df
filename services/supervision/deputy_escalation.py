"""A deputy's escalation (代表提请督办) raising a case's supervision: pure, no I/O.

Deputy liaison publishes ``DeputyEscalated`` (topic hotline.deputy.v1) when a deputy escalates
an unsatisfying outcome; supervision's consumer (deputy_escalation_handlers.py) runs :func:`decide`
on the case through the kit's command path. The case's ``supervision_level`` only goes up
(never below :data:`DEPUTY_ESCALATION_LEVEL`), and one ``CaseEscalatedByDeputy`` on the case
topic tells the deputy's timeline and the KPI projection (by supervision level).

Kept deliberately small: the full four-level supervision record (督办级别) can route this
decision through its own ``raise_supervision`` later; the level and reason are the contract.
"""

from __future__ import annotations

from datetime import datetime

from hotline import pb
from hotline.commands import Decision, NotFound
from hotline.v1 import deputy_escalation_pb2, deputy_pb2, events_pb2

DEPUTY_ESCALATION_LEVEL = 1  # 系统督办: the least a deputy's escalation raises a case to
REASON = "deputy escalation"


def command_key(escalated: deputy_pb2.DeputyEscalated) -> str:
    """The idempotency key: one escalation per submission, whichever record carries it."""
    return f"deputy-escalation/{escalated.submission_id or escalated.ticket_id}"


def decide(case: events_pb2.Case | None, escalated: deputy_pb2.DeputyEscalated,
           now: datetime) -> Decision[events_pb2.Case]:
    """Raise the case's supervision to at least level 1 and record why. A case already at or
    above the level keeps its level; the escalation is still recorded (event and audit)."""
    if case is None:
        raise NotFound("case", escalated.ticket_id)
    after = events_pb2.Case()
    after.CopyFrom(case)
    after.supervision_level = max(case.supervision_level, DEPUTY_ESCALATION_LEVEL)
    after.revision += 1
    at = pb.ts(now)
    assert at is not None
    after.updated_at.CopyFrom(at)
    event = deputy_escalation_pb2.CaseEscalatedByDeputy(
        case=after, reason=REASON, submission_id=escalated.submission_id, deputy_id=escalated.deputy_id,
        comment=escalated.comment, previous_level=case.supervision_level, occurred_at=at)
    detail = f"{REASON} by {escalated.deputy_id}: supervision level {case.supervision_level} -> " \
             f"{after.supervision_level}"
    return Decision(after, events=[event], answer=after,
                    audit={"detail": detail, "events": [event.DESCRIPTOR.full_name]})
