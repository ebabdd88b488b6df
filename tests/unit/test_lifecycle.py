"""The case lifecycle's state machine (services/supervision/cases/lifecycle.py), without I/O.

The first test walks every state x action: allowed exactly where the table says, and refused
elsewhere with a reason that names the states allowing it. The others pin each rule.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from hotline import pb
from hotline.auth import Principal
from hotline.calendar import WorkCalendar
from hotline.commands import Decision, DomainError
from hotline.envelope import JSON
from hotline.policy import Role
from hotline.settings import LimitSettings, Settings
from hotline.v1 import (
    case_pb2,
    events_pb2,
    knowledge_pb2,
    lifecycle_pb2,
    merging_pb2,
    park_pb2,
    routing_pb2,
    ticket_pb2,
)
from services.supervision.cases import core
from services.supervision.cases import lifecycle as lc
from services.supervision.cases.lifecycle import ALLOWED, STATES, Action
from services.supervision.cases.sla import SlaClock, limits_of, parse_policy

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in the district
NOW = T0 + timedelta(hours=3)
CALENDAR = WorkCalendar()
LIMITS = LimitSettings()
SLA = parse_policy(json.loads(Settings().sla.policy_file.read_text("utf-8")))


def open_case(request: events_pb2.TicketAssigned, now: datetime) -> events_pb2.Case:
    return core.open_case(request, now, SLA, CALENDAR)[0]


POLICY = lc.Policy(
    deadlines=lc.PeriodDeadlines(CALENDAR), tz=TZ, open_case=open_case,
    limits=lc.Limits.of(LIMITS), results_topic="t.city.results.v1",
)

UNIT = Principal("u-st01", Role.UNIT, unit_id="ST01")
HELPER = Principal("u-d07", Role.UNIT, unit_id="D07")  # the assisting unit
STRANGER = Principal("u-d99", Role.UNIT, unit_id="D99")
OFFICE = Principal("o-li", Role.OFFICE)
SYSTEM = Principal.system("supervision")


def assigned(round_: int = 1, primary: str = "ST01", assisting: tuple[str, ...] = ("D07",),
             city: str = "C1") -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(
            ticket_id="C1", primary_unit=events_pb2.Unit(unit_id=primary, name="瑞金路街道"),
            assisting_units=[events_pb2.Unit(unit_id=u, name=f"unit {u}") for u in assisting],
            dispatch_round=round_, assigned_at=pb.ts(T0), category="市容环卫"),
        received_at=pb.ts(T0 - timedelta(minutes=5)), city_ticket_id=city)


def opened(**kwargs: Any) -> events_pb2.Case:
    return open_case(assigned(**kwargs), T0)


def run(case: events_pb2.Case | None, request: Message, actor: Principal = UNIT,
        now: datetime = NOW) -> Decision[events_pb2.Case]:
    return lc.decide(case, request, actor, now, POLICY)


def after(case: events_pb2.Case | None, request: Message, actor: Principal = UNIT,
          now: datetime = NOW) -> events_pb2.Case:
    decision = run(case, request, actor, now)
    assert decision.state is not None
    return decision.state


def refused(code: str, case: events_pb2.Case | None, request: Message, actor: Principal = UNIT,
            now: datetime = NOW) -> str:
    with pytest.raises(DomainError) as caught:
        run(case, request, actor, now)
    assert caught.value.code == code, caught.value.message
    return caught.value.message


CONTACT = lifecycle_pb2.RecordContactRequest(ticket_id="C1", channel=case_pb2.CONTACT_CHANNEL_PHONE,
                                             outcome=case_pb2.CONTACT_OUTCOME_REACHED, note="已电话联系")
REPLY = lifecycle_pb2.ReplyRequest(ticket_id="C1", result=case_pb2.REPLY_RESULT_RESOLVED, text="已清理完毕",
                                   attachments=[case_pb2.Attachment(uri="https://files/x.jpg", name="现场.jpg")])
PASS = lifecycle_pb2.ReviewRequest(ticket_id="C1", passed=True)


def evaluation(eid: str = "E1", resolution: int = case_pb2.RESOLUTION_RESOLVED,
               satisfaction: int = case_pb2.SATISFACTION_SATISFIED, result_id: str = "") -> Message:
    return lifecycle_pb2.CityEvaluation(evaluation_id=eid, city_ticket_id="C1", resolution=resolution,  # type: ignore[arg-type]
                                        satisfaction=satisfaction, evaluated_at=pb.ts(NOW), result_id=result_id)  # type: ignore[arg-type]


def handled(assists_done: bool = True) -> events_pb2.Case:
    """Signed off, contacted, assisting units done: ready to reply."""
    case = after(opened(), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    case = after(case, CONTACT)
    if assists_done:
        case = after(case, lifecycle_pb2.SignOffRequest(ticket_id="C1"), HELPER)
        case = after(case, lifecycle_pb2.ContributeRequest(ticket_id="C1", text="已配合清运"), HELPER)
    return case


def in_state(state: int) -> events_pb2.Case:
    """A case in ``state``, reached through the machine itself where possible."""
    case = handled()
    match state:
        case lc.AWAITING_SIGN_OFF:
            case = opened()
        case lc.IN_PROGRESS:
            pass
        case lc.RETURN_REQUESTED:
            case = after(opened(), lifecycle_pb2.RequestReturnRequest(ticket_id="C1", reason="不属于本单位职责"))
        case lc.EXTENSION_REQUESTED:
            case = after(case, lifecycle_pb2.RequestExtensionRequest(ticket_id="C1", working_days=5, reason="需协调"))
        case lc.PARKED:  # the unit asks, the office approves (issue #22)
            case = after(case, lifecycle_pb2.ParkRequest(ticket_id="C1", plan="纳入明年改造计划",
                                                         target_date="2027-06-30", reason="需立项"))
            case = after(case, park_pb2.DecideParkRequest(ticket_id="C1", approved=True, reason="同意"), OFFICE)
        case lc.REPLIED:
            case = after(case, REPLY)
        case lc.SENT_BACK:
            case = after(after(case, REPLY), lifecycle_pb2.ReviewRequest(ticket_id="C1", reason="未附照片"), OFFICE)
        case lc.REPORTED:
            case = after(after(case, REPLY), PASS, OFFICE)
        case lc.EVALUATED:
            case = after(after(after(case, REPLY), PASS, OFFICE),
                         evaluation(satisfaction=case_pb2.SATISFACTION_UNSATISFIED), SYSTEM)
        case lc.ARCHIVED:
            case = after(after(after(case, REPLY), PASS, OFFICE), evaluation(), SYSTEM)
    assert case.state == state
    return case


def prepared(action: Action, case: events_pb2.Case) -> tuple[events_pb2.Case, Message, Principal]:
    """The case with the action's own preconditions met, a valid request, and the right actor."""
    c = events_pb2.Case()
    c.CopyFrom(case)
    match action:
        case Action.SIGN_OFF:
            return c, lifecycle_pb2.SignOffRequest(ticket_id="C1", note="收到"), UNIT
        case Action.ASSIST_SIGN_OFF:
            c.assists[0].state = case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF
            return c, lifecycle_pb2.SignOffRequest(ticket_id="C1"), HELPER
        case Action.RECORD_CONTACT:
            return c, CONTACT, UNIT
        case Action.REPLY:
            if not c.HasField("first_contact_at"):
                c.first_contact_at.CopyFrom(pb.ts(NOW))
            for task in c.assists:
                task.state = case_pb2.ASSIST_STATE_CONTRIBUTED
            return c, REPLY, UNIT
        case Action.REQUEST_EXTENSION:
            c.ClearField("extension")
            return c, lifecycle_pb2.RequestExtensionRequest(ticket_id="C1", working_days=3, reason="需协调"), UNIT
        case Action.DECIDE_EXTENSION:
            if not c.HasField("extension"):
                c.extension.CopyFrom(case_pb2.Extension(working_days=3, status=case_pb2.EXTENSION_STATUS_REQUESTED))
            return c, lifecycle_pb2.DecideExtensionRequest(ticket_id="C1", approved=True), OFFICE
        case Action.PARK:
            c.ClearField("park")
            return c, lifecycle_pb2.ParkRequest(ticket_id="C1", plan="计划", target_date="2027-03-01",
                                                reason="长期"), UNIT
        case Action.DECIDE_PARK:
            c.park.CopyFrom(case_pb2.Park(plan="计划", target_date="2027-03-01", status="requested"))
            return c, park_pb2.DecideParkRequest(ticket_id="C1", approved=True, reason="同意"), OFFICE
        case Action.RESUME:
            return c, park_pb2.ResumeRequest(ticket_id="C1", reason="条件具备"), UNIT
        case Action.REPORT_PROGRESS:
            return c, lifecycle_pb2.ReportProgressRequest(ticket_id="C1", progress="已完成设计"), UNIT
        case Action.REQUEST_RETURN:
            return c, lifecycle_pb2.RequestReturnRequest(ticket_id="C1", reason="非本单位职责"), UNIT
        case Action.REFUSE_RETURN:
            return c, lifecycle_pb2.ReturnDecision(ticket_id="C1", approved=False, reason="属于该单位"), SYSTEM
        case Action.REDISPATCH:
            return c, assigned(round_=2, primary="ST02"), SYSTEM
        case Action.REVIEW:
            return c, PASS, OFFICE
        case Action.EVALUATE:
            return c, evaluation(), SYSTEM
        case Action.DECIDE_REDO:
            return c, lifecycle_pb2.DecideRedoRequest(ticket_id="C1", redo=True, reason="再次核实"), OFFICE
        case Action.CONTRIBUTE:
            c.assists[0].state = case_pb2.ASSIST_STATE_SIGNED_OFF
            return c, lifecycle_pb2.ContributeRequest(ticket_id="C1", text="协办意见"), HELPER
        case Action.WAIVE_ASSIST:
            c.assists[0].state = case_pb2.ASSIST_STATE_SIGNED_OFF
            return c, lifecycle_pb2.WaiveAssistRequest(ticket_id="C1", unit_id="D07", reason="无需协办"), OFFICE
        case Action.DIRECT_ANSWER:
            c.ticket_type = ticket_pb2.TICKET_TYPE_CONSULTATION
            for task in c.assists:
                task.state = case_pb2.ASSIST_STATE_WAIVED
            return c, DIRECT, OFFICE
        case Action.CLOSE_MERGED:
            return c, CLOSE_MERGED, SYSTEM
        case Action.SUB_DISPATCH:  # 加派 (routing's SubDispatched): the community's clock (s2-22-clocks)
            return c, routing_pb2.SubDispatched(
                ticket_id="C1", dispatch_round=c.dispatch_round, street_unit=c.primary_unit,
                community_unit=events_pb2.Unit(unit_id="CM0101", name="社区"), dispatched_at=pb.ts(NOW)), SYSTEM
    raise AssertionError(action)


