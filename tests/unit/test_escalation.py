"""Supervision levels (督办), whistles (吹哨报到), on-site meetings and merges (并单): the pure
modules (services/supervision/levels/escalation.py, whistles.py, merging.py), without I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline import pb
from hotline.auth import Principal
from hotline.calendar import WorkCalendar
from hotline.commands import DomainError
from hotline.directory import DIRECTORY_FILE
from hotline.envelope import Event
from hotline.policy import Role
from hotline.v1 import case_pb2, deadlines_pb2, deputy_escalation_pb2, events_pb2, lifecycle_pb2
from hotline.v1 import supervision_pb2 as sv
from services.metrics import projection
from services.supervision.cases.lifecycle import PeriodDeadlines
from services.supervision.levels import escalation as esc
from services.supervision.levels import merging, recurring
from services.supervision.levels import whistles as wh
from services.supervision.levels.escalation_handlers import EscalationFollowUps
from services.supervision.levels.escalation_store import unit_types
from services.supervision.warnings.warnings import Fact

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # Thursday 10:00 in the district
RULES = esc.Rules.load(PeriodDeadlines(WorkCalendar()), TZ)
UNIT_TYPE = unit_types(json.loads(DIRECTORY_FILE.read_text("utf-8")))
OFFICE = Principal("o-li", Role.OFFICE)
LEADER = Principal("l-wang", Role.LEADER)
SYSTEM = Principal.system("supervision")
PRIMARY = Principal("u-dp01", Role.UNIT, unit_id="DP01")
STRANGER = Principal("u-dp09", Role.UNIT, unit_id="DP09")
STREET = Principal("u-st01", Role.UNIT, unit_id="ST01")


def case(tid: str = "C1", state: int = events_pb2.CASE_STATE_IN_PROGRESS) -> esc.Supervised:
    return esc.Supervised(events_pb2.Case(ticket_id=tid, state=state, category="市容环卫",  # type: ignore[arg-type]
                                          primary_unit=events_pb2.Unit(unit_id="DP01", name="区市场监督管理局")),
                          sv.CaseSupervision(ticket_id=tid))


def apply(state: esc.Supervised, request: object, actor: Principal, at: datetime = NOW) -> esc.Supervised:
    decision = esc.decide(state, request, actor, at, RULES)  # type: ignore[arg-type]
    assert decision.state is not None
    return decision.state


def refused(code: str, fn: object, *args: object) -> str:
    with pytest.raises(DomainError) as caught:
        fn(*args)  # type: ignore[operator]
    assert caught.value.code == code, caught.value.message
    return caught.value.message


def test_limits_come_from_the_versioned_file() -> None:
    data = json.loads(esc.LIMITS_FILE.read_text("utf-8"))
    assert RULES.version == data["version"] and RULES.report_in_hours == data["whistle"]["report_in_hours"]
    assert {lvl: RULES.level_days[lvl] for lvl in esc.LEVELS} == \
        {int(k): v["working_days"] for k, v in data["levels"].items()}


def test_levels_raise_with_deadlines_and_the_case_shows_the_highest_open_level() -> None:
    s = case()
    one = esc.decide(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=1, reason="超期"), SYSTEM, NOW, RULES)
    s = one.state  # type: ignore[assignment]
    assert s.case.supervision_level == 1 and s.supervision.level == 1
    record = s.supervision.records[0]
    assert record.record_id == "C1/L1/1" and record.state == esc.OPEN and record.limits_version == RULES.version
    # the level's working days on the one calendar (the rule for periods is the calendar's): after Thursday,
    # Friday, Monday, Tuesday
    assert pb.dt(record.due) == RULES.deadlines.working_days_after(NOW, RULES.level_days[1])
    assert pb.dt(record.due) == datetime(2026, 12, 2, tzinfo=TZ)  # 24:00 of the limit's last working day, 1 December
    assert [type(e) for e in one.events] == [sv.SupervisionRaised]
    s = apply(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=2, reason="逾期未办结", joint_discipline=True),
              OFFICE)
    letter_record = s.supervision.records[1]
    assert s.case.supervision_level == 2 and s.supervision.joint_discipline
    assert letter_record.letter_number == "督字〔2026〕C1-1号"
    s = apply(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=4, reason="群众反映强烈", leader="王区长"), LEADER)
    assert s.case.supervision_level == 4
    s = apply(s, sv.CloseSupervisionRequest(ticket_id="C1", level=4, resolved=True, outcome="已解决"), LEADER)
    assert s.case.supervision_level == 2  # the highest OPEN level
    closed = next(r for r in s.supervision.records if r.level == 4)
    assert closed.state == esc.RESOLVED and closed.on_time and closed.outcome == "已解决"
    s = apply(s, sv.CloseSupervisionRequest(ticket_id="C1", level=2, resolved=False, outcome="条件不具备"), OFFICE,
              NOW + timedelta(days=30))
    late = next(r for r in s.supervision.records if r.level == 2)
    assert late.state == esc.UNRESOLVED and not late.on_time and s.case.supervision_level == 1
    # a closed level can be raised again: a new record
    s = apply(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=2, reason="再次督办"), OFFICE)
    assert [r.record_id for r in s.supervision.records if r.level == 2] == ["C1/L2/1", "C1/L2/2"]


def test_level_one_is_the_systems_and_raised_once_while_open() -> None:
    s = case()
    refused("invalid_argument", esc.decide, s, sv.RaiseSupervisionRequest(ticket_id="C1", level=1, reason="x"),
            OFFICE, NOW, RULES)
    s = apply(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=1, reason="超期"), SYSTEM)
    again = esc.decide(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=1, reason="超期"), SYSTEM, NOW, RULES)
    assert again.state is None and not again.events  # nothing changes, nothing is emitted
    s = apply(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=2, reason="督办"), OFFICE)
    assert "already open" in refused("failed_precondition", esc.decide, s,
                                     sv.RaiseSupervisionRequest(ticket_id="C1", level=2, reason="again"), OFFICE,
                                     NOW, RULES)


def test_refusals() -> None:
    s = case()
    refused("invalid_argument", esc.decide, s, sv.RaiseSupervisionRequest(ticket_id="C1", level=5, reason="x"),
            OFFICE, NOW, RULES)
    refused("invalid_argument", esc.decide, s, sv.RaiseSupervisionRequest(ticket_id="C1", level=2), OFFICE, NOW,
            RULES)
    refused("invalid_argument", esc.decide, s, sv.RaiseSupervisionRequest(ticket_id="C1", level=4, reason="x"),
            OFFICE, NOW, RULES)  # level 4 names its leader
    refused("failed_precondition", esc.decide, s, sv.CloseSupervisionRequest(ticket_id="C1", level=3, outcome="x"),
            OFFICE, NOW, RULES)
    refused("not_found", esc.decide, None, sv.RaiseSupervisionRequest(ticket_id="C9", level=2, reason="x"), OFFICE,
            NOW, RULES)
    refused("not_found", esc.decide, s, sv.GetSupervisionRequest(ticket_id="C1"), STRANGER, NOW, RULES)
    archived = case(state=events_pb2.CASE_STATE_ARCHIVED)
    refused("failed_precondition", esc.decide, archived,
            sv.RaiseSupervisionRequest(ticket_id="C1", level=2, reason="x"), OFFICE, NOW, RULES)  # a person's


def closed_case(level: int = 0, closure: int = case_pb2.CLOSURE_SATISFIED) -> esc.Supervised:
    s = case(state=events_pb2.CASE_STATE_ARCHIVED)
    s.case.closure, s.case.supervision_level = closure, level  # type: ignore[assignment]
    s.case.closed_at.CopyFrom(pb.ts(NOW))
    return s


def test_an_automatic_raise_on_a_closed_case_keeps_its_record_and_the_case_its_level() -> None:
    overdue = sv.RaiseSupervisionRequest(ticket_id="C1", level=1, reason="超期：签收")
    # overdue before the case closed, applied after: the record closed with the case, the case keeps level 1
    late = esc.decide(closed_case(), overdue, SYSTEM, NOW - timedelta(hours=2), RULES)
    assert late.state is not None and [type(e) for e in late.events] == [sv.SupervisionRaised]
    (record,) = late.state.supervision.records
    assert record.state == esc.RESOLVED and pb.dt(record.closed_at) == NOW and record.on_time
    assert pb.dt(record.raised_at) == NOW - timedelta(hours=2) and record.outcome == "回访满意结案"
    assert late.state.case.supervision_level == 1 and late.state.supervision.level == 0
    # the event carries the case: the KPI facts get the level though the case's last lifecycle event had none
    (event,) = late.events
    assert event.case == late.state.case  # type: ignore[attr-defined]
    raised = [(u.key, dict(u.max)) for u in projection.updates(event) if "supervision_level" in u.max]
    assert raised == [("C1|1", {"supervision_level": 1})] and "hotline.v1.SupervisionRaised" in projection.EVENT_TYPES
    assert projection.updates(sv.SupervisionRaised(record=record)) == []  # one from before events had the case
    explained = esc.decide(closed_case(closure=case_pb2.CLOSURE_EXPLAINED), overdue, SYSTEM,
                           NOW - timedelta(hours=2), RULES).state
    assert explained is not None and explained.supervision.records[0].state == esc.UNRESOLVED
    # the same trigger again (another key, e.g. a replay): level 1 was open then, nothing changes
    assert esc.decide(late.state, overdue, SYSTEM, NOW - timedelta(hours=2), RULES).state is None
    # raised after the case closed (a deputy's escalation): an open record for the office to close
    after = apply(closed_case(level=2), overdue, SYSTEM, NOW + timedelta(days=1))
    assert after.supervision.records[0].state == esc.OPEN and after.supervision.level == 1
    assert after.case.supervision_level == 2  # the higher level it closed with
    assert esc.decide(after, overdue, SYSTEM, NOW + timedelta(days=2), RULES).state is None  # open: once
    closed = apply(after, sv.CloseSupervisionRequest(ticket_id="C1", level=1, resolved=True, outcome="已回复代表"),
                   OFFICE, NOW + timedelta(days=3))
    assert closed.supervision.level == 0 and closed.case.supervision_level == 2


def test_visits_joint_flag_and_meetings() -> None:
    s = case()
    refused("failed_precondition", esc.decide, s,
            sv.RecordVisitRequest(ticket_id="C1", supervisor="监督员张", findings="x"), OFFICE, NOW, RULES)
    s = apply(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=3, reason="作风问题"), OFFICE)
    s = apply(s, sv.RecordVisitRequest(ticket_id="C1", supervisor="监督员张", covert=True, findings="窗口推诿",
                                       visited_at=pb.ts(NOW - timedelta(hours=2))), OFFICE)
    assert s.supervision.records[0].visits[0].covert and s.supervision.records[0].visits[0].findings == "窗口推诿"
    refused("invalid_argument", esc.decide, s, sv.RecordVisitRequest(
        ticket_id="C1", supervisor="张", findings="x", visited_at=pb.ts(NOW + timedelta(days=1))), OFFICE, NOW, RULES)
    s = apply(s, sv.SetJointSupervisionRequest(ticket_id="C1", joint=True, reason="涉嫌失职"), OFFICE)
    assert s.supervision.joint_discipline
    refused("failed_precondition", esc.decide, s, sv.SetJointSupervisionRequest(ticket_id="C1", joint=True,
                                                                                reason="x"), OFFICE, NOW, RULES)
    refused("failed_precondition", esc.decide, s, sv.RecordMeetingRequest(ticket_id="C1", outcome="x"), OFFICE, NOW,
            RULES)
    s = apply(s, sv.ScheduleMeetingRequest(ticket_id="C1", scheduled_at=pb.ts(NOW + timedelta(days=2)),
                                           place="瑞金路街道会议室"), OFFICE)
    refused("permission_denied", esc.decide, case_with(s, "DP02"), sv.RecordMeetingRequest(ticket_id="C1",
                                                                                           outcome="x"),
            Principal("u2", Role.UNIT, unit_id="DP02"), NOW, RULES)
    s = apply(s, sv.RecordMeetingRequest(ticket_id="C1", outcome="当面解释，诉求人认可"), PRIMARY)
    assert s.supervision.meeting.outcome and s.supervision.meeting.HasField("held_at")


def case_with(s: esc.Supervised, assisting: str) -> esc.Supervised:
    out = esc.Supervised(events_pb2.Case(), sv.CaseSupervision())
    out.case.CopyFrom(s.case)
    out.case.assisting_units.add(unit_id=assisting)
    out.supervision.CopyFrom(s.supervision)
    return out


def test_resolution_rates_per_level() -> None:
    rates = esc.resolution_rates({(1, esc.RESOLVED): 3, (1, esc.UNRESOLVED): 1, (2, esc.OPEN): 5})
    assert rates == {1: 0.75, 2: 0.0, 3: 0.0, 4: 0.0}


def test_supervision_letter_is_a_chinese_document() -> None:
    s = apply(case(), sv.RaiseSupervisionRequest(ticket_id="C1", level=2, reason="逾期<未办结>",
                                                 joint_discipline=True), OFFICE)
    html = esc.letter(s, s.supervision.records[0], TZ)
    assert "督办函" in html and "督字〔2026〕C1-1号" in html and "区市场监督管理局" in html
    assert "联合区纪委监委督办" in html and "&lt;未办结&gt;" in html


# ------------------------------------------------------------------------------ whistles


def blow(actor: Principal = STREET, units: tuple[str, ...] = ("DP01", "DP02"), **kw: str) -> sv.Whistle:
    d = wh.decide(None, "WH-1", sv.BlowWhistleRequest(problem="占道经营屡禁不止", unit_ids=units, **kw), actor, NOW,
                  RULES, UNIT_TYPE)
    assert d.state is not None
    return d.state


def test_whistle_report_in_and_close() -> None:
    w = blow()
    assert w.street_unit_id == "ST01" and w.state == wh.OPEN
    assert all(pb.dt(s.due) == NOW + timedelta(hours=RULES.report_in_hours) for s in w.summoned)
    first = wh.report_in(w, sv.ReportInRequest(whistle_id="WH-1", note="已到场"), PRIMARY, NOW + timedelta(hours=1))
    w = first.state  # type: ignore[assignment]
    assert w.state == wh.OPEN and w.summoned[0].on_time and isinstance(first.events[0], sv.WhistleReportedIn)
    assert wh.overdue(w, NOW + timedelta(hours=30)) == ["DP02"]
    refused("failed_precondition", wh.report_in, w, sv.ReportInRequest(whistle_id="WH-1"), PRIMARY, NOW)
    late = Principal("u-dp02", Role.UNIT, unit_id="DP02")
    w = wh.report_in(w, sv.ReportInRequest(whistle_id="WH-1"), late, NOW + timedelta(hours=30)).state  # type: ignore
    assert w.state == wh.REPORTED and not w.summoned[1].on_time
    refused("permission_denied", wh.close, w, sv.CloseWhistleRequest(whistle_id="WH-1", outcome="x"), PRIMARY, NOW)
    refused("invalid_argument", wh.close, w, sv.CloseWhistleRequest(whistle_id="WH-1"), STREET, NOW)
    w = wh.close(w, sv.CloseWhistleRequest(whistle_id="WH-1", resolved=True, outcome="联合执法，已清理"), STREET,
                 NOW).state  # type: ignore[assignment]
    assert w.state == wh.CLOSED and w.resolved
    refused("failed_precondition", wh.close, w, sv.CloseWhistleRequest(whistle_id="WH-1", outcome="x"), OFFICE, NOW)


def test_whistle_scope_and_refusals() -> None:
    w = blow()
    assert wh.visible(w, "WH-1", PRIMARY) and wh.visible(w, "WH-1", STREET) and wh.visible(w, "WH-1", OFFICE)
    refused("not_found", wh.visible, w, "WH-1", STRANGER)
    refused("not_found", wh.report_in, w, sv.ReportInRequest(whistle_id="WH-1"), STRANGER, NOW)
    refused("permission_denied", wh.report_in, w, sv.ReportInRequest(whistle_id="WH-1"), STREET, NOW)
    assert blow(PRIMARY, ("DP02",)).street_unit_id == "DP01"  # a department whistles too (issue #22)
    refused("permission_denied", blow, Principal("u-cm", Role.UNIT, unit_id="CM0101"))  # a community does not
    refused("invalid_argument", blow, OFFICE)  # the office names the street
    assert blow(OFFICE, street_unit_id="ST02").street_unit_id == "ST02"
    refused("invalid_argument", blow, STREET, ("DP01", "NOPE"))
    refused("invalid_argument", blow, STREET, ("ST01",))
    refused("invalid_argument", blow, STREET, ())
    assert wh.whistle_id(STREET, "k1") == wh.whistle_id(STREET, "k1") != wh.whistle_id(STREET, "k2")


# ------------------------------------------------------------------------------ merges (并单)


def test_merge_and_close_with_the_parent() -> None:
    parent = case("P1")
    parent.children = {"C2": case("C2"), "C3": case("C3")}
    d = merging.merge(parent, sv.MergeTicketsRequest(parent_ticket_id="P1", ticket_ids=["C2", "C3"],
                                                     reason="同一事件"), OFFICE, NOW)
    merged = d.state
    assert merged is not None and list(merged.supervision.merged) == ["C2", "C3"]
    assert all(c.supervision.merged_into == "P1" for c in merged.children.values())
    again = case("P1")
    again.supervision.CopyFrom(merged.supervision)
    again.children = merged.children
    refused("failed_precondition", merging.merge, again,
            sv.MergeTicketsRequest(parent_ticket_id="P1", ticket_ids=["C2"], reason="x"), OFFICE, NOW)
    other = case("P2")
    other.children = {"C2": merged.children["C2"]}
    assert "already merged under P1" in refused("failed_precondition", merging.merge, other, sv.MergeTicketsRequest(
        parent_ticket_id="P2", ticket_ids=["C2"], reason="x"), OFFICE, NOW)
    refused("not_found", merging.merge, case("P1"), sv.MergeTicketsRequest(parent_ticket_id="P1", ticket_ids=["C9"],
                                                                           reason="x"), OFFICE, NOW)
    refused("invalid_argument", merging.merge, case("P1"),
            sv.MergeTicketsRequest(parent_ticket_id="P1", ticket_ids=["P1"], reason="x"), OFFICE, NOW)

    # a merged case closes with its parent through the lifecycle (tests/unit/test_lifecycle.py, CLOSE_MERGED)


def test_merge_suggestions_rank_by_text_and_place() -> None:
    def fact(tid: str, text: str, address: str = "", street: str = "ST01", days: float = 0) -> Fact:
        return Fact(tid, NOW + timedelta(days=days), street, "市容环卫", address, "", text)

    me = fact("T0", "中华路菜场门口占道经营堵塞交通", "中华路1号")
    found = merging.suggest(me, [
        fact("T1", "中华路菜场门口占道经营，车辆无法通行", "中华路1号"),
        fact("T2", "菜场门口占道经营堵塞交通"),
        fact("T3", "小区垃圾清运不及时"),
        fact("T4", "中华路菜场门口占道经营堵塞交通", street="ST02"),  # another street
        fact("T5", "中华路菜场门口占道经营堵塞交通", days=10),  # too far in time
    ])
    assert [s.ticket_id for s in found] == ["T1", "T2"] and found[0].same_address


# ------------------------------------------------------------------------------ 屡办不成


def test_recurring_unresolved_problems_on_the_monthly_list() -> None:
    rules = recurring.Rules.load()
    assert rules.min_tickets == 3

    def fact(tid: str, day: int, address: str = "中华路1号", category: str = "占道经营") -> Fact:
        return Fact(tid, datetime(2026, 11, day, 2, tzinfo=UTC), "ST01", category, address, "", "占道")

    satisfied = events_pb2.Case(ticket_id="B3", state=events_pb2.CASE_STATE_ARCHIVED,
                                closure=case_pb2.CLOSURE_SATISFIED)
    poor = events_pb2.Case(ticket_id="A1", evaluation=case_pb2.Evaluation(
        evaluation_id="e", resolution=case_pb2.RESOLUTION_UNRESOLVED))
    facts = [fact("A1", 2), fact("A2", 9), fact("A3", 20),  # three, the latest still open: listed
             fact("B1", 2, "雨花路8号"), fact("B2", 3, "雨花路8号"), fact("B3", 4, "雨花路8号"),  # solved at last
             fact("C1", 2, "长干里9号"), fact("C2", 3, "长干里9号"),  # only twice
             fact("D1", 2, category="噪音"), fact("D2", 3, category="噪音"), fact("D3", 3, "")]  # no address
    found = recurring.find("2026-11", facts, {"B3": satisfied, "A1": poor}, rules, TZ)
    assert [(i.address, list(i.ticket_ids)) for i in found] == [("中华路1号", ["A1", "A2", "A3"])]
    assert "3件" in found[0].explanation and "不满意1件" in found[0].explanation
    assert recurring.find("2026-12", facts, {}, rules, TZ) == []  # nothing new in December
    listed = recurring.generate(None, "2026-11", found, NOW).state
    assert listed is not None and listed.items[0].state == sv.RECURRING_STATE_OPEN
    item_id = listed.items[0].item_id
    done = recurring.resolve(listed, sv.ResolveRecurringItemRequest(item_id=item_id, outcome="已取缔"), OFFICE, NOW)
    assert done.state is not None and done.state.items[0].state == sv.RECURRING_STATE_RESOLVED
    refused("failed_precondition", recurring.resolve, done.state,
            sv.ResolveRecurringItemRequest(item_id=item_id, outcome="x"), OFFICE, NOW)
    refused("not_found", recurring.resolve, listed, sv.ResolveRecurringItemRequest(item_id="2026-11/x", outcome="x"),
            OFFICE, NOW)
    again = recurring.generate(done.state, "2026-11", found, NOW).state  # regenerating keeps the tracked state
    assert again is not None and len(again.items) == 1 and again.items[0].state == sv.RECURRING_STATE_RESOLVED
    refused("invalid_argument", recurring.month_span, "2026-13", TZ)


def test_open_supervision_settles_with_the_case() -> None:
    s = apply(case(), sv.RaiseSupervisionRequest(ticket_id="C1", level=1, reason="超期"), SYSTEM)
    s = apply(s, sv.RaiseSupervisionRequest(ticket_id="C1", level=2, reason="督办"), OFFICE)
    closed = events_pb2.Case(ticket_id="C1", state=events_pb2.CASE_STATE_ARCHIVED, closure=case_pb2.CLOSURE_SATISFIED,
                             supervision_level=2)
    archived = esc.Supervised(closed, s.supervision)
    settled = esc.settle(archived, closed, NOW).state
    assert settled is not None and all(r.state == esc.RESOLVED for r in settled.supervision.records)
    assert settled.supervision.level == 0 and settled.case.supervision_level == 2  # the level it closed with
    assert esc.settle(settled, closed, NOW).state is None  # once
    explained = events_pb2.Case(ticket_id="C1", state=events_pb2.CASE_STATE_ARCHIVED,
                                closure=case_pb2.CLOSURE_EXPLAINED)
    unresolved = esc.settle(esc.Supervised(explained, s.supervision), explained, NOW).state
    assert unresolved is not None and {r.state for r in unresolved.supervision.records} == {esc.UNRESOLVED}
    # raised after the case closed (a deputy escalating it): the closing, read again, leaves it open
    earlier = esc.settle(archived, closed, NOW - timedelta(hours=1))
    assert earlier.state is None and earlier.unchanged and {r.state for r in s.supervision.records} == {esc.OPEN}


# ------------------------------------------------------------------------------ the consumer


class FakeCommands:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, str]] = []

    async def raise_supervision(self, ticket_id: str, level: int, reason: str, at: datetime, key: str = "") -> None:
        self.calls.append(("raise", ticket_id, level, key))

    async def closing(self, ticket_ids: list[str]) -> dict[str, tuple[bool, list[str]]]:
        self.calls.append(("closing", ",".join(ticket_ids), 0, ""))
        return {"C2": (True, ["C7"])}

    async def settle(self, closed: events_pb2.Case, at: datetime, is_open: bool | None = None) -> None:
        self.calls.append(("settle", closed.ticket_id, 0, repr(is_open)))

    async def close_merged(self, parent: events_pb2.Case, at: datetime, merged: list[str] | None = None) -> None:
        self.calls.append(("close_merged", parent.ticket_id, 0, repr(merged)))


def staged(message: object, topic: str = "t.cases") -> dict[str, Any]:
    """An outbox document as hotline/outbox.py stages it."""
    event = Event(topic, "C1", message, f"C1/{type(message).__name__}")  # type: ignore[arg-type]
    return {"topic": topic, "key": "C1", "value": event.value(), "headers": [[k, v] for k, v in event.headers("sv")]}


async def test_the_follow_ups_raise_level_one_and_settle_on_closing_from_the_outbox() -> None:
    fake = FakeCommands()
    follow_ups = EscalationFollowUps(fake, "t.cases")  # type: ignore[arg-type]
    c = events_pb2.Case(ticket_id="C1")
    poor = lifecycle_pb2.CaseEvaluated(case=c, needs_decision=True, occurred_at=pb.ts(NOW),
                                       evaluation=case_pb2.Evaluation(evaluation_id="EV1",
                                                                      satisfaction=case_pb2.SATISFACTION_UNSATISFIED))
    fine = lifecycle_pb2.CaseEvaluated(case=c, needs_decision=False, occurred_at=pb.ts(NOW))
    deputy = deputy_escalation_pb2.CaseEscalatedByDeputy(case=c, submission_id="S1", occurred_at=pb.ts(NOW))
    closed = lifecycle_pb2.CaseClosed(case=c, closure=case_pb2.CLOSURE_SATISFIED, occurred_at=pb.ts(NOW))
    moved = lifecycle_pb2.CaseClosed(case=c, closure=case_pb2.CLOSURE_REDISPATCHED, occurred_at=pb.ts(NOW))
    overdue = deadlines_pb2.OverdueSupervisionRaised(ticket_id="C1", level=1, raised_at=pb.ts(NOW),
                                                     clock=deadlines_pb2.DEADLINE_CLOCK_SIGN_OFF)
    # the result of a deputy's escalation (deputy_escalation_handlers.py) and other topics are not followed
    assert follow_ups.decode(staged(deputy)) is None and follow_ups.decode(staged(closed, "t.city.results")) is None
    await follow_ups.follow([staged(m) for m in (poor, fine, deputy, overdue, closed, moved)])
    # C1 was raised in this batch: its closing reads its supervision again (None: not known)
    assert fake.calls == [("closing", "C1", 0, ""),
                          ("raise", "C1", 1, "C1/supervision/L1/evaluation/EV1"),
                          ("raise", "C1", 1, "C1/supervision/L1/overdue"),
                          ("settle", "C1", 0, "None"), ("close_merged", "C1", 0, "None")]


async def test_the_closings_of_a_batch_are_read_once_for_all() -> None:
    fake = FakeCommands()
    follow_ups = EscalationFollowUps(fake, "t.cases")  # type: ignore[arg-type]
    closed = [lifecycle_pb2.CaseClosed(case=events_pb2.Case(ticket_id=t), closure=case_pb2.CLOSURE_SATISFIED,
                                       occurred_at=pb.ts(NOW)) for t in ("C2", "C3")]
    moved = lifecycle_pb2.CaseClosed(case=events_pb2.Case(ticket_id="C4"), closure=case_pb2.CLOSURE_REDISPATCHED)
    await follow_ups.follow([staged(m) for m in (*closed, moved)])
    # one read for both closings (the re-dispatched round is no closing); C2 has an open level and
    # C7 merged under it, C3 has no supervision document: nothing open, nothing merged
    assert fake.calls == [("closing", "C2,C3", 0, ""),
                          ("settle", "C2", 0, "True"), ("close_merged", "C2", 0, "['C7']"),
                          ("settle", "C3", 0, "False"), ("close_merged", "C3", 0, "[]")]
