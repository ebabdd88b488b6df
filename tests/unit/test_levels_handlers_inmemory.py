"""Every command handler of supervision's levels wing (services/supervision/levels/commands.py:
督办 levels, meetings, the settling of a closed case, a deputy's escalation, merges, 屡办不成
lists, whistles, letters and talks) through the bus with the in-memory unit of work: no Kafka,
no store. What the Mongo unit of work would write is in the fake's dicts and lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hotline import pb
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.clock import ManualClock
from hotline.commands import DomainError
from hotline.uow import InMemoryUnitOfWork
from hotline.v1 import case_pb2, circulation_pb2, deputy_escalation_pb2, deputy_pb2, events_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.levels import circulation as circ
from services.supervision.levels import commands as lc
from services.supervision.levels import escalation as esc
from services.supervision.levels import recurring, talks
from services.supervision.levels import whistles as wh
from services.supervision.levels.escalation_store import EscalationCommands
from services.supervision.warnings.warnings import Fact
from tests.unit.test_escalation import LEADER, NOW, OFFICE, PRIMARY, RULES, STREET, SYSTEM, TZ, UNIT_TYPE, case
from tests.unit.test_talks import GOOD

KIND = "case_supervision"


class NoStore:
    """The repositories' database: the in-memory unit of work never reads or writes through them."""

    def __getitem__(self, name: str) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) by an in-memory unit of work")


@dataclass
class Env:
    bus: MessageBus
    uow: InMemoryUnitOfWork
    clock: ManualClock
    handlers: lc.LevelHandlers

    def supervised(self, tid: str = "C1") -> esc.Supervised:
        state: esc.Supervised = self.uow.state(KIND, tid)
        return state

    def actions(self) -> list[str]:
        return [e["action"] for e in self.uow.audit]


def fact(tid: str, day: int) -> Fact:
    return Fact(tid, datetime(2026, 11, day, 2, tzinfo=UTC), "ST01", "占道经营", "中华路1号", "", "占道")


async def find_recurring(month: str) -> Sequence[sv.RecurringItem]:  # what EscalationCommands reads from the store
    return recurring.find(month, [fact("A1", 2), fact("A2", 9), fact("A3", 20)], {}, recurring.Rules.load(), TZ)


def environment(*seeded: esc.Supervised) -> Env:
    uow = InMemoryUnitOfWork("supervision")
    clock = ManualClock(NOW)
    bus = MessageBus(uow)
    handlers = lc.LevelHandlers(NoStore(), RULES, clock, "t.cases", UNIT_TYPE,  # type: ignore[arg-type]
                                find_recurring=find_recurring, known_unit=lambda unit: unit != "NOPE")
    lc.register(bus, handlers)
    for s in seeded:
        uow.states[KIND, s.case.ticket_id] = s
    return Env(bus, uow, clock, handlers)


async def test_every_levels_command_type_has_its_one_handler() -> None:
    env = environment()
    types = {*lc.SUPERVISION, *lc.WHISTLE, lc.SettleSupervision, lc.DeputyEscalation, lc.MergeTickets,
             lc.GenerateRecurringList, lc.ResolveRecurringItem, lc.SendLetter, lc.AcknowledgeLetter, lc.AnswerLetter,
             lc.RecordTalk, lc.RecordTalkFollowUp}
    assert set(env.bus.handlers) == types
    with pytest.raises(ValueError, match="one handler per command type"):
        lc.register(env.bus, env.handlers)
    assert lc.RaiseSupervision.name == "raise_supervision" and lc.SendLetter.name == "send_letter"
    with pytest.raises(TypeError, match="RaiseSupervision carries a RaiseSupervisionRequest"):
        lc.RaiseSupervision(sv.CloseSupervisionRequest(ticket_id="C1"), OFFICE, "k")  # type: ignore[arg-type]