CASES_BY_STATE = {s: in_state(s) for s in STATES}
PARENT = events_pb2.Case(ticket_id="P1", state=events_pb2.CASE_STATE_ARCHIVED,
                         reply=case_pb2.Reply(text="已清理占道摊点"))
CLOSE_MERGED = merging_pb2.CloseMergedRequest(ticket_id="C1", parent=PARENT)
ARTICLE = knowledge_pb2.ArticleRef(article_id="KA-1", version=2, title="居住证办理指南", unit_id="D03")
DIRECT = knowledge_pb2.DirectAnswerRequest(ticket_id="C1", article=ARTICLE, text="持身份证到街道便民服务中心办理")


@pytest.mark.parametrize("state", STATES, ids=[events_pb2.CaseState.Name(s) for s in STATES])
@pytest.mark.parametrize("action", list(Action), ids=[str(a) for a in Action])
def test_every_state_and_action_is_allowed_or_refused_as_the_table_says(action: Action, state: int) -> None:
    case, request, actor = prepared(action, CASES_BY_STATE[state])
    if action == Action.EVALUATE:  # the city's word is never refused: applied, kept or ignored
        decision = run(case, request, actor)
        fate = "apply" if state == lc.REPORTED else ("ignore" if state in (lc.EVALUATED, lc.ARCHIVED) else "keep")
        assert lc.evaluation_fate(case, request) == fate  # type: ignore[arg-type]
        if fate == "apply":
            assert decision.events and isinstance(decision.events[0], lifecycle_pb2.CaseEvaluated)
        elif fate == "keep":
            assert decision.state is not None and not decision.events
            assert [p.evaluation_id for p in decision.state.pending_evaluations] == ["E1"]
        else:
            assert decision.state is None and not decision.events
        return
    if state in ALLOWED[action]:
        decision = run(case, request, actor)
        assert decision.state is not None and decision.events, f"{action} in {state} changed nothing"
        final = decision.state
        for event in decision.events:
            assert event.case.ticket_id == "C1"  # type: ignore[attr-defined]
            if not isinstance(event, events_pb2.CaseOpened):  # CaseOpened carries the case only
                assert event.actor.role and event.HasField("occurred_at")  # type: ignore[attr-defined]
        assert decision.events[-1].case == final  # type: ignore[attr-defined]
        assert final.revision == case.revision + len(decision.events)
    else:
        message = refused("failed_precondition", case, request, actor)
        assert events_pb2.CaseState.Name(state) in message
        for allowed in ALLOWED[action]:
            assert events_pb2.CaseState.Name(allowed) in message, message


