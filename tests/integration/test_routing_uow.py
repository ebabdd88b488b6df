"""Routing's consumer on the store (services/routing/handlers.py TicketRouting.apply through the
message bus and the Mongo unit of work): a batch of tickets is one transaction of four round
trips (the answers, the assignments; one bulk write; the commit), a replay two."""

from __future__ import annotations

from typing import Any, cast

import pytest

from hotline import audit, mongo
from hotline.bus import MessageBus
from hotline.clock import ManualClock
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.settings import Settings
from hotline.uow import MongoUnitOfWork
from services.routing import commands as rc
from services.routing import routed as rr
from services.routing.handlers import TicketRouting, queue_entry_of
from services.routing.store import AssignmentStore, DeskStore
from tests.integration.test_commands import Sent
from tests.integration.test_kit import kit  # noqa: F401 (fixture)
from tests.unit.test_routing_desk import NOW, ticket
from tests.unit.test_routing_handlers_inmemory import ROUTER
from tests.unit.test_routing_route_inmemory import MANUAL, items

pytestmark = pytest.mark.integration


async def test_a_batch_of_tickets_is_one_transaction_of_three_round_trips(settings: Settings,
                                                                         kit: dict) -> None:  # noqa: F811
    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    try:
        db = client[kit["db"].name]
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
        clock = ManualClock(NOW)
        bus = MessageBus(MongoUnitOfWork(client, db, Outbox(db, kit["producer"], "routing"), "routing", clock))
        live = rc.LiveRouter(ROUTER)
        desk = DeskStore(db, cast(Any, None))
        consumer = TicketRouting(live, AssignmentStore(db), kit["out"], None, desk, None, bus)
        rr.register(bus, rr.RoutingHandlers(rr.RoutedTickets(db), lambda: live.router, clock, kit["out"],
                                            lambda t, p, now: queue_entry_of(live.router, t, p, now),
                                            consumer.counted))
        await consumer.apply(items(ticket(*MANUAL, tid="W0")))  # connects

        batch = [ticket(*MANUAL, tid=f"M{i}") if i % 2 else ticket("噪音扰民", "夜间施工噪音", "幸福路1号", tid=f"R{i}")
                 for i in range(20)]
        sent.names.clear()
        assert await consumer.apply(items(*batch)) == []
        assert sent.names == ["find", "bulkWrite", "commitTransaction"]  # the assignments: no answers
        assert await db["assignments"].count_documents({}) == 21 and await db["desk"].count_documents({}) == 21
        assert {q.ticket_id for q in await desk.queue(50)} == {"W0", *(f"M{i}" for i in range(1, 20, 2))}
        assert desk.waiting.figures()[0] == 11  # the queue gauges' ledger, noted after the commit
        outbox = Outbox(db, kit["producer"], "routing")
        assert [e["key"] for e in await outbox.pending()].count("R4") == 1
        assert await db["outbox"].count_documents({}) == 2  # W0's event, and the batch's 20 in ONE document
        assert await db["commands"].count_documents({}) == 0  # RouteTicket (by_state) stores no answer
        assert [e["action"] for e in await audit.query(db, "M7", "", 10)] == ["assign"]

        sent.names.clear()  # the same records again (a replay): the assignments are stored, nothing written
        await consumer.apply(items(*batch))
        assert sent.names == ["find", "commitTransaction"]
        assert len(await outbox.pending()) == 21
    finally:
        await client.close()