async def test_supervision_levels_raise_close_visit_joint_and_meetings_through_the_bus() -> None:
    env = environment(case())
    raised = await env.bus.handle(lc.RaiseSupervision(
        sv.RaiseSupervisionRequest(ticket_id="C1", level=3, reason="群众反映强烈"), OFFICE, "k1"))
    assert isinstance(raised, sv.CaseSupervision) and [r.level for r in raised.records] == [3]
    assert env.supervised().case.supervision_level == 3  # the case's level moves with the record
    assert any(isinstance(m, sv.SupervisionRaised) for m in env.uow.published())
    again = await env.bus.handle(lc.RaiseSupervision(
        sv.RaiseSupervisionRequest(ticket_id="C1", level=3, reason="群众反映强烈"), OFFICE, "k1"))
    assert again == raised and len(env.uow.audit) == 1  # the same key: the first answer, nothing written
    visit = sv.RecordVisitRequest(ticket_id="C1", supervisor="督查组", covert=True, findings="已整改")
    await env.bus.handle(lc.RecordVisit(visit, OFFICE, "v"))
    await env.bus.handle(lc.SetJointSupervision(sv.SetJointSupervisionRequest(ticket_id="C1", joint=True,
                                                                              reason="作风问题"), LEADER, "j"))
    await env.bus.handle(lc.ScheduleMeeting(sv.ScheduleMeetingRequest(
        ticket_id="C1", scheduled_at=pb.ts(NOW + timedelta(days=2)), place="街道会议室"), OFFICE, "m"))
    await env.bus.handle(lc.RecordMeeting(sv.RecordMeetingRequest(ticket_id="C1", outcome="当面答复，诉求人认可"),
                                          OFFICE, "mo"))
    closed = await env.bus.handle(lc.CloseSupervision(
        sv.CloseSupervisionRequest(ticket_id="C1", level=3, resolved=True, outcome="已办结"), OFFICE, "c"))
    assert closed.records[0].state == esc.RESOLVED and env.supervised().case.supervision_level == 0
    assert env.actions() == ["raise_supervision", "record_visit", "set_joint_supervision", "schedule_meeting",
                             "record_meeting", "close_supervision"]
    with pytest.raises(DomainError) as refused:  # the meeting's outcome once
        await env.bus.handle(lc.RecordMeeting(sv.RecordMeetingRequest(ticket_id="C1", outcome="again"), OFFICE, "m2"))
    assert refused.value.code == "failed_precondition" and len(env.uow.audit) == 6  # a refusal writes nothing
    with pytest.raises(DomainError) as missing:
        await env.bus.handle(lc.RaiseSupervision(sv.RaiseSupervisionRequest(level=2, reason="x"), OFFICE, "n"))
    assert missing.value.code == "invalid_argument"


async def test_a_system_level_at_its_trigger_time_and_the_settling_of_the_closed_case() -> None:
    env = environment(case())
    at = NOW - timedelta(hours=3)
    await env.bus.handle(lc.RaiseSupervision(sv.RaiseSupervisionRequest(ticket_id="C1", level=1, reason="超期"),
                                             SYSTEM, "C1/supervision/L1", at))
    (record,) = env.supervised().supervision.records
    assert pb.dt(record.raised_at) == at  # the command's time, not the clock's
    closed_case = events_pb2.Case(ticket_id="C1", state=events_pb2.CASE_STATE_ARCHIVED,
                                  closure=case_pb2.CLOSURE_SATISFIED)
    await env.bus.handle(lc.SettleSupervision(closed_case, SYSTEM, "C1/supervision/settle", NOW))
    assert env.supervised().supervision.records[0].state == esc.RESOLVED
    assert env.actions() == ["raise_supervision", "settle_supervision"]


async def test_a_deputys_escalation_raises_level_one_once() -> None:
    archived = case("RD-S1", events_pb2.CASE_STATE_ARCHIVED)
    env = environment(archived)
    escalated = deputy_pb2.DeputyEscalated(submission_id="S1", ticket_id="RD-S1", deputy_id="DE1",
                                           rating="不满意", comment="请督办", occurred_at=pb.ts(NOW))
    from services.supervision.levels import deputy_escalation

    answer = await env.bus.handle(lc.DeputyEscalation(escalated, deputy_escalation.DEPUTY_LIAISON,
                                                      deputy_escalation.command_key(escalated)))
    assert isinstance(answer, events_pb2.Case) and answer.supervision_level == 1
    assert env.uow.published(deputy_escalation_pb2.CaseEscalatedByDeputy)
    assert env.uow.audit[0]["reason"] == "请督办" and env.uow.audit[0]["action"] == "deputy_escalation"


async def test_a_merge_under_a_parent_through_the_bus() -> None:
    parent = case("P1")
    parent.children = {"C2": case("C2"), "C3": case("C3")}  # what MergeRepository loads with the parent
    env = environment(parent)
    merged = await env.bus.handle(lc.MergeTickets(sv.MergeTicketsRequest(
        parent_ticket_id="P1", ticket_ids=["C2", "C3"], reason="同一占道问题"), OFFICE, "merge"))
    assert list(merged.merged) == ["C2", "C3"]
    assert all(c.supervision.merged_into == "P1" for c in env.supervised("P1").children.values())
    assert env.uow.audit[0]["target_id"] == "P1"


async def test_a_recurring_list_generated_and_an_item_resolved() -> None:
    env = environment()
    listed = await env.bus.handle(lc.GenerateRecurringList(sv.GenerateRecurringListRequest(month="2026-11"),
                                                           OFFICE, "g"))
    assert [list(i.ticket_ids) for i in listed.items] == [["A1", "A2", "A3"]]
    item = await env.bus.handle(lc.ResolveRecurringItem(
        sv.ResolveRecurringItemRequest(item_id=listed.items[0].item_id, outcome="已取缔"), OFFICE, "r"))
    assert item.state == sv.RECURRING_STATE_RESOLVED
    assert env.uow.state("recurring_list", "2026-11").items[0].state == sv.RECURRING_STATE_RESOLVED
    with pytest.raises(DomainError) as bad:
        await env.bus.handle(lc.GenerateRecurringList(sv.GenerateRecurringListRequest(month="November"), OFFICE, "x"))
    assert bad.value.code == "invalid_argument"