def test_the_table_covers_every_action_and_only_open_states_allow_anything() -> None:
    assert set(ALLOWED) == set(Action) == set(lc.ACTOR_OF)
    assert all(lc.ARCHIVED not in states for states in ALLOWED.values())
    assert set(lc.HANDLERS) | {Action.EVALUATE} == set(Action)


# ------------------------------------------------------------------------------------ who may act


def test_a_unit_sees_only_cases_it_handles_or_assists() -> None:
    refused("not_found", opened(), lifecycle_pb2.SignOffRequest(ticket_id="C1"), STRANGER)
    refused("not_found", None, lifecycle_pb2.SignOffRequest(ticket_id="C1"), UNIT)


def test_only_the_primary_unit_does_the_primary_actions_and_only_the_office_decides() -> None:
    case = handled()
    assert "primary unit" in refused("permission_denied", case, REPLY, HELPER)
    refused("permission_denied", case, REPLY, OFFICE)
    replied = after(case, REPLY)
    refused("permission_denied", replied, PASS, UNIT)
    refused("permission_denied", opened(), lifecycle_pb2.ContributeRequest(ticket_id="C1", text="x"), UNIT)
    refused("permission_denied", opened(), assigned(round_=2), OFFICE)


# ------------------------------------------------------------------------------------ the steps


