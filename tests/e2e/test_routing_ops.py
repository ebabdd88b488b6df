"""End to end: the office's dispatch desk (issue 9) with the five services as processes, real Kafka
and the real store, every call authenticated.

Queue dispatch (人工派单); a return approved and re-dispatched to a different unit with a new case;
a return refused because its limit passed; a return rejected (back to the unit); a joint review
whose list change routes the next such ticket; recategorisation re-routes; a street office
sub-dispatches to its community; the office's decisions are stored as labelled examples that
``hotline classify retrain --from-store`` reads.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from hotline import kafka, pb
from hotline.settings import Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from services.routing.classifier.cli import store_examples
from services.routing.classifier.retrain import load_decisions
from tests.support import channel, eventually, http, publish_tickets

pytestmark = pytest.mark.e2e
RUN = uuid.uuid4().hex[:6].upper()


def key() -> list[tuple[str, str]]:
    return [("idempotency-key", uuid.uuid4().hex)]


def city_ticket(n: int, title: str, content: str, address: str = "") -> ticket_pb2.CityTicket:
    now = datetime.now(UTC)
    return ticket_pb2.CityTicket(
        city_ticket_id=f"RO{RUN}{n:04d}", ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title=title, content=content,
        address=address, channel="phone", received_at=pb.ts(now - timedelta(minutes=1)), dispatched_at=pb.ts(now),
        caller=ticket_pb2.Caller(name="张三", phone=f"1381234{n:04d}"))


class Desk:
    """The routing and supervision stubs as the office and as units."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.channels: list[grpc.aio.Channel] = []

    def routing(self, role: str = "office", **scope: str) -> services_pb2_grpc.RoutingServiceStub:
        ch = channel(self.settings, "routing", role, **scope)
        self.channels.append(ch)
        return services_pb2_grpc.RoutingServiceStub(ch)

    def supervision(self, role: str = "office", **scope: str) -> services_pb2_grpc.SupervisionServiceStub:
        ch = channel(self.settings, "supervision", role, **scope)
        self.channels.append(ch)
        return services_pb2_grpc.SupervisionServiceStub(ch)

    async def case(self, tid: str, until: Any) -> events_pb2.Case:
        stub = self.supervision()

        async def probe() -> events_pb2.Case | None:
            try:
                return await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise

        found = await eventually(probe, lambda c: c is not None and until(c), timeout=60)
        assert found is not None
        return found

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()


@pytest.fixture
async def desk(settings: Settings, platform: dict) -> Any:
    d = Desk(settings)
    yield d
    await d.close()


