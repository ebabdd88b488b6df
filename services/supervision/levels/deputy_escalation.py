"""A deputy's escalation (代表提请督办) raising a case's supervision: pure, no I/O.

Deputy liaison publishes ``DeputyEscalated`` (topic hotline.deputy.v1) when a deputy escalates
an unsatisfying outcome; supervision's consumer (deputy_escalation_handlers.py) runs :func:`decide`
on the case's supervision through the kit's command path (``EscalationCommands.deputy_escalation``).
The four-level supervision module (escalation.py) is the one writer of the case's level: the
escalation is its automatic level 1 (系统督办), a record saved with the case's level in the same
transaction, also on a case already closed. A case whose level 1 is open keeps it; the
escalation is still recorded (event and audit). One ``CaseEscalatedByDeputy`` on the case
topic, with the case as it is now (its revision moved on), tells the deputy's timeline and the
KPI projection (by supervision level).
"""

from __future__ import annotations

from datetime import datetime

from hotline.auth import Principal
from hotline.commands import Decision, NotFound
from hotline.v1 import deputy_escalation_pb2, deputy_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.levels import escalation as esc

DEPUTY_ESCALATION_LEVEL = 1  # 系统督办: the level a deputy's escalation raises
REASON = "deputy escalation"
DEPUTY_LIAISON = Principal.system("deputy_liaison")


def command_key(escalated: deputy_pb2.DeputyEscalated) -> str:
    """The idempotency key: one escalation per submission, whichever record carries it."""
    return f"deputy-escalation/{escalated.submission_id or escalated.ticket_id}"


def decide(state: esc.Supervised | None, escalated: deputy_pb2.DeputyEscalated, now: datetime,
           rules: esc.Rules) -> Decision[esc.Supervised]:
    """Raise the case's supervision to level 1 (a record) and say why."""
    if state is None:
        raise NotFound("case", escalated.ticket_id)
    comment = escalated.comment.strip()
    reason = f"人大代表提请督办（{comment}）" if comment else "人大代表提请督办"
    request = sv.RaiseSupervisionRequest(ticket_id=escalated.ticket_id, level=DEPUTY_ESCALATION_LEVEL,
                                         reason=reason[:500])
    raised = esc.decide(state, request, DEPUTY_LIAISON, now, rules)
    after = raised.state or state.copy()  # level 1 open already: the same supervision
    case = after.case
    case.revision += 1  # a step the case's followers see (CaseEscalatedByDeputy carries it)
    case.updated_at.CopyFrom(esc.stamp(now))
    event = deputy_escalation_pb2.CaseEscalatedByDeputy(
        case=case, reason=REASON, submission_id=escalated.submission_id, deputy_id=escalated.deputy_id,
        comment=escalated.comment, previous_level=state.case.supervision_level, occurred_at=esc.stamp(now))
    detail = f"{REASON} by {escalated.deputy_id}: supervision level {state.case.supervision_level} -> " \
             f"{case.supervision_level} ({raised.audit.get('detail', '')})"
    return Decision(after, events=[*raised.events, event], answer=case,
                    audit={"detail": detail, "events": [m.DESCRIPTOR.full_name for m in (*raised.events, event)]})
