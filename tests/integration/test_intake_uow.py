"""Intake's consumer on the store (services/intake/handlers.py TicketIntake.apply through the
message bus and the Mongo unit of work): a batch of tickets is one transaction of five round
trips (the answers, the tickets, the repeat index; one bulk write; the commit), a replay two."""

from __future__ import annotations

from typing import Any, cast

import pytest

from hotline import audit, mongo
from hotline.bus import MessageBus
from hotline.clock import SystemClock
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.settings import Settings
from hotline.uow import MongoUnitOfWork
from services.intake import commands as ic
from services.intake import core
from services.intake.handlers import TicketIntake
from services.intake.store import TicketStore
from tests.integration.test_commands import Sent
from tests.integration.test_kit import kit  # noqa: F401 (fixture)
from tests.unit.test_intake_handlers_inmemory import SECRET, items, ticket

pytestmark = pytest.mark.integration


async def test_a_batch_of_tickets_is_one_transaction_of_four_round_trips(settings: Settings,
                                                                         kit: dict) -> None:  # noqa: F811
    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    try:
        db = client[kit["db"].name]
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
        bus = MessageBus(MongoUnitOfWork(client, db, Outbox(db, kit["producer"], "intake"), "intake", SystemClock()))
        store = TicketStore(db)
        consumer = TicketIntake(store, "city", "deputy", kit["out"], SECRET, bus=bus)
        ic.register(bus, ic.IntakeHandlers(ic.TicketRepository(db), ic.StoredRepeats(db), kit["out"], SECRET,
                                           consumer.counted))
        await consumer.apply(items(ticket("W0", "13900000000")))  # connects; its key is known to the batch below

        batch = [ticket(f"T{i}", "13900000000" if i % 2 else f"1390000{i:04d}", f"路{i % 3}号") for i in range(20)]
        sent.names.clear()
        assert await consumer.apply(items(*batch)) == []
        assert sent.names == ["find", "find", "bulkWrite", "commitTransaction"]  # tickets, repeat keys: no answers
        t19 = await store.get("T19")
        assert t19 is not None and list(t19.repeat_of) == ["T17", "T15", "T13", "T11", "T9"]  # the phone first
        keys = {d["_id"]: d["ids"] for d in await db["repeat_keys"].find({}).to_list()}
        assert keys[core.repeat_keys(ticket("x", "13900000000"), SECRET)[0]] == ["T11", "T13", "T15", "T17", "T19"]
        assert keys["address:路1号"] == ["T7", "T10", "T13", "T16", "T19"]
        outbox = Outbox(db, kit["producer"], "intake")
        assert [e["key"] for e in await outbox.pending()].count("T7") == 1
        assert await db["outbox"].count_documents({}) == 2  # W0's event, and the batch's 20 in ONE document
        assert await db["commands"].count_documents({}) == 0  # ReceiveTicket (by_state) stores no answer
        assert [e["action"] for e in await audit.query(db, "T7", "", 10)] == ["receive"]

        sent.names.clear()  # the same records again (a replay): the tickets are stored, nothing written
        await consumer.apply(items(*[ticket(f"T{i}", "13900000000") for i in range(20)]))
        assert sent.names == ["find", "commitTransaction"]
        assert len(await outbox.pending()) == 21 and await db["tickets"].count_documents({}) == 21
        assert cast(Any, await store.get("T19")).repeat_of == t19.repeat_of
    finally:
        await client.close()
