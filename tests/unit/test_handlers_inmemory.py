"""Every command handler of supervision's cases (services/supervision/cases/commands.py) and the
kit's bus (hotline/bus.py), run through the in-memory unit of work (hotline/uow.py): no Kafka,
no store. What the Mongo unit of work would write (states, events, audit entries, answers) is
in the fake's dicts and lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from hotline.auth import Principal
from hotline.bus import MessageBus, Request
from hotline.clock import ManualClock
from hotline.commands import Command, Decision, DomainError, Illegal
from hotline.policy import Role
from hotline.uow import InMemoryUnitOfWork, Work
from hotline.v1 import case_pb2, events_pb2, knowledge_pb2, lifecycle_pb2, park_pb2, ticket_pb2
from services.supervision.cases import commands as cc
from services.supervision.cases import lifecycle as lc
from services.supervision.cases.deputy_closure import callback_due
from services.supervision.cases.handlers import CITY, ROUTING, CaseInbox
from services.supervision.cases.sla import limits_of
from services.supervision.cases.store import CaseClocks
from tests.unit.test_deputy_closure import rated, reported_deputy_case
from tests.unit.test_lifecycle import (
    CALENDAR,
    CONTACT,
    HELPER,
    NOW,
    OFFICE,
    PASS,
    REPLY,
    SLA,
    TZ,
    UNIT,
    assigned,
    evaluation,
)
from tests.unit.test_lifecycle import LIMITS as LIMIT_SETTINGS

S = events_pb2


class Policies:
    """The SLA policy's versions (hotline/policies.py LivePolicy) as the handlers read them."""

    async def current(self) -> Any:
        return SLA

    async def get(self, version: int) -> Any:
        return SLA


@dataclass
class Env:
    bus: MessageBus
    uow: InMemoryUnitOfWork
    clock: ManualClock
    opened: list[events_pb2.Case]
    policies: cc.CasePolicies

    def case(self, ticket_id: str = "C1") -> events_pb2.Case:
        case: events_pb2.Case = self.uow.state("case", ticket_id)
        return case

    async def run(self, command: cc.CaseCommand) -> events_pb2.Case:
        answer: events_pb2.Case = await self.bus.handle(command)
        return answer

    def actions(self, ticket_id: str = "C1") -> list[str]:
        return [e["action"] for e in self.uow.audit if e["target_id"] == ticket_id]


def environment() -> Env:
    clock = ManualClock(NOW)
    base = lc.Policy(deadlines=lc.PeriodDeadlines(CALENDAR), tz=TZ, open_case=lambda a, now: S.Case(),
                     limits=lc.Limits.of(LIMIT_SETTINGS), results_topic="t.city.results.v1")
    policies = cc.CasePolicies(base, store=None, clocks=CaseClocks(Policies(), CALENDAR, None))  # type: ignore[arg-type]
    uow = InMemoryUnitOfWork("supervision", clock)
    bus = MessageBus(uow)
    opened: list[events_pb2.Case] = []
    cc.register(bus, cc.CaseHandlers(None, policies, clock, "t.cases", opened=opened.append))  # type: ignore[arg-type]
    return Env(bus, uow, clock, opened, policies)


def key(n: int = 0) -> str:
    return f"k-{n}"


async def opened_case(env: Env, **kwargs: Any) -> events_pb2.Case:
    a = assigned(**kwargs)
    return await env.run(cc.OpenCase(a, ROUTING, f"C1/assigned/{a.assignment.dispatch_round}"))


async def handling(env: Env) -> events_pb2.Case:
    """Signed off, contacted, the assisting unit's part contributed: ready to reply."""
    await opened_case(env)
    await env.run(cc.SignOff(lifecycle_pb2.SignOffRequest(ticket_id="C1", note="收到"), UNIT, "sign"))
    await env.run(cc.RecordContact(CONTACT, UNIT, "contact"))
    await env.run(cc.SignOff(lifecycle_pb2.SignOffRequest(ticket_id="C1"), HELPER, "assist-sign"))
    return await env.run(cc.Contribute(lifecycle_pb2.ContributeRequest(ticket_id="C1", text="已配合清运"), HELPER,
                                       "contribute"))


# ---------------------------------------------------------------------------------------- the bus


def test_a_command_is_named_by_its_type_and_carries_its_message() -> None:
    assert (cc.SignOff.name, cc.OpenCase.name, cc.DecideExtension.name) == ("sign_off", "open_case",
                                                                           "decide_extension")
    assert cc.DecidePark.message is park_pb2.DecideParkRequest
    with pytest.raises(TypeError, match="SignOffRequest"):
        cc.SignOff(lifecycle_pb2.ReplyRequest(ticket_id="C1"), UNIT, "k")  # type: ignore[arg-type]


