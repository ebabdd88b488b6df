"""Intake's record of the units handling a ticket (services/intake/store.py ``ticket_units``): one small
document inserted per ticket and set of units (issue #21: the ``$addToSet`` on the ticket's own
document rewrote it whole), every dispatch round's units read back, a replay storing nothing,
units stored on the ticket by an earlier version still counted, no other ticket's units mixed in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hotline import mongo, pb
from hotline.envelope import Record
from hotline.v1 import events_pb2, ticket_pb2
from services.intake.handlers import HandlingUnits
from services.intake.store import TicketStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: object) -> AsyncIterator[AsyncDatabase[mongo.Doc]]:
    client = mongo.client(settings)  # type: ignore[arg-type]
    database = client[f"{settings.mongo.database_prefix}_units_{uuid.uuid4().hex[:6]}"]  # type: ignore[attr-defined]
    yield database
    await client.drop_database(database.name)
    await client.close()


def assigned(tid: str, primary: str, *assisting: str) -> tuple[Record, events_pb2.TicketAssigned]:
    return (Record("t.assignments", 0, 0, tid, b"", {}, 0), events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(ticket_id=tid, primary_unit=events_pb2.Unit(unit_id=primary),
                                         assisting_units=[events_pb2.Unit(unit_id=u) for u in assisting])))


async def test_units_of_every_round_are_inserted_once_and_read_back(db: AsyncDatabase[mongo.Doc]) -> None:
    store = TicketStore(db)
    await store.tickets.insert_many([  # as ReceiveTicket's repository stores them
        {"_id": t, **pb.to_doc(ticket_pb2.Ticket(ticket_id=t, title="x"))} for t in ("T1", "T10", "T2", "T3")])
    units = HandlingUnits(store)
    await units.apply([assigned("T1", "DP01", "DP02"), assigned("T10", "DP09"), assigned("T2", "DP03")])
    await units.apply([assigned("T1", "DP01", "DP02"), assigned("T1", "DP05")])  # a replay; a second round
    await db["tickets"].update_one({"_id": "T3"}, {"$set": {"handling_units": ["DP07"]}})  # an earlier version's
    await units.apply([assigned("T3", "DP08")])

    async def of(tid: str) -> set[str]:
        found = await store.get_with_units(tid)
        assert found is not None and found[0].ticket_id == tid
        return found[1]

    assert await of("T1") == {"DP01", "DP02", "DP05"}
    assert await of("T10") == {"DP09"} and await of("T2") == {"DP03"}
    assert await of("T3") == {"DP07", "DP08"}
    assert await store.get_with_units("T4") is None
    assert await db["ticket_units"].count_documents({}) == 5  # T1 twice (two rounds), T10, T2, T3
    assert "handling_units" not in (await db["tickets"].find_one({"_id": "T1"}) or {})
