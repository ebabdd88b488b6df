"""A deputy's escalation raising a case's supervision (issue 12): the pure decision in
supervision, how the deputy's timeline and the KPI projection read its event, and that the
consumer dispatches on the protobuf type (other deputy events are skipped, not dead-lettered)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hotline import pb
from hotline.commands import DomainError
from hotline.envelope import Record, Skip
from hotline.v1 import deputy_escalation_pb2, deputy_pb2, events_pb2
from services.deputy_liaison.handlers import EVENTS, status_of
from services.metrics import projection
from services.supervision import deputy_escalation as escalation

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ESCALATED = deputy_pb2.DeputyEscalated(submission_id="S1", ticket_id="RD-S1", deputy_id="DE1", rating="不满意",
                                       comment="请督办", occurred_at=pb.ts(AT))


def case(level: int = 0) -> events_pb2.Case:
    return events_pb2.Case(ticket_id="RD-S1", state=events_pb2.CASE_STATE_ARCHIVED, supervision_level=level,
                           revision=7, dispatch_round=1)


def test_an_escalation_raises_supervision_to_level_one_and_says_why() -> None:
    decision = escalation.decide(case(), ESCALATED, AT)
    assert decision.state is not None and decision.state.supervision_level == 1
    assert decision.state.revision == 8 and pb.dt(decision.state.updated_at) == AT
    assert decision.state.state == events_pb2.CASE_STATE_ARCHIVED  # the lifecycle state is not touched
    (event,) = decision.events
    assert isinstance(event, deputy_escalation_pb2.CaseEscalatedByDeputy)
    assert (event.reason, event.submission_id, event.deputy_id, event.comment, event.previous_level) == (
        "deputy escalation", "S1", "DE1", "请督办", 0)
    assert event.case == decision.state and "deputy escalation" in decision.audit["detail"]


def test_a_case_supervised_higher_keeps_its_level_and_the_same_input_decides_the_same() -> None:
    higher = escalation.decide(case(level=3), ESCALATED, AT)
    assert higher.state is not None and higher.state.supervision_level == 3
    assert escalation.decide(case(), ESCALATED, AT) == escalation.decide(case(), ESCALATED, AT)
    # one escalation per submission, whichever record carries it: a redelivery finds the first answer
    assert escalation.command_key(ESCALATED) == "deputy-escalation/S1"


def test_no_case_no_supervision() -> None:
    with pytest.raises(DomainError) as refused:
        escalation.decide(None, ESCALATED, AT)
    assert refused.value.code == "not_found"


def record(message: object, event_type: str) -> Record:
    return Record(topic="hotline.deputy.v1", partition=0, offset=0, key="RD-S1",
                  value=message.SerializeToString(),  # type: ignore[attr-defined]
                  headers={"event_type": event_type, "event_id": "x"}, timestamp_ms=0)


def test_the_consumer_dispatches_on_the_type_and_skips_other_deputy_events() -> None:
    from services.supervision.deputy_escalation_handlers import DeputyEscalations

    handler = DeputyEscalations(commands=None)  # type: ignore[arg-type]  # decoding needs no store
    assert handler.decode(record(ESCALATED, "hotline.v1.DeputyEscalated")) == ESCALATED
    rated = deputy_pb2.DeputyRated(submission_id="S1", ticket_id="RD-S1", rating="不满意")
    with pytest.raises(Skip):
        handler.decode(record(rated, "hotline.v1.DeputyRated"))


def test_the_deputy_timeline_and_the_kpis_see_the_raised_level() -> None:
    decision = escalation.decide(case(), ESCALATED, AT)
    event = decision.events[0]
    decoded = EVENTS.decode(record(event, "hotline.v1.CaseEscalatedByDeputy"))
    status, text = status_of(decoded)
    assert status == "supervised" and "督办级别 1" in text
    raised = [u for u in projection.updates(event) if "supervision_level" in u.max]
    assert [(u.level, u.key, dict(u.max)) for u in raised] == [("dispatch", "RD-S1|1", {"supervision_level": 1})]
    assert "hotline.v1.CaseEscalatedByDeputy" in projection.EVENT_TYPES