async def test_one_handler_per_command_type() -> None:
    env = environment()
    with pytest.raises(ValueError, match="already has a handler"):
        env.bus.register(cc.SignOff, env.bus.handlers[cc.Reply])

    class Unknown(Request[lifecycle_pb2.SignOffRequest], message=lifecycle_pb2.SignOffRequest):
        pass

    with pytest.raises(TypeError, match="no handler for Unknown"):
        await env.bus.handle(Unknown(lifecycle_pb2.SignOffRequest(ticket_id="C1"), UNIT, "k"))
    assert env.bus.registered("sign_off") is cc.SignOff


async def test_a_refused_command_commits_nothing_and_a_key_names_one_command() -> None:
    env = environment()
    await opened_case(env)
    events, trail = len(env.uow.events), len(env.uow.audit)
    with pytest.raises(DomainError) as caught:
        await env.run(cc.Reply(REPLY, UNIT, "r1"))  # not signed off yet
    assert caught.value.code == "failed_precondition"
    assert (len(env.uow.events), len(env.uow.audit)) == (events, trail)
    assert env.case().state == S.CASE_STATE_AWAITING_SIGN_OFF
    await env.run(cc.SignOff(lifecycle_pb2.SignOffRequest(ticket_id="C1"), UNIT, "same"))
    with pytest.raises(DomainError, match="was used for sign_off"):
        await env.run(cc.RecordContact(CONTACT, UNIT, "same"))


async def test_a_generic_handler_with_a_plain_state() -> None:
    """The unit of work is the kit's, not the cases': any repository kind, any state."""

    @dataclass(frozen=True)
    class Rename(Request[S.Unit], message=S.Unit):
        pass

    class Units:
        kind = "unit"

    async def rename(command: Rename) -> Work[Any]:
        def decide(unit: S.Unit | None) -> Decision[S.Unit]:
            return Decision(S.Unit(unit_id=command.body.unit_id, name=command.body.name), events=[command.body])
        return Work(Command(Rename.name, command.body.unit_id, command.actor, command.idempotency_key), Units(),
                    decide, "t.units")

    uow = InMemoryUnitOfWork("kit")
    bus = MessageBus(uow)
    bus.register(Rename, rename)
    first = await bus.handle(Rename(S.Unit(unit_id="U1", name="街道办"), UNIT, "k1"))
    again = await bus.handle(Rename(S.Unit(unit_id="U1", name="其他"), UNIT, "k1"))  # retried: the first answer
    assert first == again == S.Unit(unit_id="U1", name="街道办") == uow.state("unit", "U1")
    assert len(uow.events) == len(uow.audit) == 1 and uow.audit[0]["action"] == "rename"


async def test_retried_keys_in_a_batch_get_their_first_answers() -> None:
    """The answers are not read before the states (hotline/uow.py): a retried key that the state
    would take again fails its answer's insert and the batch runs again with the answers read
    first; one the state refuses now is looked up after the refusal. Either way the first answer
    comes back, nothing is applied twice, and the new commands of the batch apply once."""

    @dataclass(frozen=True)
    class Append(Request[S.Unit], message=S.Unit):
        pass

    class Units:
        kind = "unit"

    async def append(command: Append) -> Work[Any]:
        def decide(unit: S.Unit | None) -> Decision[S.Unit]:
            if command.body.name == "!":
                raise Illegal("refused")
            now = S.Unit(unit_id=command.body.unit_id, name=(unit.name if unit else "") + command.body.name)
            return Decision(now, events=[now])
        return Work(Command(Append.name, command.body.unit_id, command.actor, command.idempotency_key), Units(),
                    decide, "t.units")

    uow = InMemoryUnitOfWork("kit")
    bus = MessageBus(uow)
    bus.register(Append, append)
    first = await bus.handle_many([Append(S.Unit(unit_id="A", name="a"), UNIT, "k-a"),
                                   Append(S.Unit(unit_id="B", name="b"), UNIT, "k-b")])
    assert [u.name for u in first] == ["a", "b"] and uow.commits == 1
    # alone, a retry the state refuses now: no insert fails, the refusal looks its answer up
    assert await bus.handle(Append(S.Unit(unit_id="B", name="!"), UNIT, "k-b")) == first[1]
    assert uow.commits == 2
    again = await bus.handle_many([
        Append(S.Unit(unit_id="A", name="a"), UNIT, "k-a"),  # retried; the state would take it again
        Append(S.Unit(unit_id="B", name="!"), UNIT, "k-b"),  # retried; the state refuses it now
        Append(S.Unit(unit_id="C", name="c"), UNIT, "k-c"),  # new
        Append(S.Unit(unit_id="D", name="!"), UNIT, "k-d"),  # new, refused
    ])
    assert again[:3] == [first[0], first[1], S.Unit(unit_id="C", name="c")]
    assert isinstance(again[3], DomainError) and again[3].code == "failed_precondition"
    assert [uow.state("unit", t).name for t in "ABC"] == ["a", "b", "c"] and uow.commits == 3
    assert [e["target_id"] for e in uow.audit] == ["A", "B", "C"] and len(uow.events) == 3
    (reused,) = await uow.run([Work(Command("other", "A", UNIT, "k-a"), Units(), lambda u: Decision(u), "t")])
    assert isinstance(reused, DomainError) and "was used for append" in str(reused)  # a key names one command
    assert uow.commits == 4 and uow.state("unit", "A").name == "a"