async def test_a_whistle_blown_reported_in_and_closed() -> None:
    env = environment()
    blown = await env.bus.handle(lc.BlowWhistle(sv.BlowWhistleRequest(problem="占道经营屡禁不止",
                                                                      unit_ids=["DP01"]), STREET, "w1"))
    assert blown.whistle_id == wh.whistle_id(STREET, "w1") and blown.state == wh.OPEN
    wid = blown.whistle_id
    env.clock.advance(timedelta(hours=1))
    reported = await env.bus.handle(lc.ReportIn(sv.ReportInRequest(whistle_id=wid, note="已到场"), PRIMARY, "r1"))
    assert reported.summoned[0].on_time
    done = await env.bus.handle(lc.CloseWhistle(sv.CloseWhistleRequest(whistle_id=wid, resolved=True,
                                                                       outcome="联合执法，已清理"), STREET, "c1"))
    assert done.state != wh.OPEN and env.uow.state("whistle", wid) == done
    assert env.actions() == ["blow_whistle", "report_in", "close_whistle"]
    with pytest.raises(DomainError) as err:
        await env.bus.handle(lc.ReportIn(sv.ReportInRequest(whistle_id=""), PRIMARY, "r2"))
    assert err.value.code == "invalid_argument" and "whistle_id" in err.value.message


async def test_a_letter_sent_numbered_acknowledged_and_answered() -> None:
    env = environment()
    lid = circ.letter_id("warning_letter", "W-1", "ST01")
    request: dict[str, Any] = {"kind": "warning_letter", "ref": "W-1", "unit_id": "ST01", "title": "预警函",
                               "body": "响应慢"}
    letter = await env.bus.handle(lc.SendLetter(request, OFFICE, "s1", ref=lid))  # type: ignore[arg-type]
    assert isinstance(letter, circulation_pb2.Letter) and letter.state == circ.SENT and letter.number
    assert env.uow.state("letter", lid).next_sequence == 2  # the register moved with the letter
    # the register's repository saves the letter into the letters (the letter's repository reads it
    # there); the fake keeps the aggregate it was given under the same kind: the letter, as stored
    env.uow.states["letter", lid] = letter
    unit = Principal("u1", PRIMARY.role, unit_id="ST01")
    await env.bus.handle(lc.AcknowledgeLetter({}, unit, "a1", ref=lid))  # type: ignore[arg-type]
    answered = await env.bus.handle(lc.AnswerLetter({"answer": "已整改"}, unit, "a2", ref=lid))  # type: ignore[arg-type]
    assert answered.state == circ.ANSWERED
    assert env.actions() == ["send_letter", "acknowledge_letter", "answer_letter"]
    with pytest.raises(DomainError) as err:  # an unknown addressee
        await env.bus.handle(lc.SendLetter({**request, "unit_id": "NOPE"}, OFFICE, "s2",  # type: ignore[arg-type]
                                           ref=circ.letter_id("warning_letter", "W-1", "NOPE")))
    assert err.value.code == "invalid_argument"


async def test_a_talk_recorded_and_followed_up() -> None:
    env = environment()
    tid = talks.talk_id("ST03", "2026-12-03T15:00:00+08:00")
    talk = await env.bus.handle(lc.RecordTalk(GOOD, OFFICE, "t1", ref=tid))  # type: ignore[arg-type]
    assert talk["talk_id"] == tid
    done = await env.bus.handle(lc.RecordTalkFollowUp({"note": "响应率已升至95%"}, OFFICE, "t2",  # type: ignore[arg-type]
                                                      ref=tid))
    assert done["follow_up_done"] == "响应率已升至95%"
    assert env.uow.state("talk", tid)["follow_up_done"] == "响应率已升至95%"


async def test_the_adapter_speaks_in_typed_commands_on_the_same_bus() -> None:
    """EscalationCommands (the routes', the follow-ups' and the deputies' consumer's side) hands
    the bus typed commands; with a CommandBus of its own it registers the handlers itself."""
    env = environment(case())
    adapter = EscalationCommands(env.bus, NoStore(), RULES, env.clock, "t.cases", UNIT_TYPE)  # type: ignore[arg-type]
    await adapter.raise_supervision("C1", 1, "超期", NOW, "k")
    await adapter.run("close_supervision", sv.CloseSupervisionRequest(ticket_id="C1", level=1, resolved=True,
                                                                       outcome="已办结"), OFFICE, "c")
    await adapter.whistle("blow_whistle", sv.BlowWhistleRequest(problem="p", unit_ids=["DP01"]), STREET, "w")
    assert env.actions() == ["raise_supervision", "close_supervision", "blow_whistle"]

    class Legacy:  # a CommandBus: only its unit of work is used
        uow = InMemoryUnitOfWork("bench")

    own = EscalationCommands(Legacy(), NoStore(), RULES, env.clock, "t.cases", UNIT_TYPE)  # type: ignore[arg-type]
    assert own.bus is not env.bus and lc.RaiseSupervision in own.bus.handlers
