"""Routing's desk command handlers (services/routing/commands.py) through the kit's message bus
with the in-memory unit of work (hotline/uow.py): no Kafka, no store."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.clock import ManualClock
from hotline.commands import DomainError
from hotline.policy import Role
from hotline.uow import InMemoryUnitOfWork
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2
from services.routing import commands as rc
from services.routing import desk
from services.routing.core import DATA_DIR, Router
from services.routing.responsibility import ListVersion, load_listing, seed
from tests.unit.test_routing_desk import NOW, OFFICE, state, ticket

ROUTER = Router.from_files()
RETURNS = Principal.system("routing")


class Lists:
    """The responsibility list's store, as the handlers use it (its kind, its current version)."""

    kind = "responsibility_list"

    def __init__(self, current: ListVersion) -> None:
        self.current = current

    async def load(self) -> ListVersion:
        return self.current


class Desks:
    kind = "dispatch"


def environment() -> tuple[MessageBus, InMemoryUnitOfWork, Lists]:
    clock = ManualClock(NOW)
    uow = InMemoryUnitOfWork("routing", clock)
    bus = MessageBus(uow)
    lists = Lists(seed(load_listing(DATA_DIR / "responsibilities.json"), "system", NOW))

    def plus_days(at: datetime, days: int) -> datetime:
        return at + timedelta(days=days)

    rc.register(bus, rc.DeskHandlers(Desks(), lists, rc.LiveRouter(ROUTER), clock, "t.assignments",  # type: ignore[arg-type]
                                     plus_days))
    return bus, uow, lists


def seeded(uow: InMemoryUnitOfWork, title: str, content: str, address: str = "") -> desk.Desk:
    s = state(ROUTER, ticket(title, content, address))
    uow.states["dispatch", "T1"] = s
    return s


def actions(uow: InMemoryUnitOfWork) -> list[str]:
    return [e["action"] for e in uow.audit]


async def test_every_desk_command_has_one_handler_named_by_its_type() -> None:
    bus, _, _ = environment()
    assert {t.name for t in bus.handlers} == set(rc.COMMAND_NAMES)
    with pytest.raises(ValueError):
        rc.register(bus, rc.DeskHandlers(Desks(), None, None, None, "", None))  # type: ignore[arg-type]


async def test_the_office_dispatches_a_queued_ticket_once() -> None:
    bus, uow, _ = environment()
    seeded(uow, "咨询", "请问这个事情怎么办理")
    request = routing_pb2.DispatchRequest(ticket_id="T1", primary_unit_id="DP03", category="城市管理", reason="人工")
    first = await bus.handle(rc.Dispatch(request, OFFICE, "d1"))
    again = await bus.handle(rc.Dispatch(request, OFFICE, "d1"))
    assert first == again and first.primary_unit.unit_id == "DP03" and first.dispatch_round == 2
    assert uow.state("dispatch", "T1").queue is None
    assert actions(uow) == ["dispatch"] and len(uow.published(events_pb2.TicketAssigned)) == 1
    with pytest.raises(DomainError) as twice:  # no longer queued
        await bus.handle(rc.Dispatch(request, OFFICE, "d2"))
    assert twice.value.code == "failed_precondition"


async def test_a_return_is_received_then_refused_by_the_office() -> None:
    bus, uow, _ = environment()
    s = seeded(uow, "医保报销", "医保报销比例咨询，异地就医备案")
    case = events_pb2.Case(ticket_id="T1", dispatch_round=1, primary_unit=s.assigned.assignment.primary_unit,
                           return_due=events_pb2.Case().return_due)
    case.return_due.FromDatetime(NOW + timedelta(days=2))
    event = lifecycle_pb2.ReturnRequested(case=case, reason="不属于本单位职责", return_request=case_pb2.ReturnRequest(
        reason="不属于本单位职责"))
    event.return_request.requested_at.FromDatetime(NOW)
    pending = await bus.handle(rc.ReceiveReturn(event, RETURNS, "T1/return/1"))
    assert pending.ticket_id == "T1"
    refused = await bus.handle(rc.DecideReturn(routing_pb2.DecideReturnRequest(ticket_id="T1", reason="属本单位职责"),
                                               OFFICE, "r1"))
    assert refused.status == case_pb2.RETURN_STATUS_REFUSED
    (decision,) = uow.published(lifecycle_pb2.ReturnDecision)
    assert not decision.approved and actions(uow) == ["receive_return", "decide_return"]


async def test_recategorisation_and_sub_dispatch() -> None:
    bus, uow, _ = environment()
    s = seeded(uow, "噪音扰民", "楼下饭店夜间噪音扰民", "瑞金北村12栋")
    moved = await bus.handle(rc.Recategorize(routing_pb2.RecategorizeRequest(ticket_id="T1", category="城市管理",
                                                                             reason="改类"), OFFICE, "c1"))
    assert (moved.category, moved.dispatch_round) == ("城市管理", 2)
    street = uow.state("dispatch", "T1").primary
    mine = next(c for c, p in ROUTER.directory.parents.items() if p == street)
    unit = Principal(f"unit:{street}", Role.UNIT, unit_id=street)
    sub = await bus.handle(rc.SubDispatch(routing_pb2.SubDispatchRequest(ticket_id="T1", community_unit_id=mine,
                                                                         reason="下派社区"), unit, "s1"))
    assert sub.community_unit.unit_id == mine and sub.street_unit.unit_id == street == s.primary
    assert actions(uow) == ["recategorize", "sub_dispatch"]


async def test_a_joint_review_opens_and_its_decision_changes_the_list() -> None:
    bus, uow, _ = environment()
    seeded(uow, "充电柜", "电池充电柜起火，充电柜起火隐患", "瑞金北村")
    review = await bus.handle(rc.OpenJointReview(routing_pb2.OpenJointReviewRequest(
        ticket_id="T1", unit_ids=["DP03", "DP06"], reason="争议"), OFFICE, "j1"))
    assert review.ticket_id == "T1"
    item = routing_pb2.ListItem(rule_id="城市管理-99", category="城市管理", item="充电柜",
                                keywords=["电池充电柜", "充电柜起火"], primary="DP06", assisting=["DP03"])
    decided = await bus.handle(rc.DecideJointReview(routing_pb2.DecideJointReviewRequest(
        ticket_id="T1", primary_unit_id="DP06", assisting_unit_ids=["DP03"], reason="联席议定", list_change=item),
        OFFICE, "j2"))
    assert decided.ticket_id == "T1" and uow.state("dispatch", "T1").primary == "DP06"
    assert actions(uow) == ["open_joint_review", "decide_joint_review"]


async def test_a_list_item_upserted_is_a_new_version() -> None:
    bus, uow, lists = environment()
    uow.states["responsibility_list", "current"] = lists.current
    changed = desk.list_item(lists.current.listing.items[0])
    changed.keywords.append("新关键词")
    answer: Any = await bus.handle(rc.UpsertListItem(routing_pb2.UpsertListItemRequest(item=changed,
                                                                                       reason="补充关键词"),
                                                     OFFICE, "u1"))
    assert "新关键词" in answer.keywords
    after: ListVersion = uow.state("responsibility_list", "current")
    assert after.listing.version == lists.current.listing.version + 1 and after.entry.reason == "补充关键词"
    assert uow.audit[0]["target_id"] == "current"