# ---------------------------------------------------------------------------------------- opening


async def test_open_case_opens_round_one_once() -> None:
    env = environment()
    case = await opened_case(env)
    assert case.state == S.CASE_STATE_AWAITING_SIGN_OFF and case.dispatch_round == 1 and env.case() == case
    (event,) = env.uow.events
    assert isinstance(event.message, S.CaseOpened) and event.message.case == case and event.key == "C1"
    (entry,) = env.uow.audit
    assert (entry["action"], entry["reason"], entry["before"]) == ("open_case", "assigned to ST01", None)
    assert entry["events"] == ["hotline.v1.CaseOpened"] and entry["after"]["dispatch_round"] == 1
    line = cc.history_entry("C1", 0, entry)  # the history reads it without parsing ids
    assert (line.action, line.to_state, line.dispatch_round) == ("open_case", S.CASE_STATE_AWAITING_SIGN_OFF, 1)

    env.clock.advance(timedelta(hours=1))
    await env.run(cc.SignOff(lifecycle_pb2.SignOffRequest(ticket_id="C1"), UNIT, "sign"))
    again = await opened_case(env)  # routing's assignment delivered again: the round is open, nothing changes
    assert again == env.case() and len(env.uow.events) == 2 and len(env.uow.audit) == 2
    assert [a["command"] for a in env.uow.stored.values()] == ["sign_off"]  # OpenCase (by_state) stores none
    assert env.opened == [case]  # counted once
    assert env.case().state == S.CASE_STATE_IN_PROGRESS


async def test_only_the_platform_opens_a_case() -> None:
    env = environment()
    with pytest.raises(DomainError) as caught:
        await env.run(cc.OpenCase(assigned(), UNIT, "k"))
    assert caught.value.code == "permission_denied" and not env.uow.states


async def test_a_later_round_is_the_same_command_and_re_dispatches() -> None:
    env = environment()
    await opened_case(env)
    await env.run(cc.RequestReturn(lifecycle_pb2.RequestReturnRequest(ticket_id="C1", reason="不属于本单位职责"),
                                   UNIT, "ret"))
    assert env.case().state == S.CASE_STATE_RETURN_REQUESTED
    case = await opened_case(env, round_=2, primary="ST02")
    assert (case.dispatch_round, case.primary_unit.unit_id, case.state) == (2, "ST02", S.CASE_STATE_AWAITING_SIGN_OFF)
    assert env.actions() == ["open_case", "request_return", "redispatch"]  # 重新派单 in the history
    assert S.CaseOpened in {type(e.message) for e in env.uow.events[-2:]}
    assert [c.dispatch_round for c in env.opened] == [1, 2]
    lost = assigned(round_=2)
    lost.assignment.ticket_id = "C5"
    with pytest.raises(DomainError) as caught:  # no round to close
        await env.run(cc.OpenCase(lost, ROUTING, "C5/assigned/2"))
    assert caught.value.code == "not_found"


async def test_return_decision_keeps_the_ticket_with_the_unit() -> None:
    env = environment()
    await opened_case(env)
    await env.run(cc.RequestReturn(lifecycle_pb2.RequestReturnRequest(ticket_id="C1", reason="非本单位职责"),
                                   UNIT, "ret"))
    kept = await env.run(cc.ReturnDecision(lifecycle_pb2.ReturnDecision(
        ticket_id="C1", dispatch_round=1, approved=False, reason="属于该单位"), ROUTING, "C1/return-decision/1"))
    assert kept.state != S.CASE_STATE_RETURN_REQUESTED
    assert kept.return_request.status == case_pb2.RETURN_STATUS_REFUSED


