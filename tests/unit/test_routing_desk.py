"""The office's desk, pure (services/routing/desk.py): queue dispatch, returns, recategorisation,
sub-dispatch and joint review decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hotline import pb
from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.policy import Role
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2, ticket_pb2
from services.routing import desk
from services.routing.core import DATA_DIR, Router, assignment_event
from services.routing.handlers import queue_entry_of
from services.routing.responsibility import load_listing, seed

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OFFICE = Principal("office:1", Role.OFFICE)


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_files()


def ticket(title: str, content: str, address: str = "", tid: str = "T1") -> ticket_pb2.Ticket:
    return ticket_pb2.Ticket(ticket_id=tid, title=title, content=content, address=address,
                             received_at=pb.ts(NOW - timedelta(minutes=2)))


def state(router: Router, t: ticket_pb2.Ticket) -> desk.Desk:
    decision = router.decide(t)
    queued = queue_entry_of(router, t, None, NOW) if decision.method == "manual" else None
    return desk.Desk(t, assignment_event(t, decision, 1, NOW), queue=queued)


def code(exc: pytest.ExceptionInfo[DomainError]) -> str:
    return exc.value.code


def test_a_manual_ticket_waits_with_suggestions_and_the_office_dispatches_it(router: Router) -> None:
    s = state(router, ticket("咨询", "请问这个事情怎么办理"))
    assert s.queue is not None and s.primary == "HOTLINE"
    assert pb.dt(s.queue.dispatch_due) == NOW - timedelta(minutes=2) + desk.DISPATCH_LIMIT  # from arrival
    with pytest.raises(DomainError) as bad:
        desk.dispatch(s, routing_pb2.DispatchRequest(ticket_id="T1", primary_unit_id="NOPE"), router, NOW)
    assert code(bad) == "invalid_argument"
    d = desk.dispatch(s, routing_pb2.DispatchRequest(ticket_id="T1", primary_unit_id="DP03",
                                                     assisting_unit_ids=["DP06", "DP03"], category="城市管理"),
                      router, NOW)
    assert d.state is not None and d.state.queue is None and d.state.round == 2
    a = d.state.assigned.assignment
    assert (a.primary_unit.unit_id, [u.unit_id for u in a.assisting_units], a.method) == ("DP03", ["DP06"], "office")
    assert [e["kind"] for e in d.state.examples] == ["dispatch"]
    with pytest.raises(DomainError) as twice:  # no longer queued
        desk.dispatch(d.state, routing_pb2.DispatchRequest(ticket_id="T1", primary_unit_id="DP03"), router, NOW)
    assert code(twice) == "failed_precondition"


def test_suggestions_are_at_most_three_best_first(router: Router) -> None:
    suggestions = router.suggest(ticket("噪音", "饭店噪音扰民油烟路灯垃圾占道经营"))
    assert 1 <= len(suggestions) <= 3 and suggestions[0][3] == max(s[3] for s in suggestions)


def returned(router: Router, requested: datetime, due: datetime) -> desk.Desk:
    s = state(router, ticket("医保报销", "医保报销比例咨询，异地就医备案"))
    case = events_pb2.Case(ticket_id="T1", dispatch_round=1, primary_unit=s.assigned.assignment.primary_unit,
                           return_due=pb.ts(due))
    event = lifecycle_pb2.ReturnRequested(case=case, reason="不属于本单位职责", return_request=case_pb2.ReturnRequest(
        reason="不属于本单位职责", requested_at=pb.ts(requested)))
    d = desk.receive_return(s, event, requested)
    assert d.state is not None
    return d.state


def test_a_return_is_kept_for_the_office_and_approved_to_another_unit_never_the_same(router: Router) -> None:
    s = returned(router, NOW, NOW + timedelta(days=2))
    assert s.ret is not None and s.ret.status == case_pb2.RETURN_STATUS_REQUESTED and s.ret.unit_id == "DP17"
    with pytest.raises(DomainError) as same:  # the list sends it to DP17 again, alone: name the units
        desk.decide_return(s, routing_pb2.DecideReturnRequest(ticket_id="T1", approved=True, reason="改派"),
                           router, OFFICE, NOW)
    assert code(same) == "invalid_argument"
    with pytest.raises(DomainError):
        desk.decide_return(s, routing_pb2.DecideReturnRequest(ticket_id="T1", approved=True, reason="改派",
                                                              primary_unit_id="DP17"), router, OFFICE, NOW)
    flagged = desk.decide_return(s, routing_pb2.DecideReturnRequest(
        ticket_id="T1", approved=True, reason="仍由原单位", primary_unit_id="DP17", allow_same_unit=True),
        router, OFFICE, NOW)
    assert flagged.state is not None and flagged.state.primary == "DP17"
    d = desk.decide_return(s, routing_pb2.DecideReturnRequest(ticket_id="T1", approved=True, reason="属医保局",
                                                              primary_unit_id="DP18"), router, OFFICE, NOW)
    decision, assigned = d.events
    assert isinstance(decision, lifecycle_pb2.ReturnDecision) and decision.approved and decision.dispatch_round == 1
    assert isinstance(assigned, events_pb2.TicketAssigned)
    assert (assigned.assignment.dispatch_round, assigned.assignment.primary_unit.unit_id) == (2, "DP18")
    assert d.state is not None and d.state.ret is not None and d.state.ret.redispatched_to == "DP18"
    assert [e["kind"] for e in d.state.examples] == ["redispatch"]


def test_a_refused_return_goes_back_to_the_unit(router: Router) -> None:
    s = returned(router, NOW, NOW + timedelta(days=2))
    with pytest.raises(DomainError):  # a reason is required
        desk.decide_return(s, routing_pb2.DecideReturnRequest(ticket_id="T1"), router, OFFICE, NOW)
    d = desk.decide_return(s, routing_pb2.DecideReturnRequest(ticket_id="T1", reason="属本单位职责"),
                           router, OFFICE, NOW)
    (event,) = d.events
    assert isinstance(event, lifecycle_pb2.ReturnDecision) and not event.approved
    assert d.state is not None and d.state.round == 1 and d.state.ret is not None
    assert d.state.ret.status == case_pb2.RETURN_STATUS_REFUSED
    with pytest.raises(DomainError) as again:
        desk.decide_return(d.state, routing_pb2.DecideReturnRequest(ticket_id="T1", reason="x"), router, OFFICE, NOW)
    assert code(again) == "failed_precondition"


def test_a_return_after_its_limit_is_refused_at_once() -> None:
    s = returned(Router.from_files(), NOW + timedelta(days=3), NOW)
    assert s.ret is not None and s.ret.status == case_pb2.RETURN_STATUS_REFUSED and "时限" in s.ret.decision_reason


def test_recategorisation_re_routes_in_the_new_category(router: Router) -> None:
    s = state(router, ticket("噪音扰民", "楼下饭店夜间噪音扰民", "瑞金北村12栋"))
    with pytest.raises(DomainError):
        desk.recategorize(s, routing_pb2.RecategorizeRequest(ticket_id="T1", category="无此类", reason="x"),
                          router, NOW)
    d = desk.recategorize(s, routing_pb2.RecategorizeRequest(ticket_id="T1", category="城市管理", reason="改类"),
                          router, NOW)
    (event,) = d.events
    assert isinstance(event, events_pb2.TicketAssigned)
    assert (event.assignment.category, event.assignment.dispatch_round) == ("城市管理", 2)


def test_a_street_sub_dispatches_only_to_its_own_communities(router: Router) -> None:
    s = state(router, ticket("噪音扰民", "楼下饭店夜间噪音扰民", "瑞金北村12栋"))
    street = s.primary
    assert street.startswith("ST")
    mine = next(c for c, p in router.directory.parents.items() if p == street)
    other = next(c for c, p in router.directory.parents.items() if p != street)
    unit = Principal(f"unit:{street}", Role.UNIT, unit_id=street)

    def plus_days(at: datetime, days: int) -> datetime:
        return at + timedelta(days=days)

    with pytest.raises(DomainError):
        desk.sub_dispatch(s, routing_pb2.SubDispatchRequest(ticket_id="T1", community_unit_id=other), router, unit,
                          NOW, plus_days)
    with pytest.raises(DomainError) as stranger:
        desk.sub_dispatch(s, routing_pb2.SubDispatchRequest(ticket_id="T1", community_unit_id=mine), router,
                          Principal("unit:DP01", Role.UNIT, unit_id="DP01"), NOW, plus_days)
    assert code(stranger) == "not_found"
    d = desk.sub_dispatch(s, routing_pb2.SubDispatchRequest(ticket_id="T1", community_unit_id=mine), router, unit,
                          NOW, plus_days)
    (event,) = d.events
    assert isinstance(event, routing_pb2.SubDispatched)
    assert pb.dt(event.due) == NOW + timedelta(days=desk.SUB_DISPATCH_WORKING_DAYS)


def test_a_joint_review_decision_changes_the_list_so_the_next_ticket_routes_right(router: Router) -> None:
    s = state(router, ticket("充电柜", "电池充电柜起火，充电柜起火隐患", "瑞金北村"))
    with pytest.raises(DomainError):
        desk.open_review(s, routing_pb2.OpenJointReviewRequest(ticket_id="T1", unit_ids=["DP03"], reason="x"),
                         router, NOW)
    opened = desk.open_review(s, routing_pb2.OpenJointReviewRequest(ticket_id="T1", unit_ids=["DP03", "DP06"],
                                                                    reason="争议"), router, NOW)
    assert opened.state is not None
    listing = load_listing(DATA_DIR / "responsibilities.json")
    item = routing_pb2.ListItem(rule_id="城市管理-99", category="城市管理", item="充电柜",
                                keywords=["电池充电柜", "充电柜起火"], primary="DP06", assisting=["DP03"])
    d = desk.decide_review(opened.state, routing_pb2.DecideJointReviewRequest(
        ticket_id="T1", primary_unit_id="DP06", assisting_unit_ids=["DP03"], reason="联席议定", list_change=item),
        router, listing, OFFICE, NOW)
    assert d.state is not None and d.state.list_after is not None
    assert d.state.list_after.listing.version == listing.version + 1 and d.state.list_after.entry.actor == "office:1"
    assert d.state.round == 2 and d.state.primary == "DP06"
    rebuilt = Router.from_listing(router.directory, d.state.list_after.listing, router.label_map)
    nxt = rebuilt.decide(ticket("充电柜", "楼道电池充电柜起火过，充电柜起火危险", "瑞金北村", "T2"))
    assert (nxt.rule_id, nxt.primary.unit_id) == ("城市管理-99", "DP06")


def test_upserting_a_list_item_makes_a_new_version_with_who_and_why(router: Router) -> None:
    listing = load_listing(DATA_DIR / "responsibilities.json")
    current = seed(listing, "system", NOW)
    rule = listing.items[0]
    changed = desk.list_item(rule)
    changed.keywords.append("新关键词")
    d = desk.upsert_item(current, routing_pb2.UpsertListItemRequest(item=changed, reason="补充关键词"),
                         router.directory.units, OFFICE, NOW)
    assert d.state is not None and d.state.entry.reason == "补充关键词" and d.state.entry.before is not None
    assert isinstance(d.answer, routing_pb2.ListItem) and "新关键词" in d.answer.keywords
    with pytest.raises(DomainError):  # no reason
        desk.upsert_item(current, routing_pb2.UpsertListItemRequest(item=changed), router.directory.units, OFFICE,
                         NOW)
