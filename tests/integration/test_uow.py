"""The Mongo unit of work (hotline/uow.py) behind the message bus (hotline/bus.py): a consumer's
batch in one transaction, in a fixed number of store round trips whatever its size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from hotline import audit, mongo
from hotline.bus import MessageBus, Request
from hotline.clock import SystemClock
from hotline.commands import Command, Decision, DomainError, Illegal
from hotline.envelope import Event
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.settings import Settings
from hotline.uow import MongoUnitOfWork, Work
from hotline.v1 import events_pb2
from tests.integration.test_commands import UNIT, CountingUnits, Sent
from tests.integration.test_kit import kit  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Rename(Request[events_pb2.Unit], message=events_pb2.Unit):
    """Name a unit (the test's command)."""


def handler(db: Any, topic: str) -> Any:
    async def rename(command: Rename) -> Work[Any]:
        wanted = command.body

        def decide(unit: events_pb2.Unit | None) -> Decision[events_pb2.Unit]:
            if unit is not None and unit.name == wanted.name:
                raise Illegal(f"already named {wanted.name}")
            return Decision(wanted, events=[wanted])
        return Work(Command(Rename.name, wanted.unit_id, command.actor, command.idempotency_key), CountingUnits(db),
                    decide, topic)
    return rename


async def test_a_batch_is_one_transaction_of_three_or_four_round_trips(settings: Settings, kit: dict) -> None:  # noqa: F811
    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    try:
        db = client[kit["db"].name]
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
        bus = MessageBus(MongoUnitOfWork(client, db, Outbox(db, kit["producer"], "kit"), "kit", SystemClock()))
        bus.register(Rename, handler(db, kit["out"]))
        with pytest.raises(ValueError):
            bus.register(Rename, handler(db, kit["out"]))
        await bus.handle(Rename(events_pb2.Unit(unit_id="B0", name="一"), UNIT, "warm-up"))  # connects

        sent.names.clear()  # one command: as CommandBus.run (state, bulk write, commit)
        await bus.handle(Rename(events_pb2.Unit(unit_id="B0", name="二"), UNIT, "one"))
        assert sent.names == ["find", "bulkWrite", "commitTransaction"]

        batch = [Rename(events_pb2.Unit(unit_id=f"B{i}", name=f"名{i}"), UNIT, f"batch-{i}") for i in range(1, 21)]
        batch.append(Rename(events_pb2.Unit(unit_id="B0", name="二"), UNIT, "refused"))  # already so named
        sent.names.clear()
        results = await bus.handle_many(batch)
        # 21 commands, 4 round trips: the states, the refused one's stored answer (none), the write, the commit
        assert sent.names == ["find", "find", "bulkWrite", "commitTransaction"]
        assert [r.name for r in results[:20]] == [f"名{i}" for i in range(1, 21)]
        assert isinstance(results[20], DomainError) and results[20].code == "failed_precondition"
        assert await db["units_counted"].count_documents({}) == 21
        assert len(await audit.query(db, "B7", "", 10)) == 1

        sent.names.clear()  # delivered again: refused by the states, so the first answers from one read
        again = await bus.handle_many(batch[:20])
        assert again == results[:20]
        assert sent.names == ["find", "find", "commitTransaction"]
        assert len(await audit.query(db, "B7", "", 10)) == 1

        sent.names.clear()  # the same target twice: the second sees the first (two transactions)
        twice = await bus.handle_many([Rename(events_pb2.Unit(unit_id="B1", name="甲"), UNIT, "t-1"),
                                       Rename(events_pb2.Unit(unit_id="B1", name="甲"), UNIT, "t-2")])
        assert twice[0].name == "甲" and isinstance(twice[1], DomainError)
        assert sent.names.count("commitTransaction") == 2
    finally:
        await client.close()


async def test_a_batch_of_case_openings_is_three_round_trips(settings: Settings, kit: dict) -> None:  # noqa: F811
    """Supervision's consumer: 20 assignments (round 1) open 20 cases, each with its clocks and
    its audit entry, the batch's CaseOpened events in ONE outbox document, in one transaction of
    three round trips: OpenCase is idempotent on the case (``by_state``), so no answer is read or
    stored (before: an insert of the cases and one of the audit entries, then the events to
    Kafka; and every re-dispatch four round trips of its own)."""
    from hotline.timers import Timers
    from services.supervision.cases import commands as cc
    from services.supervision.cases import lifecycle as lc
    from services.supervision.cases.handlers import CaseInbox
    from services.supervision.cases.store import CaseClocks, CaseStore
    from tests.unit.test_handlers_inmemory import Policies
    from tests.unit.test_lifecycle import CALENDAR, LIMITS, TZ, assigned

    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    try:
        db = client[kit["db"].name]
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
        outbox = Outbox(db, kit["producer"], "kit")
        clock = SystemClock()
        timers = Timers(db, outbox, clock, None, collection="cases", embedded=True)  # type: ignore[arg-type]
        base = lc.Policy(deadlines=lc.PeriodDeadlines(CALENDAR), tz=TZ, open_case=lambda a, now: events_pb2.Case(),
                         limits=lc.Limits.of(LIMITS))
        policies = cc.CasePolicies(base, CaseStore(db), CaseClocks(Policies(), CALENDAR, timers))  # type: ignore[arg-type]
        bus = MessageBus(MongoUnitOfWork(client, db, outbox, "supervision", clock))
        cc.register(bus, cc.CaseHandlers(CaseStore(db), policies, clock, kit["out"]))
        batch = []
        for i in range(20):
            a = assigned()
            a.assignment.ticket_id = f"OC{i}"
            batch.append(CaseInbox.command(a))
        await bus.handle(CaseInbox.command(assigned()))  # connects (C1)
        sent.names.clear()
        results = await bus.handle_many(batch)
        assert sent.names == ["find", "bulkWrite", "commitTransaction"]
        assert all(isinstance(r, events_pb2.Case) for r in results)
        stored = await db["cases"].find_one({"_id": "OC7"})
        assert stored is not None and stored["next_deadline"] is not None and stored.get("timers")
        assert [e["action"] for e in await audit.query(db, "OC7", "", 10)] == ["open_case"]
        assert [e["key"] for e in await outbox.pending()].count("OC7") == 1
        assert await db["outbox"].count_documents({}) == 2  # C1's event, and the batch's 20 in one document
        assert await db["commands"].count_documents({}) == 0  # no stored answers

        cases = [await CaseStore(db).get(f"OC{i}") for i in range(20)]
        sent.names.clear()  # the batch delivered again: the cases say the rounds are open; nothing written
        assert await bus.handle_many(batch) == cases
        assert sent.names == ["find", "commitTransaction"] and len(await outbox.pending()) == 21

        followed: list[str] = []  # the relay: the events one by one, in order, then ONE delete per document

        async def follower(docs: Any) -> None:
            followed.extend(d["key"] for d in docs)
        outbox.follow(follower)
        staged = [e["event_id"] for e in await outbox.pending()]
        assert len(set(staged)) == 21 and await outbox.relay_once() == 21
        assert followed == ["C1", *(f"OC{i}" for i in range(20))] and await db["outbox"].count_documents({}) == 0
    finally:
        await client.close()


@asynccontextmanager
async def counted_bus(settings: Settings, kit: dict) -> AsyncIterator[  # noqa: F811
        tuple[Sent, Any, Outbox, MessageBus]]:
    """The renaming bus over the kit's database, on a client whose commands are counted (``Sent``),
    with its outbox; the client is closed on the way out."""
    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    try:
        db = client[kit["db"].name]
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
        outbox = Outbox(db, kit["producer"], "kit")
        bus = MessageBus(MongoUnitOfWork(client, db, outbox, "kit", SystemClock()))
        bus.register(Rename, handler(db, kit["out"]))
        yield sent, db, outbox, bus
    finally:
        await client.close()


async def test_the_relay_publishes_what_the_commit_hands_over_without_reading_it(
        settings: Settings, kit: dict) -> None:  # noqa: F811
    """Once committed, a batch's outbox documents go to the running relay in memory: it publishes
    them in order and deletes them, one round trip, with no read of the outbox before (or after)
    it (issue 21: the outbox's finds were a third of a hop's store operations at 50 tickets/s)."""
    from tests.support import eventually, read_topic

    relay: asyncio.Task[None] | None = None
    async with counted_bus(settings, kit) as (sent, db, outbox, bus):
        try:
            await db["outbox"].insert_one({**outbox.documents(  # left by an earlier run: the first read finds it
                [Event(kit["out"], "L0", events_pb2.Unit(unit_id="L0", name="早"), "left-0")])[0]})
            relay = asyncio.create_task(outbox.relay_forever(poll_seconds=60))
            await eventually(lambda: kit["db"]["outbox"].count_documents({}), lambda n: n == 0, timeout=20)

            sent.names.clear()
            await bus.handle_many([Rename(events_pb2.Unit(unit_id=f"H{i}", name=f"名{i}"), UNIT, f"h-{i}")
                                   for i in range(5)])
            published = await read_topic(settings, kit["out"], expect=6, timeout=20)
            assert sorted(m.key for m in published) == [b"H0", b"H1", b"H2", b"H3", b"H4", b"L0"]  # (4 partitions)
            await eventually(lambda: kit["db"]["outbox"].count_documents({}), lambda n: n == 0, timeout=20)
            assert sent.names == ["find", "bulkWrite", "commitTransaction", "delete"]  # no find of the outbox
        finally:
            if relay is not None:
                relay.cancel()
                await asyncio.gather(relay, return_exceptions=True)


async def test_the_next_transaction_deletes_what_the_relay_published(settings: Settings, kit: dict) -> None:  # noqa: F811
    """What the relay published from a hand-over is deleted by the service's next transaction, in
    its one bulk write: no delete of the relay's own (issue 21: a delete per pass was a round trip
    per ticket in each of intake, routing and supervision at tens of tickets a second). A read of
    the outbox neither publishes what a transaction in flight deletes, nor, when that transaction
    did not commit, what the relay published before: it deletes it first."""
    from tests.support import eventually, read_topic

    relay: asyncio.Task[None] | None = None
    async with counted_bus(settings, kit) as (sent, db, outbox, bus):
        try:
            relay = asyncio.create_task(outbox.relay_forever(poll_seconds=60, erase_after=60))
            await asyncio.sleep(1)  # past its first read (of an empty outbox): from now on it only takes hand-overs
            await bus.handle_many([Rename(events_pb2.Unit(unit_id=f"A{i}", name="甲"), UNIT, f"a-{i}")
                                   for i in range(3)])
            await read_topic(settings, kit["out"], expect=3, timeout=20)
            await eventually(lambda: asyncio.sleep(0.05, outbox._published), lambda ids: len(ids) == 1, timeout=20)
            assert await db["outbox"].count_documents({}) == 1  # published, waiting for a transaction to delete it

            sent.names.clear()
            await bus.handle_many([Rename(events_pb2.Unit(unit_id=f"B{i}", name="乙"), UNIT, f"b-{i}")
                                   for i in range(3)])
            assert sent.names == ["find", "bulkWrite", "commitTransaction"]  # the delete rode in the bulk write
            published = await read_topic(settings, kit["out"], expect=6, timeout=20)
            assert sorted(m.key for m in published) == [b"A0", b"A1", b"A2", b"B0", b"B1", b"B2"]
            await eventually(lambda: asyncio.sleep(0.05, outbox._published), lambda ids: len(ids) == 1, timeout=20)
            assert await db["outbox"].count_documents({}) == 1  # only the second batch's document: the first is gone
            assert "delete" not in sent.names

            taken = outbox.take_published()  # a transaction in flight deletes it: a read skips it
            assert len(taken) == 1 and await outbox.relay_once() == 0
            outbox.erased(taken, committed=False)  # that transaction did not commit: the next read deletes it first
            assert await outbox.relay_once() == 0 and await db["outbox"].count_documents({}) == 0

            await bus.handle_many([Rename(events_pb2.Unit(unit_id="C0", name="丙"), UNIT, "c-0")])
            await eventually(lambda: asyncio.sleep(0.05, outbox._published), lambda ids: len(ids) == 1, timeout=20)
            relay.cancel()  # a relay that stops deletes what it published: not published again at the next start
            await asyncio.gather(relay, return_exceptions=True)
            relay = None
            assert await db["outbox"].count_documents({}) == 0
            assert len(await read_topic(settings, kit["out"], expect=None, timeout=1)) == 7  # nothing published twice
        finally:
            if relay is not None:
                relay.cancel()
                await asyncio.gather(relay, return_exceptions=True)


async def test_a_busy_relay_still_reads_what_another_process_left(settings: Settings, kit: dict) -> None:  # noqa: F811
    """Hand-overs that keep coming never let the relay's poll time out, yet a document written by a
    process without a relay (or another replica that died) is read and published within a poll."""
    from tests.support import read_topic

    db = kit["db"]
    await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
    outbox = Outbox(db, kit["producer"], "kit")
    bus = MessageBus(MongoUnitOfWork(kit["client"], db, outbox, "kit", SystemClock()))
    bus.register(Rename, handler(db, kit["out"]))
    relay = asyncio.create_task(outbox.relay_forever(poll_seconds=1))

    async def busy() -> None:
        for i in range(10_000):
            await bus.handle(Rename(events_pb2.Unit(unit_id=f"B{i % 50}", name=f"名{i}"), UNIT, f"busy-{i}"))
            await asyncio.sleep(0.1)

    load = asyncio.create_task(busy())
    try:
        await asyncio.sleep(1.5)  # the relay is past its first read, and busy
        foreign = Event(kit["out"], "F0", events_pb2.Unit(unit_id="F0", name="外"), "foreign-0")
        await db["outbox"].insert_one(outbox.documents([foreign])[0])
        published = await read_topic(settings, kit["out"], expect=None, timeout=5)
        assert b"F0" in [m.key for m in published]
    finally:
        for task in (load, relay):
            task.cancel()
        await asyncio.gather(load, relay, return_exceptions=True)