# ---------------------------------------------------------------------------------------- the lifecycle


async def test_the_straight_path_from_opening_to_archive() -> None:
    env = environment()
    await handling(env)
    await env.run(cc.Reply(REPLY, UNIT, "reply"))
    reported = await env.run(cc.Review(PASS, OFFICE, "review"))
    assert reported.state == S.CASE_STATE_REPORTED
    assert any(isinstance(e.message, lifecycle_pb2.CityResult) for e in env.uow.events)  # to the city (outbound)
    closed = await env.run(cc.Evaluate(evaluation(result_id=reported.result_id), CITY, "evaluation/E1"))
    assert closed.state == S.CASE_STATE_ARCHIVED
    assert env.actions() == ["open_case", "sign_off", "record_contact", "sign_off", "contribute", "reply", "review",
                             "evaluate"]
    assert [e["actor"]["role"] for e in env.uow.audit][-1] == "system"


async def test_extension_asked_and_decided() -> None:
    env = environment()
    await handling(env)
    asked = await env.run(cc.RequestExtension(lifecycle_pb2.RequestExtensionRequest(
        ticket_id="C1", working_days=3, reason="需协调"), UNIT, "ext"))
    assert asked.state == S.CASE_STATE_EXTENSION_REQUESTED
    decided = await env.run(cc.DecideExtension(lifecycle_pb2.DecideExtensionRequest(
        ticket_id="C1", approved=True, reason="同意"), OFFICE, "ext-ok"))
    assert decided.extension.status == case_pb2.EXTENSION_STATUS_APPROVED
    assert decided.reply_due.seconds > asked.reply_due.seconds


async def test_park_decided_reported_and_resumed() -> None:
    env = environment()
    await handling(env)
    await env.run(cc.Park(lifecycle_pb2.ParkRequest(ticket_id="C1", plan="纳入明年改造计划", target_date="2027-06-30",
                                                    reason="需立项"), UNIT, "park"))
    parked = await env.run(cc.DecidePark(park_pb2.DecideParkRequest(ticket_id="C1", approved=True, reason="同意"),
                                         OFFICE, "park-ok"))
    assert parked.state == S.CASE_STATE_PARKED
    env.clock.advance(timedelta(days=20))
    progressed = await env.run(cc.ReportProgress(lifecycle_pb2.ReportProgressRequest(
        ticket_id="C1", progress="已完成设计"), UNIT, "progress"))
    assert progressed.park.reports == 1
    resumed = await env.run(cc.Resume(park_pb2.ResumeRequest(ticket_id="C1", reason="条件具备"), UNIT, "resume"))
    assert resumed.state == S.CASE_STATE_IN_PROGRESS


async def test_a_poor_evaluation_is_redone_on_the_offices_decision() -> None:
    env = environment()
    await handling(env)
    await env.run(cc.Reply(REPLY, UNIT, "reply"))
    reported = await env.run(cc.Review(PASS, OFFICE, "review"))
    evaluated = await env.run(cc.Evaluate(evaluation(satisfaction=case_pb2.SATISFACTION_UNSATISFIED,
                                                     result_id=reported.result_id), CITY, "evaluation/E1"))
    assert evaluated.state == S.CASE_STATE_EVALUATED
    redo = await env.run(cc.DecideRedo(lifecycle_pb2.DecideRedoRequest(ticket_id="C1", redo=True, reason="再次核实"),
                                       OFFICE, "redo"))
    assert redo.state == S.CASE_STATE_SENT_BACK and redo.redo_round == 1


async def test_the_office_waives_an_assisting_unit() -> None:
    env = environment()
    await opened_case(env)
    await env.run(cc.SignOff(lifecycle_pb2.SignOffRequest(ticket_id="C1"), UNIT, "sign"))
    waived = await env.run(cc.WaiveAssist(lifecycle_pb2.WaiveAssistRequest(ticket_id="C1", unit_id="D07",
                                                                           reason="无需协办"), OFFICE, "waive"))
    assert waived.assists[0].state == case_pb2.ASSIST_STATE_WAIVED
    with pytest.raises(DomainError) as caught:
        await env.run(cc.WaiveAssist(lifecycle_pb2.WaiveAssistRequest(ticket_id="C1", unit_id="D07", reason="x"),
                                     UNIT, "waive-2"))
    assert caught.value.code == "permission_denied"


