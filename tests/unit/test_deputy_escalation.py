"""A deputy's escalation raising a case's supervision (issue 12): the pure decision in
supervision (a level 1 record of the four-level module, the one writer of the case's level),
how the deputy's timeline and the KPI projection read its event, and that the consumer
dispatches on the protobuf type (other deputy events are skipped, not dead-lettered)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hotline import pb
from hotline.auth import Principal
from hotline.calendar import WorkCalendar
from hotline.commands import Decision, DomainError
from hotline.envelope import Record, Skip
from hotline.v1 import case_pb2, deputy_escalation_pb2, deputy_pb2, events_pb2
from hotline.v1 import supervision_pb2 as sv
from services.deputy_liaison.handlers import EVENTS, status_of
from services.metrics import projection
from services.supervision.cases.lifecycle import PeriodDeadlines
from services.supervision.levels import deputy_escalation as escalation
from services.supervision.levels import escalation as esc

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RULES = esc.Rules.load(PeriodDeadlines(WorkCalendar()), ZoneInfo("Asia/Shanghai"))
ESCALATED = deputy_pb2.DeputyEscalated(submission_id="S1", ticket_id="RD-S1", deputy_id="DE1", rating="不满意",
                                       comment="请督办", occurred_at=pb.ts(AT))


def case(level: int = 0, state: int = events_pb2.CASE_STATE_ARCHIVED) -> esc.Supervised:
    closed = events_pb2.Case(ticket_id="RD-S1", state=state, supervision_level=level,  # type: ignore[arg-type]
                             revision=7, dispatch_round=1, closure=case_pb2.CLOSURE_SATISFIED,
                             closed_at=pb.ts(AT - timedelta(days=1)))
    return esc.Supervised(closed, sv.CaseSupervision(ticket_id="RD-S1"))


def decide(state: esc.Supervised | None) -> Decision[esc.Supervised]:
    return escalation.decide(state, ESCALATED, AT, RULES)


def test_an_escalation_raises_level_one_with_its_record_and_says_why() -> None:
    decision = decide(case())
    after = decision.state
    assert after is not None and after.case.supervision_level == 1
    assert after.case.revision == 8 and pb.dt(after.case.updated_at) == AT
    assert after.case.state == events_pb2.CASE_STATE_ARCHIVED  # the lifecycle state is not touched
    (record,) = after.supervision.records  # the escalation module's level 1 record, open for the office
    assert (record.level, record.state, record.reason) == (1, esc.OPEN, "人大代表提请督办（请督办）")
    assert record.raised_by.subject == "service:deputy_liaison" and record.raised_by.role == "system"
    raised, event = decision.events
    assert isinstance(raised, sv.SupervisionRaised) and raised.record == record
    assert isinstance(event, deputy_escalation_pb2.CaseEscalatedByDeputy)
    assert (event.reason, event.submission_id, event.deputy_id, event.comment, event.previous_level) == (
        "deputy escalation", "S1", "DE1", "请督办", 0)
    assert event.case == after.case and decision.answer == after.case
    assert "deputy escalation" in decision.audit["detail"]


def test_a_case_supervised_higher_keeps_its_level_and_the_same_input_decides_the_same() -> None:
    higher = decide(case(level=3))
    assert higher.state is not None and higher.state.case.supervision_level == 3
    assert decide(case()) == decide(case())
    # one escalation per submission, whichever record carries it: a redelivery finds the first answer
    assert escalation.command_key(ESCALATED) == "deputy-escalation/S1"


def test_level_one_open_already_still_tells_the_deputy() -> None:
    before = case(state=events_pb2.CASE_STATE_IN_PROGRESS)
    opened = esc.decide(before, sv.RaiseSupervisionRequest(ticket_id="RD-S1", level=1, reason="超期：签收"),
                        Principal.system("supervision"), AT - timedelta(hours=1), RULES).state
    decision = decide(opened)
    assert decision.state is not None and len(decision.state.supervision.records) == 1  # no second record
    assert [type(e) for e in decision.events] == [deputy_escalation_pb2.CaseEscalatedByDeputy]
    assert decision.state.case.supervision_level == 1 and decision.state.case.revision == 8
    assert opened is not None and opened.case.revision == 7  # the loaded state is not changed in place


def test_no_case_no_supervision() -> None:
    with pytest.raises(DomainError) as refused:
        decide(None)
    assert refused.value.code == "not_found"


def record(message: object, event_type: str) -> Record:
    return Record(topic="hotline.deputy.v1", partition=0, offset=0, key="RD-S1",
                  value=message.SerializeToString(),  # type: ignore[attr-defined]
                  headers={"event_type": event_type, "event_id": "x"}, timestamp_ms=0)


def test_the_consumer_dispatches_on_the_type_and_skips_other_deputy_events() -> None:
    from services.supervision.levels.deputy_escalation_handlers import DeputyEscalations

    handler = DeputyEscalations(commands=None)  # type: ignore[arg-type]  # decoding needs no store
    assert handler.decode(record(ESCALATED, "hotline.v1.DeputyEscalated")) == ESCALATED
    rated = deputy_pb2.DeputyRated(submission_id="S1", ticket_id="RD-S1", rating="不满意")
    with pytest.raises(Skip):
        handler.decode(record(rated, "hotline.v1.DeputyRated"))


def test_the_deputy_timeline_and_the_kpis_see_the_raised_level() -> None:
    event = decide(case()).events[-1]
    decoded = EVENTS.decode(record(event, "hotline.v1.CaseEscalatedByDeputy"))
    status, text = status_of(decoded)
    assert status == "supervised" and "督办级别 1" in text
    raised = [u for u in projection.updates(event) if "supervision_level" in u.max]
    assert [(u.level, u.key, dict(u.max)) for u in raised] == [("dispatch", "RD-S1|1", {"supervision_level": 1})]
    assert "hotline.v1.CaseEscalatedByDeputy" in projection.EVENT_TYPES
