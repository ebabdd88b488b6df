"""Deputies' tickets close (issue #22): the deputy's rating is the case's evaluation, the office
calls back only after the SLA policy's deputy_callback limit, deputy figures use the KPI engine's
weights."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hotline import pb
from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.v1 import case_pb2, deputy_pb2, events_pb2, lifecycle_pb2
from services.deputy_liaison import core as deputy_core
from services.metrics.kpi import Figures, KpiPolicy
from services.supervision.cases import deputy_closure as dc
from services.supervision.cases import lifecycle as lc
from services.supervision.cases.sla import SlaClock, limits_of
from tests.unit.test_lifecycle import CALENDAR, CONTACT, NOW, OFFICE, PASS, REPLY, SLA, after, assigned, open_case


def reported_deputy_case() -> events_pb2.Case:
    a = assigned(assisting=(), city="")
    a.assignment.ticket_id = "RD-S1"
    a.source = "deputy"
    a.tags.append("人大代表")
    case = open_case(a, NOW - timedelta(hours=2))
    case = after(case, lifecycle_pb2.SignOffRequest(ticket_id="RD-S1"))
    for template in (CONTACT, REPLY):
        request = type(template)()
        request.CopyFrom(template)
        request.ticket_id = "RD-S1"  # type: ignore[attr-defined]
        case = after(case, request)
    review = lifecycle_pb2.ReviewRequest()
    review.CopyFrom(PASS)
    review.ticket_id = "RD-S1"
    return after(case, review, OFFICE)


def rated(rating: str, resolution: str = "") -> deputy_pb2.DeputyRated:
    return deputy_pb2.DeputyRated(submission_id="S1", ticket_id="RD-S1", deputy_id="D1", rating=rating,
                                  occurred_at=pb.ts(NOW), resolution=resolution)


def test_a_deputy_case_is_in_the_deputy_lane_and_reported_without_a_city_ticket() -> None:
    case = reported_deputy_case()
    assert case.state == lc.REPORTED and case.lane == "deputy" and dc.is_deputy_ticket(case)


@pytest.mark.parametrize(("rating", "state", "closure", "satisfaction"), [
    ("满意", lc.ARCHIVED, case_pb2.CLOSURE_SATISFIED, case_pb2.SATISFACTION_SATISFIED),
    ("基本满意", lc.ARCHIVED, case_pb2.CLOSURE_SATISFIED, case_pb2.SATISFACTION_BASICALLY_SATISFIED),
    ("不满意", lc.EVALUATED, case_pb2.CLOSURE_UNSPECIFIED, case_pb2.SATISFACTION_UNSATISFIED),
])
def test_the_deputys_rating_is_the_evaluation_and_closes_the_case(rating: str, state: int, closure: int,
                                                                   satisfaction: int) -> None:
    evaluation = dc.rating_evaluation(rated(rating))
    assert evaluation is not None and evaluation.city_ticket_id == "RD-S1"
    decision = lc.decide(reported_deputy_case(), evaluation, lc_system(), NOW, policy())
    assert decision.state is not None
    case = decision.state
    assert (case.state, case.closure, case.evaluation.satisfaction) == (state, closure, satisfaction)
    assert case.evaluation.resolution == (case_pb2.RESOLUTION_UNRESOLVED if rating == "不满意"
                                          else case_pb2.RESOLUTION_RESOLVED)
    again = lc.decide(case, evaluation, lc_system(), NOW, policy())  # the same rating delivered again
    assert again.state is None


def test_a_named_resolution_is_kept_and_an_unknown_rating_is_no_evaluation() -> None:
    evaluation = dc.rating_evaluation(rated("基本满意", "部分解决"))
    assert evaluation is not None and evaluation.resolution == case_pb2.RESOLUTION_PARTLY_RESOLVED
    assert dc.rating_evaluation(rated("还行")) is None


def test_the_office_calls_back_only_after_the_deputy_callback_limit() -> None:
    case = reported_deputy_case()
    limits = limits_of(SLA, case.sla_lanes)
    due = dc.callback_due(case, limits, CALENDAR)
    assert due == limits.due(SlaClock.DEPUTY_CALLBACK, pb.dt(case.reported_at), CALENDAR) > NOW
    body = lifecycle_pb2.CityEvaluation(satisfaction=case_pb2.SATISFACTION_SATISFIED,
                                        resolution=case_pb2.RESOLUTION_RESOLVED)
    with pytest.raises(DomainError, match="the deputy may rate"):
        dc.office_callback(case, body, limits, CALENDAR, due - timedelta(seconds=1))
    evaluation = dc.office_callback(case, body, limits, CALENDAR, due)
    closed = lc.decide(case, evaluation, OFFICE, due, policy()).state
    assert closed is not None and closed.state == lc.ARCHIVED
    with pytest.raises(DomainError, match="satisfaction is required"):
        dc.office_callback(case, lifecycle_pb2.CityEvaluation(), limits, CALENDAR, due)
    city = events_pb2.Case()
    city.CopyFrom(case)
    city.ticket_id, city.city_ticket_id = "C1", "C1"
    with pytest.raises(DomainError, match="the city calls back on its own tickets"):
        dc.office_callback(city, body, limits, CALENDAR, due)
    with pytest.raises(DomainError, match="once the result is reported"):
        dc.office_callback(closed, body, limits, CALENDAR, due)


def test_deputy_statistics_weigh_basically_satisfied_as_the_kpi_engine() -> None:
    policy = KpiPolicy.load()
    subs = [{"deputy_id": "D1", "status": "closed", "rating": {"rating": r}} for r in ("满意", "基本满意", "不满意")]
    subs.append({"deputy_id": "D1", "status": "closed",  # the office's callback: the case's evaluation
                 "case": {"state": "CASE_STATE_ARCHIVED", "evaluation": {"satisfaction": "SATISFACTION_SATISFIED"}}})
    (row,) = deputy_core.figures(subs, {"D1": {"level": "district", "street": "ST01"}}, policy)
    kpi = Figures()
    for bucket in ("satisfied", "basic", "unsatisfied", "satisfied"):
        kpi.add("satisfaction", bucket)
    expected = kpi.rate("satisfaction", policy).value
    assert expected is not None and policy.basically_satisfied_weight == pytest.approx(0.8)
    assert row["satisfaction_rate"] == pytest.approx(float(expected)) == pytest.approx(2.8 / 4)
    assert (row["rated"], row["satisfied"]) == (4, 3)


def lc_system() -> Principal:
    return Principal.system("deputy_liaison")


def policy() -> lc.Policy:
    from tests.unit.test_lifecycle import POLICY

    return POLICY


def test_the_deputy_rating_carries_the_deputys_actor() -> None:
    evaluation = dc.rating_evaluation(rated("满意"))
    assert evaluation is not None
    decision = lc.decide(reported_deputy_case(), evaluation, lc_system(), NOW, policy())
    evaluated = [e for e in decision.events if isinstance(e, lifecycle_pb2.CaseEvaluated)]
    assert evaluated and evaluated[0].actor.subject == "system:deputy_liaison"