async def test_the_office_answers_a_consultation_directly() -> None:
    env = environment()
    a = assigned(assisting=())
    a.ticket_type = ticket_pb2.TICKET_TYPE_CONSULTATION
    await env.run(cc.OpenCase(a, ROUTING, "C1/assigned/1"))
    article = knowledge_pb2.ArticleRef(article_id="KA-1", version=2, title="居住证办理指南", unit_id="D03")
    answered = await env.run(cc.DirectAnswer(knowledge_pb2.DirectAnswerRequest(
        ticket_id="C1", article=article, text="持身份证到街道便民服务中心办理"), OFFICE, "direct"))
    assert answered.state == S.CASE_STATE_REPLIED


async def test_the_office_calls_back_a_deputys_ticket_after_the_limit() -> None:
    env = environment()
    case = reported_deputy_case()
    env.uow.states["case", case.ticket_id] = case
    body = lifecycle_pb2.CityEvaluation(city_ticket_id=case.ticket_id, satisfaction=case_pb2.SATISFACTION_SATISFIED,
                                        resolution=case_pb2.RESOLUTION_RESOLVED)
    with pytest.raises(DomainError) as caught:  # the deputy may still rate it
        await env.run(cc.OfficeCallback(body, OFFICE, "cb-early"))
    assert caught.value.code == "failed_precondition"
    env.clock.set(callback_due(case, limits_of(SLA, case.sla_lanes), CALENDAR))
    closed = await env.run(cc.OfficeCallback(body, OFFICE, "cb"))
    assert closed.state == S.CASE_STATE_ARCHIVED
    assert env.actions(case.ticket_id) == ["office_callback"]


async def test_a_deputys_rating_is_the_evaluate_command() -> None:
    from services.supervision.levels.deputy_escalation_handlers import DeputyEscalations

    env = environment()
    case = reported_deputy_case()
    env.uow.states["case", case.ticket_id] = case
    cases = cc.CaseCommands(env.bus, None, env.policies, env.clock, "t.cases")  # type: ignore[arg-type]
    closed = await DeputyEscalations(None, cases).evaluate(rated("满意"))  # type: ignore[arg-type]
    assert closed is not None and closed.state == S.CASE_STATE_ARCHIVED
    assert env.actions(case.ticket_id) == ["evaluate"]
    assert env.uow.audit[0]["actor"]["subject"] == "service:deputy_liaison"


# ---------------------------------------------------------------------------------------- the consumer


async def test_a_consumed_batch_is_one_transaction_and_a_refusal_stops_nothing() -> None:
    env = environment()
    batch: list[cc.CaseCommand] = []
    for tid in ("C1", "C2", "C3"):
        a = assigned()
        a.assignment.ticket_id = tid
        batch.append(CaseInbox.command(a))
    batch.append(CaseInbox.command(evaluation("E9")))  # its case (C1) is opened in this batch: next transaction
    lonely = evaluation("E8")
    lonely.city_ticket_id = "C7"
    batch.append(CaseInbox.command(lonely))
    results = await env.bus.handle_many(batch)
    assert [type(r).__name__ for r in results] == ["Case", "Case", "Case", "Case", "DomainError"]
    assert results[4].code == "not_found"  # the consumer keeps it in the inbox
    assert env.uow.commits == 2  # C1..C3 in one, the evaluation of C1 in the next
    assert [c.ticket_id for c in env.opened] == ["C1", "C2", "C3"]
    assert len(env.case("C1").pending_evaluations) == 1  # not reported yet: kept with the case

    again = await env.bus.handle_many(batch[:3])  # the batch delivered again: the cases as they are, nothing new
    assert again == [env.case(t) for t in ("C1", "C2", "C3")] and len(env.opened) == 3
    assert sum(isinstance(e.message, S.CaseOpened) for e in env.uow.events) == 3


def test_the_consumer_names_each_message_s_command() -> None:
    assert isinstance(CaseInbox.command(assigned(round_=2)), cc.OpenCase)
    assert CaseInbox.command(assigned(round_=2)).idempotency_key == "C1/assigned/2"
    decision = CaseInbox.command(lifecycle_pb2.ReturnDecision(ticket_id="C1", dispatch_round=1))
    assert isinstance(decision, cc.ReturnDecision) and decision.actor == ROUTING
    assert CaseInbox.command(evaluation("E1")).actor == CITY
    assert Principal.system("routing").role == Role.SYSTEM