def test_sign_off_and_first_contact_are_timed() -> None:
    decision = run(opened(), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    event = decision.events[0]
    assert isinstance(event, lifecycle_pb2.CaseSignedOff) and event.on_time and not event.assisting
    assert event.actor == case_pb2.Actor(subject="u-st01", role="unit", unit_id="ST01")
    late = run(opened(), lifecycle_pb2.SignOffRequest(ticket_id="C1"), now=T0 + timedelta(hours=25))
    assert not late.events[0].on_time  # type: ignore[attr-defined]
    case = after(opened(), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    at = NOW - timedelta(minutes=30)
    contact = lifecycle_pb2.RecordContactRequest()
    contact.CopyFrom(CONTACT)
    contact.contacted_at.CopyFrom(pb.ts(at))
    first = run(case, contact)
    assert first.events[0].first and pb.dt(first.state.first_contact_at) == at  # type: ignore[attr-defined,union-attr]
    second = run(first.state, CONTACT)
    assert not second.events[0].first and second.state.contacts == 2  # type: ignore[attr-defined,union-attr]
    assert pb.dt(second.state.first_contact_at) == at  # type: ignore[union-attr]
    future = lifecycle_pb2.RecordContactRequest()
    future.CopyFrom(CONTACT)
    future.contacted_at.CopyFrom(pb.ts(NOW + timedelta(hours=1)))
    assert "future" in refused("invalid_argument", case, future)
    assert "channel" in refused("invalid_argument", case, lifecycle_pb2.RecordContactRequest(ticket_id="C1"))


def test_a_reply_needs_a_contact_text_an_explanation_when_unresolvable_and_the_assisting_units() -> None:
    signed = after(opened(assisting=()), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    assert "contact" in refused("failed_precondition", signed, REPLY)
    case = handled(assists_done=False)
    message = refused("failed_precondition", case, REPLY)
    assert "D07" in message and "WaiveAssist" in message
    waived = after(case, lifecycle_pb2.WaiveAssistRequest(ticket_id="C1", unit_id="D07", reason="无需"), OFFICE)
    assert waived.assists[0].state == case_pb2.ASSIST_STATE_WAIVED
    no_text = lifecycle_pb2.ReplyRequest(ticket_id="C1", result=case_pb2.REPLY_RESULT_RESOLVED)
    refused("invalid_argument", waived, no_text)
    unresolvable = lifecycle_pb2.ReplyRequest(ticket_id="C1", result=case_pb2.REPLY_RESULT_NOT_RESOLVABLE, text="无法")
    assert "解释说明" in refused("invalid_argument", waived, unresolvable)
    unresolvable.explanation = "涉及历史遗留产权问题，已向诉求人解释"
    replied = after(waived, unresolvable)
    assert replied.state == lc.REPLIED and replied.reply.on_time and replied.HasField("replied_at")


def test_assisting_units_sign_off_then_contribute_once() -> None:
    case = opened()
    refused("failed_precondition", case, lifecycle_pb2.ContributeRequest(ticket_id="C1", text="x"), HELPER)
    decision = run(case, lifecycle_pb2.SignOffRequest(ticket_id="C1"), HELPER)
    event = decision.events[0]
    assert isinstance(event, lifecycle_pb2.CaseSignedOff) and event.assisting and event.unit_id == "D07"
    assert decision.state is not None and decision.state.state == lc.AWAITING_SIGN_OFF  # the case is the primary's
    refused("failed_precondition", decision.state, lifecycle_pb2.SignOffRequest(ticket_id="C1"), HELPER)
    done = after(decision.state, lifecycle_pb2.ContributeRequest(ticket_id="C1", text="已配合"), HELPER)
    assert done.assists[0].state == case_pb2.ASSIST_STATE_CONTRIBUTED and done.assists[0].contribution == "已配合"
    refused("failed_precondition", done, lifecycle_pb2.ContributeRequest(ticket_id="C1", text="again"), HELPER)
    refused("not_found", done, lifecycle_pb2.WaiveAssistRequest(ticket_id="C1", unit_id="D99", reason="x"), OFFICE)


def test_an_extension_is_asked_once_within_ten_working_days_and_moves_the_deadline_when_approved() -> None:
    case = handled()
    ask = lifecycle_pb2.RequestExtensionRequest(ticket_id="C1", working_days=11, reason="需协调多部门")
    assert "1 to 10" in refused("invalid_argument", case, ask)
    ask.working_days = 5
    asked = after(case, ask)
    assert asked.state == lc.EXTENSION_REQUESTED
    assert "more than" in refused("invalid_argument", asked, lifecycle_pb2.DecideExtensionRequest(
        ticket_id="C1", approved=True, working_days=6), OFFICE)
    approved = run(asked, lifecycle_pb2.DecideExtensionRequest(ticket_id="C1", approved=True, reason="同意"), OFFICE)
    state = approved.state
    assert state is not None and state.state == lc.IN_PROGRESS
    assert state.extension.status == case_pb2.EXTENSION_STATUS_APPROVED and state.extension.granted_working_days == 5
    # received Monday 11-23: due at 24:00 on Monday 11-30; 5 working days more end at 24:00 on Monday 12-07
    assert pb.dt(case.reply_due) == datetime(2026, 12, 1, tzinfo=TZ)
    assert pb.dt(state.reply_due) == datetime(2026, 12, 8, tzinfo=TZ)
    assert state.extension.previous_reply_due == case.reply_due
    assert isinstance(approved.events[0], lifecycle_pb2.ExtensionDecided) and approved.events[0].approved
    assert "may ask 1 extension" in refused("failed_precondition", state, ask)  # the policy's max_extensions
    rejected = after(asked, lifecycle_pb2.DecideExtensionRequest(ticket_id="C1", approved=False, reason="理由不足"),
                     OFFICE)
    assert rejected.reply_due == case.reply_due and rejected.extension.status == case_pb2.EXTENSION_STATUS_REJECTED
    refused("invalid_argument", asked, lifecycle_pb2.DecideExtensionRequest(ticket_id="C1", approved=False), OFFICE)


def test_a_policy_allowing_two_extensions_lets_a_round_ask_a_second_and_remembers_the_first() -> None:
    two = dataclasses.replace(POLICY, limits=dataclasses.replace(POLICY.limits, max_extensions=2))
    case = handled()
    ask = lifecycle_pb2.RequestExtensionRequest(ticket_id="C1", working_days=3, reason="需协调多部门")
    first = lc.decide(case, ask, UNIT, NOW, two).state
    assert first is not None and first.extension.number == 1
    approve = lifecycle_pb2.DecideExtensionRequest(ticket_id="C1", approved=True, reason="同意")
    extended = lc.decide(first, approve, OFFICE, NOW, two).state
    assert extended is not None and lc.approved_extensions(extended) == 1
    second = lc.decide(extended, ask, UNIT, NOW, two).state
    assert second is not None and second.extension.number == 2 and second.extension.approved_before == 1
    rejected = lc.decide(second, lifecycle_pb2.DecideExtensionRequest(ticket_id="C1", approved=False, reason="不同意"),
                         OFFICE, NOW, two).state
    assert rejected is not None and rejected.reply_due == extended.reply_due
    assert lc.approved_extensions(rejected) == 1  # the first one still counts: the result says extended
    assert lc.city_result(rejected, NOW).extended
    with pytest.raises(DomainError, match="may ask 2 extension"):
        lc.decide(rejected, ask, UNIT, NOW, two)
    assert not lc.city_result(case, NOW).extended


def test_a_parked_case_reports_progress_monthly_and_replies_when_done() -> None:
    case = handled()
    past = lifecycle_pb2.ParkRequest(ticket_id="C1", plan="计划", target_date="2026-11-01", reason="长期")
    assert "after today" in refused("invalid_argument", case, past)
    refused("invalid_argument", case, lifecycle_pb2.ParkRequest(ticket_id="C1", plan="计划", target_date="明年",
                                                                reason="x"))
    asked = after(case, lifecycle_pb2.ParkRequest(ticket_id="C1", plan="纳入2027年老旧小区改造",
                                                  target_date="2027-06-30",
                                                  reason="需财政立项"))
    assert asked.state == lc.IN_PROGRESS and asked.park.status == "requested"  # the office decides (issue #22)
    parked = after(asked, park_pb2.DecideParkRequest(ticket_id="C1", approved=True, reason="同意挂账"), OFFICE)
    assert parked.state == lc.PARKED and pb.dt(parked.park.next_report_due) == NOW + timedelta(days=30)
    later = NOW + timedelta(days=29)
    reported = run(parked, lifecycle_pb2.ReportProgressRequest(ticket_id="C1", progress="已完成设计"), now=later)
    state = reported.state
    assert state is not None and state.park.reports == 1 and state.park.last_progress == "已完成设计"
    assert pb.dt(state.park.next_report_due) == later + timedelta(days=30)
    assert reported.events[0].report.number == 1  # type: ignore[attr-defined]
    assert after(state, REPLY, now=later).state == lc.REPLIED


def test_a_return_is_asked_within_its_limit_and_routing_decides_it() -> None:
    ask = lifecycle_pb2.RequestReturnRequest(ticket_id="C1", reason="属于区住建委职责")
    case = opened()
    late = pb.dt(case.return_due) + timedelta(minutes=1)
    assert "退单时限" in refused("failed_precondition", case, ask, now=late)
    asked = after(case, ask)
    assert asked.state == lc.RETURN_REQUESTED and not asked.return_request.signed_off
    back = after(asked, lifecycle_pb2.ReturnDecision(ticket_id="C1", dispatch_round=1, approved=False,
                                                     reason="属于该街道职责"), SYSTEM)
    assert back.state == lc.AWAITING_SIGN_OFF and back.return_request.status == case_pb2.RETURN_STATUS_REFUSED
    signed = after(after(opened(), lifecycle_pb2.SignOffRequest(ticket_id="C1")), ask)
    assert signed.return_request.signed_off
    back2 = after(signed, lifecycle_pb2.ReturnDecision(ticket_id="C1", approved=False, reason="驳回"), SYSTEM)
    assert back2.state == lc.IN_PROGRESS
    approved = run(asked, lifecycle_pb2.ReturnDecision(ticket_id="C1", approved=True), SYSTEM)
    # the re-dispatch closes it; until then the office's dispatch clock runs (recorded, no event)
    assert approved.state is not None and not approved.events
    assert approved.state.state == lc.RETURN_REQUESTED
    assert approved.state.return_request.status == case_pb2.RETURN_STATUS_APPROVED
    again = run(approved.state, lifecycle_pb2.ReturnDecision(ticket_id="C1", approved=True), SYSTEM)
    assert again.state is None  # a repeated approval changes nothing


def test_a_refused_return_cannot_be_asked_again() -> None:
    ask = lifecycle_pb2.RequestReturnRequest(ticket_id="C1", reason="不属于")
    back = after(after(opened(), ask), lifecycle_pb2.ReturnDecision(ticket_id="C1", approved=False, reason="x"), SYSTEM)
    assert "already refused" in refused("failed_precondition", back, ask)


def test_a_redispatch_closes_the_units_case_and_opens_the_next_round() -> None:
    asked = after(opened(), lifecycle_pb2.RequestReturnRequest(ticket_id="C1", reason="不属于"))
    decision = run(asked, assigned(round_=2, primary="D12", assisting=()), SYSTEM, now=NOW)
    closed, reopened = decision.events
    assert isinstance(closed, lifecycle_pb2.CaseClosed) and closed.closure == case_pb2.CLOSURE_REDISPATCHED
    assert closed.case.state == lc.ARCHIVED and closed.case.primary_unit.unit_id == "ST01"
    assert closed.case.return_request.status == case_pb2.RETURN_STATUS_APPROVED
    assert isinstance(reopened, events_pb2.CaseOpened)
    new = decision.state
    assert new is not None and new.dispatch_round == 2 and new.primary_unit.unit_id == "D12"
    assert new.state == lc.AWAITING_SIGN_OFF and new.revision == asked.revision + 2
    same = run(new, assigned(round_=2, primary="D12"), SYSTEM)
    assert same.state is None and not same.events  # a replayed assignment changes nothing


def test_a_failed_review_sends_the_case_back_to_redo_with_a_new_limit() -> None:
    replied = after(handled(), REPLY)
    assert "重办理由" in refused("invalid_argument", replied, lifecycle_pb2.ReviewRequest(ticket_id="C1"), OFFICE)
    decision = run(replied, lifecycle_pb2.ReviewRequest(ticket_id="C1", reason="未附现场照片", redo_working_days=3),
                   OFFICE)
    case = decision.state
    assert case is not None and case.state == lc.SENT_BACK and case.redo_round == 1
    assert pb.dt(case.reply_due) == datetime(2026, 11, 27, tzinfo=TZ)  # Monday + 3 working days, 24:00
    assert not case.HasField("reply") and not decision.outbound
    assert isinstance(decision.events[0], lifecycle_pb2.ReviewDecided) and not decision.events[0].passed
    redone = after(case, REPLY)
    assert redone.reply.redo_round == 1


def test_a_passed_review_sends_one_result_to_the_city_as_json() -> None:
    replied = after(handled(), REPLY)
    decision = run(replied, PASS, OFFICE)
    case = decision.state
    assert case is not None and case.state == lc.REPORTED and case.result_id == "C1/result/1/0"
    (out,) = decision.outbound
    assert (out.topic, out.key, out.event_id, out.content_type) == ("t.city.results.v1", "C1", "C1/result/1/0", JSON)
    body = json_format.Parse(out.value(), lifecycle_pb2.CityResult())
    assert body.result_id == "C1/result/1/0" and body.city_ticket_id == "C1" and body.text == "已清理完毕"
    assert body.handling_unit.unit_id == "ST01" and body.on_time and body.HasField("first_contact_at")
    assert b'"cityTicketId": "C1"' in out.value() or b'"cityTicketId":"C1"' in out.value()
    deputy = after(after(handled(), REPLY), PASS, OFFICE)
    assert deputy.result_id
    not_city = events_pb2.Case()
    not_city.CopyFrom(replied)
    not_city.city_ticket_id = ""
    assert not run(not_city, PASS, OFFICE).outbound  # a deputy's ticket is not the city's


def test_a_merged_case_closes_with_its_parent_through_the_lifecycle() -> None:
    """并单: CLOSE_MERGED (the platform's) archives the case with the parent's reply, its closure
    CLOSURE_MERGED, and sends the city the parent's result for its own ticket (回传); once."""
    decision = run(opened(), CLOSE_MERGED, SYSTEM)
    child = decision.state
    assert child is not None and child.state == lc.ARCHIVED and child.closure == case_pb2.CLOSURE_MERGED
    assert child.reply.text == "已清理占道摊点" and child.closing_explanation.startswith("并单至 P1")
    (closed,) = decision.events
    assert isinstance(closed, lifecycle_pb2.CaseClosed) and closed.closure == case_pb2.CLOSURE_MERGED
    assert closed.actor.subject == SYSTEM.subject and closed.case == child
    (result,) = decision.outbound  # the city hears the parent's result for its ticket (回传)
    assert (result.topic, result.key, result.event_id) == ("t.city.results.v1", "C1", "C1/result/1/0")
    assert isinstance(result.message, lifecycle_pb2.CityResult) and result.message.text == "已清理占道摊点"
    assert "failed_precondition" == refused_code(child, CLOSE_MERGED, SYSTEM)  # an archived case stays as it is
    refused("permission_denied", opened(), CLOSE_MERGED, OFFICE)  # the platform's, not a person's
    no_reply = merging_pb2.CloseMergedRequest(ticket_id="C1", parent=events_pb2.Case(
        ticket_id="P1", state=events_pb2.CASE_STATE_ARCHIVED, closing_explanation="不再重办：已解释"))
    explained = run(opened(), no_reply, SYSTEM)
    assert explained.state is not None and "已解释" in explained.state.closing_explanation
    assert not explained.outbound  # no reply of the parent: nothing to report to the city


def refused_code(case: events_pb2.Case, request: Message, actor: Principal) -> str:
    with pytest.raises(DomainError) as caught:
        run(case, request, actor)
    return caught.value.code


def test_evaluations_close_or_wait_for_the_office() -> None:
    reported = in_state(lc.REPORTED)
    happy = run(reported, evaluation(), SYSTEM)
    assert [type(e) for e in happy.events] == [lifecycle_pb2.CaseEvaluated, lifecycle_pb2.CaseClosed]
    assert happy.state is not None and happy.state.state == lc.ARCHIVED
    assert happy.state.closure == case_pb2.CLOSURE_SATISFIED and happy.state.evaluation.result_id == "C1/result/1/0"
    assert happy.events[0].actor == lc.CITY  # type: ignore[attr-defined]
    partly = run(reported, evaluation(resolution=case_pb2.RESOLUTION_PARTLY_RESOLVED,
                                      satisfaction=case_pb2.SATISFACTION_BASICALLY_SATISFIED), SYSTEM)
    assert partly.state is not None and partly.state.state == lc.ARCHIVED
    for poor in (evaluation(resolution=case_pb2.RESOLUTION_UNRESOLVED),
                 evaluation(satisfaction=case_pb2.SATISFACTION_UNSATISFIED)):
        d = run(reported, poor, SYSTEM)
        assert d.state is not None and d.state.state == lc.EVALUATED and d.events[0].needs_decision  # type: ignore[attr-defined]


def test_after_a_poor_evaluation_the_office_redoes_or_closes_with_an_explanation() -> None:
    evaluated = in_state(lc.EVALUATED)
    redo = run(evaluated, lifecycle_pb2.DecideRedoRequest(ticket_id="C1", redo=True, reason="诉求人反映仍有异味"),
               OFFICE)
    case = redo.state
    assert case is not None and case.state == lc.SENT_BACK and case.redo_round == 1
    case = after(after(case, REPLY), PASS, OFFICE)
    assert case.result_id == "C1/result/1/1"
    closed = after(case, evaluation("E2", satisfaction=case_pb2.SATISFACTION_SATISFIED), SYSTEM)
    assert closed.state == lc.ARCHIVED and closed.evaluation.evaluation_id == "E2"
    refused("invalid_argument", evaluated, lifecycle_pb2.DecideRedoRequest(ticket_id="C1"), OFFICE)
    close = run(evaluated, lifecycle_pb2.DecideRedoRequest(ticket_id="C1", reason="已尽力协调，诉求超出政策范围"),
                OFFICE)
    assert [type(e) for e in close.events] == [lifecycle_pb2.RedoDecided, lifecycle_pb2.CaseClosed]
    assert close.state is not None and close.state.closure == case_pb2.CLOSURE_EXPLAINED
    assert close.state.closing_explanation.startswith("已尽力")


def test_an_early_evaluation_is_kept_and_applied_when_its_result_is_reported() -> None:
    replied = after(handled(), REPLY)
    kept = after(replied, evaluation("E9", result_id="C1/result/1/0"), SYSTEM)
    assert kept.state == lc.REPLIED and [p.evaluation_id for p in kept.pending_evaluations] == ["E9"]
    again = run(kept, evaluation("E9", result_id="C1/result/1/0"), SYSTEM)
    assert again.state is None  # the same evaluation twice: nothing new
    decision = run(kept, PASS, OFFICE)
    assert [type(e) for e in decision.events] == [lifecycle_pb2.ReviewDecided, lifecycle_pb2.CaseEvaluated,
                                                   lifecycle_pb2.CaseClosed]
    assert decision.state is not None and decision.state.state == lc.ARCHIVED
    assert not decision.state.pending_evaluations and len(decision.outbound) == 1


def test_an_evaluation_of_a_superseded_result_is_ignored_and_one_of_a_later_result_waits() -> None:
    sent_back = in_state(lc.SENT_BACK)  # result round 0 never reported; redo round 1 under way
    assert run(sent_back, evaluation("E1", result_id="C1/result/1/0"), SYSTEM).state is None
    assert run(sent_back, evaluation("E1", result_id="X9/result/1/5"), SYSTEM).state is None
    waits = after(sent_back, evaluation("E2", result_id="C1/result/1/1"), SYSTEM)
    assert [p.evaluation_id for p in waits.pending_evaluations] == ["E2"]
    reported = after(after(waits, REPLY), PASS, OFFICE)
    assert reported.state == lc.ARCHIVED and reported.evaluation.evaluation_id == "E2"


def test_an_evaluation_for_no_case_is_not_found_so_the_consumer_keeps_it() -> None:
    refused("not_found", None, evaluation(), SYSTEM)


def test_history_detail_and_event_types_go_to_the_audit_entry() -> None:
    decision = run(in_state(lc.REPORTED), evaluation(), SYSTEM)
    assert decision.audit["events"] == ["hotline.v1.CaseEvaluated", "hotline.v1.CaseClosed"]
    assert "回访" in decision.audit["detail"]


def clocks(case: events_pb2.Case) -> dict[str, datetime]:
    limits = limits_of(SLA, list(case.sla_lanes))
    return {t.kind: t.due_at for t in core.case_timers(case, limits, CALENDAR)}


def test_the_lifecycle_states_decide_which_clocks_run() -> None:
    """Every transition arms, moves or stops the case's timers (the store saves exactly these)."""
    case = opened(assisting=())
    assert clocks(case) == {"sign_off": pb.dt(case.sign_off_due), "contact": pb.dt(case.contact_due),
                            "reply": pb.dt(case.reply_due)}
    signed = after(case, lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    assert set(clocks(signed)) == {"contact", "reply"}  # signed off: the sign-off clock stops
    contacted = after(signed, CONTACT)
    assert set(clocks(contacted)) == {"reply"}
    asked = after(contacted, lifecycle_pb2.RequestExtensionRequest(ticket_id="C1", working_days=5, reason="协调"))
    running = clocks(asked)
    assert set(running) == {"reply", "extension_decision"}
    assert running["extension_decision"] == datetime(2026, 11, 25, tzinfo=TZ)  # 1 working day after Monday
    granted = after(asked, lifecycle_pb2.DecideExtensionRequest(ticket_id="C1", approved=True, reason="同意"), OFFICE)
    assert clocks(granted) == {"reply": datetime(2026, 12, 8, tzinfo=TZ)}  # the reply clock moved
    replied = after(granted, REPLY)
    assert clocks(replied) == {}  # replied: the office's review has no clock of the unit
    asked = after(contacted, lifecycle_pb2.ParkRequest(ticket_id="C1", plan="改造", target_date="2027-03-01",
                                                       reason="需立项"))
    assert set(clocks(asked)) == {"reply"}  # only asked: the clocks run (no unit stops its own clock)
    parked = after(asked, park_pb2.DecideParkRequest(ticket_id="C1", approved=True, reason="同意"), OFFICE)
    # 挂账 approved: the policy's park_stops (contact, reply) stop; the monthly progress report is timed
    assert clocks(parked) == {"park_progress": NOW + timedelta(days=30)}


def test_a_return_runs_the_offices_clocks_until_the_redispatch() -> None:
    asked = after(opened(), lifecycle_pb2.RequestReturnRequest(ticket_id="C1", reason="不属于"))
    assert set(clocks(asked)) == {"reply", "return_decision"}  # no sign-off clock while the office decides
    approved = after(asked, lifecycle_pb2.ReturnDecision(ticket_id="C1", approved=True), SYSTEM, now=NOW)
    running = clocks(approved)
    assert running["dispatch"] == NOW + timedelta(minutes=5)  # the office re-dispatches within 5 minutes
    assert SlaClock.RETURN_DECISION.value not in running
    new = after(approved, assigned(round_=2, primary="D12", assisting=()), SYSTEM, now=NOW)
    assert set(clocks(new)) == {"sign_off", "contact", "reply"}  # the next round's clocks, the dispatch one stopped
    assert new.policy_version == SLA.version


# ------------------------------------------------------------------------------------ 直接答复 (issue 25)


def consultation() -> events_pb2.Case:
    c = opened(assisting=())
    c.ticket_type = ticket_pb2.TICKET_TYPE_CONSULTATION
    return c


def test_a_direct_answer_is_a_reply_with_the_article_that_passes_review_and_reaches_the_city() -> None:
    decision = run(consultation(), DIRECT, OFFICE)
    replied = decision.state
    assert replied is not None and replied.state == lc.REPLIED
    event = decision.events[0]
    assert isinstance(event, lifecycle_pb2.CaseReplied) and event.reply.article == ARTICLE
    assert replied.reply.text == DIRECT.text and replied.reply.result == case_pb2.REPLY_RESULT_RESOLVED
    passed = run(replied, PASS, OFFICE)
    assert passed.state is not None and passed.state.state == lc.REPORTED
    (result,) = passed.outbound
    assert result.message.article == ARTICLE and result.message.text == DIRECT.text  # type: ignore[attr-defined]
    closed = after(passed.state, evaluation(), SYSTEM)
    assert closed.state == lc.ARCHIVED and closed.reply.article.article_id == "KA-1"


def test_only_the_office_answers_directly_and_only_a_consultation() -> None:
    refused("permission_denied", consultation(), DIRECT, UNIT)
    complaint = consultation()
    complaint.ticket_type = ticket_pb2.TICKET_TYPE_COMPLAINT
    assert "咨询" in refused("failed_precondition", complaint, DIRECT, OFFICE)
    no_article = knowledge_pb2.DirectAnswerRequest(ticket_id="C1", text="答复")
    refused("invalid_argument", consultation(), no_article, OFFICE)
    refused("invalid_argument", consultation(), knowledge_pb2.DirectAnswerRequest(ticket_id="C1", article=ARTICLE),
            OFFICE)


def test_a_unit_cannot_park_by_itself_and_the_stopped_clocks_resume_later_by_the_time_parked() -> None:
    """挂账 (issue #22): the unit asks with plan and target date, the office decides; approved,
    the clocks the SLA policy's park_stops names stop; resumed, they run again, later by the time
    the case was parked."""
    case = after(opened(assisting=()), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    ask = lifecycle_pb2.ParkRequest(ticket_id="C1", plan="纳入改造计划", target_date="2027-06-30", reason="需立项")
    asked = after(case, ask)
    assert asked.state == lc.IN_PROGRESS and set(clocks(asked)) == {"contact", "reply"}
    assert "already waiting" in refused("failed_precondition", asked, ask)
    decide = park_pb2.DecideParkRequest(ticket_id="C1", approved=True, reason="同意")
    refused("permission_denied", asked, decide, UNIT)  # no unit approves its own parking
    assert "no park request" in refused("failed_precondition", case, decide, OFFICE)
    no = after(asked, park_pb2.DecideParkRequest(ticket_id="C1", approved=False, reason="应继续办理"), OFFICE)
    assert no.state == lc.IN_PROGRESS and no.park.status == "refused" and set(clocks(no)) == {"contact", "reply"}

    parked = after(asked, decide, OFFICE)
    assert parked.state == lc.PARKED and list(parked.park.stopped_clocks) == ["contact", "reply"]
    assert set(clocks(parked)) == {"park_progress"}
    ten_days = NOW + timedelta(days=10)
    resumed = after(parked, park_pb2.ResumeRequest(ticket_id="C1", reason="资金到位"), UNIT, now=ten_days)
    assert resumed.state == lc.IN_PROGRESS and resumed.park.status == "resumed"
    assert pb.dt(resumed.reply_due) == pb.dt(case.reply_due) + timedelta(days=10)
    assert pb.dt(resumed.contact_due) == pb.dt(case.contact_due) + timedelta(days=10)
    assert clocks(resumed) == {"contact": pb.dt(resumed.contact_due), "reply": pb.dt(resumed.reply_due)}


def test_the_policy_names_the_clocks_a_parked_case_stops() -> None:
    doc = json.loads(Settings().sla.policy_file.read_text("utf-8"))
    only_reply = parse_policy({**doc, "park_stops": ["reply"]})
    case = after(opened(assisting=()), lifecycle_pb2.SignOffRequest(ticket_id="C1"))
    asked = after(case, lifecycle_pb2.ParkRequest(ticket_id="C1", plan="计划", target_date="2027-06-30", reason="x"))
    policy = dataclasses.replace(POLICY, limits=dataclasses.replace(POLICY.limits, park_stops=("reply",)))
    decision = lc.decide(asked, park_pb2.DecideParkRequest(ticket_id="C1", approved=True), OFFICE, NOW, policy)
    parked = decision.state
    assert parked is not None and list(parked.park.stopped_clocks) == ["reply"]
    limits = limits_of(only_reply, parked.sla_lanes)
    running = {t.kind for t in core.case_timers(parked, limits, CALENDAR)}
    assert running == {"park_progress", "contact"}  # the contact clock runs on while parked
    with pytest.raises(ValueError, match="park_stops"):
        parse_policy({**doc, "park_stops": ["sign_off"]})
