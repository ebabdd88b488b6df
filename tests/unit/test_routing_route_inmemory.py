"""Routing's RouteTicket handler (services/routing/routed.py) and its consumer's batch
(handlers.py TicketRouting.apply, one ``bus.handle_many``) through the kit's message bus with the
in-memory unit of work (hotline/uow.py): no Kafka, no store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from hotline.bus import MessageBus
from hotline.clock import ManualClock
from hotline.envelope import Record
from hotline.uow import InMemoryUnitOfWork
from hotline.v1 import events_pb2, routing_pb2, ticket_pb2
from services.routing import commands as rc
from services.routing import routed as rr
from services.routing.desk import Desk
from services.routing.handlers import TicketRouting, queue_entry_of
from tests.unit.test_routing_desk import NOW, OFFICE, state, ticket
from tests.unit.test_routing_handlers_inmemory import ROUTER, Desks, Lists  # noqa: F401

TOPIC = "t.assignments"


class Ledger:
    """The desk store's queue ledger (DeskStore.waiting), as the consumer notes into it."""

    def __init__(self) -> None:
        self.noted: dict[str, Any] = {}

        class Waiting:
            @staticmethod
            def note(tid: str, at: Any) -> None:
                self.noted[tid] = at
        self.waiting = Waiting()


def env() -> tuple[MessageBus, InMemoryUnitOfWork, TicketRouting, Ledger]:
    clock = ManualClock(NOW)
    uow = InMemoryUnitOfWork("routing", clock)
    bus = MessageBus(uow)
    live = rc.LiveRouter(ROUTER)
    ledger = Ledger()
    consumer = TicketRouting(live, cast(Any, None), TOPIC, None, cast(Any, ledger), None, bus)
    rr.register(bus, rr.RoutingHandlers(Desks(), lambda: live.router, clock, TOPIC,
                                        lambda t, p, now: queue_entry_of(live.router, t, p, now), consumer.counted))
    rc.register(bus, rc.DeskHandlers(Desks(), cast(Any, None), live, clock, TOPIC,  # type: ignore[arg-type]
                                     lambda at, days: at))
    return bus, uow, consumer, ledger


MANUAL = ("咨询", "请问这个事情怎么办理")


def items(*tickets: ticket_pb2.Ticket) -> list[tuple[Record, ticket_pb2.Ticket]]:
    return [(Record("tickets", 0, n, t.ticket_id, b"", {}, -1), t) for n, t in enumerate(tickets)]


def assigned(uow: InMemoryUnitOfWork) -> list[events_pb2.TicketAssigned]:
    return cast(list[events_pb2.TicketAssigned], uow.published(events_pb2.TicketAssigned))


async def test_a_batch_is_one_transaction_of_desk_records_assignments_and_events() -> None:
    _, uow, consumer, ledger = env()
    tickets = [ticket(*MANUAL, tid="T1"), ticket("噪音扰民", "小区门口夜间施工噪音扰民", "幸福路1号", tid="T2")]
    assert await consumer.apply(items(*tickets)) == []
    assert uow.commits == 1
    assert not uow.stored  # RouteTicket is idempotent on the state (by_state): no stored answers
    expected = {t.ticket_id: state(ROUTER, t) for t in tickets}  # what the router decides for each
    for tid, want in expected.items():
        got = cast(Desk, uow.state("dispatch", tid))
        assert got.assigned.assignment.primary_unit.unit_id == want.assigned.assignment.primary_unit.unit_id
        assert got.assigned.assignment.method == want.assigned.assignment.method
        assert (got.queue is None) == (want.queue is None)
    assert uow.state("dispatch", "T1").queue is not None and list(ledger.noted) == ["T1"]  # 人工派单
    assert [(a.assignment.ticket_id, a.assignment.dispatch_round) for a in assigned(uow)] == [("T1", 1), ("T2", 1)]
    assert all(e.topic == TOPIC and e.key == cast(events_pb2.TicketAssigned, e.message).assignment.ticket_id
               for e in uow.events)
    assert [(a["action"], a["kind"], a["target_id"]) for a in uow.audit] == [
        ("assign", "dispatch", "T1"), ("assign", "dispatch", "T2")]
    assert uow.audit[0]["reason"] == "method manual"


async def test_a_replay_and_the_same_id_twice_change_and_emit_nothing() -> None:
    bus, uow, consumer, _ = env()
    await consumer.apply(items(ticket(*MANUAL, tid="T1"), ticket(*MANUAL, tid="T1")))
    before = (len(uow.events), len(uow.audit), uow.state("dispatch", "T1").assigned.SerializeToString())
    uow.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    await consumer.apply(items(ticket(*MANUAL, tid="T1")))
    assert (len(uow.events), len(uow.audit), uow.state("dispatch", "T1").assigned.SerializeToString()) == before
    again = await bus.handle(rr.route(ticket(*MANUAL, tid="T1")))
    assert isinstance(again, events_pb2.TicketAssigned) and again.assignment.ticket_id == "T1"  # the first answer


async def test_a_ticket_routed_before_answers_were_kept_is_left_as_it_is() -> None:
    bus, uow, _, _ = env()
    old = state(ROUTER, ticket(*MANUAL, tid="T1"))
    uow.states["dispatch", "T1"] = old
    await bus.handle(rr.route(ticket("噪音扰民", "别的内容", tid="T1")))
    assert uow.state("dispatch", "T1") is old or uow.state("dispatch", "T1").ticket.title == MANUAL[0]
    assert not uow.events and not uow.audit


async def test_a_routed_ticket_is_the_desk_record_the_office_dispatches() -> None:
    bus, uow, consumer, _ = env()
    await consumer.apply(items(ticket(*MANUAL, tid="T1")))
    request = routing_pb2.DispatchRequest(ticket_id="T1", primary_unit_id="DP03", category="城市管理", reason="人工")
    await bus.handle(rc.Dispatch(request, OFFICE, "d1"))
    after = cast(Desk, uow.state("dispatch", "T1"))
    assert after.queue is None and after.assigned.assignment.primary_unit.unit_id == "DP03"
    assert [a["action"] for a in uow.audit] == ["assign", "dispatch"]