async def test_queue_dispatch_returns_review_recategorisation_and_sub_dispatch(settings: Settings,
                                                                                desk: Desk) -> None:
    tickets = {
        "manual": city_ticket(1, "咨询", "请问这个事情怎么办理，谢谢"),
        "approve": city_ticket(2, "医保报销", "医保报销比例咨询，异地就医备案"),
        "reject": city_ticket(3, "路灯不亮", "小区门口路灯坏了不亮", "瑞金北村"),
        "recat": city_ticket(4, "噪音扰民", "楼下饭店夜间噪音扰民，油烟也很大", "瑞金北村12栋"),
        "review": city_ticket(5, "充电柜问题", "小区电瓶车电池充电柜起火，充电柜起火隐患大", "瑞金北村"),
    }
    ids = {name: t.city_ticket_id for name, t in tickets.items()}
    await publish_tickets(settings, tickets.values())
    office = desk.routing()
    opened = {name: await desk.case(tid, lambda c: c.dispatch_round == 1) for name, tid in ids.items()}
    assert opened["manual"].primary_unit.unit_id == "HOTLINE"

    # ---- 人工派单: the manual ticket waits in the queue with suggestions; the office dispatches it
    queue = await office.ListQueue(routing_pb2.ListQueueRequest(page_size=500))
    entry = next(e for e in queue.entries if e.ticket_id == ids["manual"])
    assert queue.length >= 1 and pb.dt(entry.dispatch_due) - pb.dt(entry.arrived_at) == timedelta(minutes=5)
    with pytest.raises(grpc.aio.AioRpcError) as denied:  # a unit does not dispatch
        await desk.routing("unit", unit_id="DP03").Dispatch(
            routing_pb2.DispatchRequest(ticket_id=ids["manual"], primary_unit_id="DP03"), metadata=key())
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    dispatched = await office.Dispatch(routing_pb2.DispatchRequest(
        ticket_id=ids["manual"], primary_unit_id="DP03", assisting_unit_ids=["DP06"], category="城市管理",
        reason="人工研判"), metadata=key())
    assert (dispatched.primary_unit.unit_id, dispatched.dispatch_round, dispatched.method) == ("DP03", 2, "office")
    case = await desk.case(ids["manual"], lambda c: c.dispatch_round == 2)
    assert case.primary_unit.unit_id == "DP03" and [a.unit_id for a in case.assists] == ["DP06"]
    queue = await office.ListQueue(routing_pb2.ListQueueRequest())
    assert ids["manual"] not in {e.ticket_id for e in queue.entries}
    async with http(settings, "office") as client:
        text = (await client.get(f"http://{settings.bind_host}:{settings.ports.http('routing')}/metrics")).text
    assert "hotline_dispatch_queue_length" in text and "hotline_dispatch_queue_oldest_age_seconds" in text

    # ---- 退单 approved: re-dispatched to another unit, a new case (round 2); never back without the flag
    first = opened["approve"].primary_unit.unit_id
    unit = desk.supervision("unit", unit_id=first)
    await unit.RequestReturn(lifecycle_pb2.RequestReturnRequest(ticket_id=ids["approve"], reason="不属于本单位职责"),
                             metadata=key())
    pending = await eventually(lambda: office.ListReturns(routing_pb2.ListReturnsRequest(pending_only=True)),
                               lambda r: ids["approve"] in {x.ticket_id for x in r.returns})
    assert next(x for x in pending.returns if x.ticket_id == ids["approve"]).unit_id == first
    mine = await desk.routing("unit", unit_id=first).ListReturns(routing_pb2.ListReturnsRequest())
    assert {x.unit_id for x in mine.returns} == {first}
    others = await desk.routing("unit", unit_id="DP99").ListReturns(routing_pb2.ListReturnsRequest())
    assert not others.returns
    with pytest.raises(grpc.aio.AioRpcError) as same:
        await office.DecideReturn(routing_pb2.DecideReturnRequest(
            ticket_id=ids["approve"], approved=True, reason="改派", primary_unit_id=first), metadata=key())
    assert same.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    decided = await office.DecideReturn(routing_pb2.DecideReturnRequest(
        ticket_id=ids["approve"], approved=True, reason="属区医保局职责", primary_unit_id="DP18"), metadata=key())
    assert decided.status == case_pb2.RETURN_STATUS_APPROVED and decided.redispatched_to == "DP18"
    case = await desk.case(ids["approve"], lambda c: c.dispatch_round == 2)
    assert case.primary_unit.unit_id == "DP18" != first
    assert case.state == events_pb2.CASE_STATE_AWAITING_SIGN_OFF

    # ---- 退单 rejected: back to the unit, the case resumes with its clock
    back_unit = opened["reject"].primary_unit.unit_id
    await desk.supervision("unit", unit_id=back_unit).RequestReturn(
        lifecycle_pb2.RequestReturnRequest(ticket_id=ids["reject"], reason="不归我们管"), metadata=key())
    await eventually(lambda: office.ListReturns(routing_pb2.ListReturnsRequest(pending_only=True)),
                     lambda r: ids["reject"] in {x.ticket_id for x in r.returns})
    refused = await office.DecideReturn(routing_pb2.DecideReturnRequest(
        ticket_id=ids["reject"], approved=False, reason="经核实属于该单位职责"), metadata=key())
    assert refused.status == case_pb2.RETURN_STATUS_REFUSED
    case = await desk.case(ids["reject"], lambda c: c.return_request.status == case_pb2.RETURN_STATUS_REFUSED)
    assert case.dispatch_round == 1 and case.primary_unit.unit_id == back_unit
    assert case.state == events_pb2.CASE_STATE_AWAITING_SIGN_OFF
    assert case.sign_off_due == opened["reject"].sign_off_due  # its clock kept running

    # ---- 退单 after its limit: refused with the reason (a ticket assigned three weeks ago)
    late = f"RO{RUN}LATE"
    assigned_at = datetime.now(UTC) - timedelta(days=21)
    await publish_assignment(settings, events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(ticket_id=late, primary_unit=opened["approve"].primary_unit,
                                         category="社会保障与就业", method="keyword", dispatch_round=1,
                                         assigned_at=pb.ts(assigned_at)),
        ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, received_at=pb.ts(assigned_at)))
    await desk.case(late, lambda c: True)
    with pytest.raises(grpc.aio.AioRpcError) as too_late:
        await desk.supervision("unit", unit_id=first).RequestReturn(
            lifecycle_pb2.RequestReturnRequest(ticket_id=late, reason="不属于本单位职责"), metadata=key())
    assert too_late.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "退单时限" in too_late.value.details()

    # ---- 改类: recategorisation re-routes (round 2)
    recat = await office.Recategorize(routing_pb2.RecategorizeRequest(
        ticket_id=ids["recat"], category="城市管理", reason="属市容管理"), metadata=key())
    assert (recat.category, recat.dispatch_round, recat.method) == ("城市管理", 2, "recategorize")
    await desk.case(ids["recat"], lambda c: c.dispatch_round == 2 and c.category == "城市管理")

    # ---- 加派: the street office sends a ticket on to its community, with its own deadline
    street = opened["reject"].primary_unit.unit_id if opened["reject"].primary_unit.unit_id.startswith("ST") \
        else "ST05"
    sub_ticket = ids["reject"] if street == opened["reject"].primary_unit.unit_id else None
    if sub_ticket is not None:
        community = f"CM{street[2:]}01"
        sub = await desk.routing("unit", unit_id=street).SubDispatch(routing_pb2.SubDispatchRequest(
            ticket_id=sub_ticket, community_unit_id=community, working_days=2, reason="请社区上门核实"),
            metadata=key())
        assert sub.community_unit.unit_id == community and pb.dt(sub.due) > pb.dt(sub.dispatched_at)

    # ---- 联席研判: the decision fixes the units and changes the list; the next such ticket routes right
    units = await office.OpenJointReview(routing_pb2.OpenJointReviewRequest(
        ticket_id=ids["review"], unit_ids=["DP03", "DP06"], reason="两单位均认为不属本单位"), metadata=key())
    assert units.status == routing_pb2.REVIEW_STATUS_OPEN

    async def listed(status: int) -> list[str]:
        answer = await office.ListJointReviews(routing_pb2.ListJointReviewsRequest(status=status))
        return [r.ticket_id for r in answer.reviews]

    assert ids["review"] in await listed(routing_pb2.REVIEW_STATUS_OPEN)
    assert ids["review"] not in await listed(routing_pb2.REVIEW_STATUS_DECIDED)
    item = routing_pb2.ListItem(rule_id=f"城市管理-R{RUN}", category="城市管理", item="电瓶车充电柜安全",
                                keywords=["电池充电柜", "充电柜起火"], primary="DP06", assisting=["DP03"])
    review = await office.DecideJointReview(routing_pb2.DecideJointReviewRequest(
        ticket_id=ids["review"], primary_unit_id="DP06", assisting_unit_ids=["DP03"], reason="联席会议议定",
        list_change=item), metadata=key())
    assert review.status == routing_pb2.REVIEW_STATUS_DECIDED and review.list_version
    assert ids["review"] in await listed(routing_pb2.REVIEW_STATUS_DECIDED)
    assert ids["review"] not in await listed(routing_pb2.REVIEW_STATUS_OPEN)
    await desk.case(ids["review"], lambda c: c.dispatch_round == 2 and c.primary_unit.unit_id == "DP06")
    stored = await office.GetListItem(routing_pb2.GetListItemRequest(rule_id=item.rule_id))
    assert list(stored.keywords) == list(item.keywords)
    nxt = city_ticket(6, "充电柜", "楼道里电池充电柜起火过一次，充电柜起火很危险", "瑞金北村")
    await publish_tickets(settings, [nxt])
    case = await desk.case(nxt.city_ticket_id, lambda c: True)
    assigned = await office.GetAssignment(services_pb2.GetAssignmentRequest(ticket_id=nxt.city_ticket_id))
    assert (assigned.rule_id, assigned.primary_unit.unit_id) == (item.rule_id, "DP06")
    assert assigned.list_version == review.list_version and case.primary_unit.unit_id == "DP06"

    # ---- the office's decisions are labelled examples that retraining reads from the store
    examples = [e for e in store_examples(settings) if str(e["ticket_id"]).startswith(f"RO{RUN}")]
    assert {(e["ticket_id"], e["kind"]) for e in examples} >= {
        (ids["manual"], "dispatch"), (ids["approve"], "redispatch"), (ids["recat"], "recategorize"),
        (ids["review"], "redispatch")}
    decisions = load_decisions(examples)
    assert {d.category for d in decisions if d.ticket_id == ids["recat"]} == {"城市管理"}


async def publish_assignment(settings: Settings, message: events_pb2.TicketAssigned) -> None:
    """An assignment as routing publishes it (used to open a case whose return limit lies in the past)."""
    producer = kafka.producer(settings, linger_ms=0)
    await producer.start()
    try:
        tid = message.assignment.ticket_id
        headers = [("event_type", message.DESCRIPTOR.full_name.encode()), ("event_id", f"{tid}/assigned/1".encode()),
                   ("correlation_id", tid.encode()), ("content_type", b"application/x-protobuf"),
                   ("producer", b"test")]
        await producer.send_and_wait(settings.topics.name("assignment_events"), message.SerializeToString(),
                                     key=tid.encode(), headers=headers)
    finally:
        await producer.stop()
