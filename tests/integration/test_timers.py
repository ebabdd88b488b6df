"""Durable timers (hotline/timers.py) against the real store: scheduled with the caller's
state, fired once per stage even with two replicas scanning, caught up after downtime."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession

from hotline import kafka, mongo
from hotline.clock import ManualClock
from hotline.envelope import Event
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.settings import Settings
from hotline.timers import INDEXES, Fired, Stage, Timer, Timers, indexes
from hotline.v1 import events_pb2

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


class Alarm:
    """on_fire: one event per fired stage with a fresh id, so a stage fired twice shows twice."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first

    async def __call__(self, fired: Sequence[Fired], session: AsyncClientSession) -> list[Event]:
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("handler failed")
        return [Event("t", f.timer.subject, events_pb2.Unit(unit_id=f.timer.key, name=f.stage.value),
                      uuid.uuid4().hex) for f in fired]


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    client = mongo.client(settings)
    db = client[f"{settings.mongo.database_prefix}_timers_{uuid.uuid4().hex[:6]}"]
    await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **INDEXES})
    producer = kafka.producer(settings)  # staging only: never started
    outbox = Outbox(db, producer, "test")
    yield {"client": client, "db": db, "outbox": outbox}
    await producer.stop()
    await client.drop_database(db.name)
    await client.close()


def timer(key: str, due: timedelta, warn: timedelta | None = None) -> Timer:
    subject, kind = key.split("/")
    return Timer(subject, kind, T0 + due, T0 + warn if warn is not None else None, {"dispatch_round": 1})


async def staged(db: Any) -> list[tuple[str, str]]:
    docs = await db["outbox"].find({}).sort("_id", 1).to_list()
    return [(u.unit_id, u.name) for u in (events_pb2.Unit.FromString(d["value"]) for d in docs)]


async def test_timers_change_with_the_callers_transaction(store: dict[str, Any]) -> None:
    timers = Timers(store["db"], store["outbox"], ManualClock(T0), Alarm())

    async def write_then_fail(session: AsyncClientSession) -> None:
        await timers.schedule([timer("A/reply", timedelta(hours=5))], session)
        raise RuntimeError("the state change failed")

    async with store["client"].start_session() as session:
        with pytest.raises(RuntimeError):
            await session.with_transaction(write_then_fail)
    assert await timers.get("A", "reply") is None  # rolled back with the state it guards

    async def write(session: AsyncClientSession) -> None:
        await timers.schedule([timer("A/reply", timedelta(hours=5), timedelta(hours=4))], session)

    async with store["client"].start_session() as session:
        await session.with_transaction(write)
    pending = await timers.get("A", "reply")
    assert pending is not None and pending[1] == Stage.DUE_SOON and pending[0].due_at == T0 + timedelta(hours=5)
    await timers.schedule([timer("A/reply", timedelta(hours=9), timedelta(hours=8))])  # moved (extension)
    moved = await timers.get("A", "reply")
    assert moved is not None and moved[0].due_at == T0 + timedelta(hours=9)
    await timers.schedule([timer("A/sign_off", timedelta(hours=1))])  # another clock of the same subject
    assert await timers.cancel("A", ["reply", "contact"]) == 1
    assert await timers.get("A", "reply") is None
    still = await timers.get("A", "sign_off")
    assert still is not None and still[1] == Stage.DUE
    assert await timers.cancel("A", ["sign_off"]) == 1
    assert await store["db"]["timers"].count_documents({}) == 0  # a subject with no clocks leaves nothing


async def test_each_stage_fires_once_in_order_and_downtime_is_caught_up(store: dict[str, Any]) -> None:
    clock = ManualClock(T0)
    timers = Timers(store["db"], store["outbox"], clock, Alarm())
    await timers.schedule([timer("A/reply", timedelta(hours=10), timedelta(hours=8)),
                           timer("B/reply", timedelta(hours=2)),  # no warning
                           timer("C/reply", timedelta(hours=30), timedelta(hours=24))])
    assert await timers.fire_due() == 0
    clock.advance(timedelta(hours=8))
    assert await timers.fire_due() == 2  # B due, A due soon
    assert await timers.fire_due() == 0
    assert await staged(store["db"]) == [("B/reply", "due"), ("A/reply", "due_soon")]
    clock.advance(timedelta(days=3))  # "downtime": A's due and both of C's stages passed
    assert await timers.fire_due() == 2
    assert await staged(store["db"]) == [("B/reply", "due"), ("A/reply", "due_soon"), ("A/reply", "due"),
                                         ("C/reply", "due_soon"), ("C/reply", "due")]
    assert await store["db"]["timers"].count_documents({}) == 0


async def test_clocks_embedded_in_the_aggregate_are_written_with_it(store: dict[str, Any]) -> None:
    clock = ManualClock(T0)
    timers = Timers(store["db"], store["outbox"], clock, Alarm(), collection="cases", embedded=True)
    await mongo.ensure_indexes(store["db"], indexes("cases"))
    cases = store["db"]["cases"]
    await cases.insert_one({"_id": "A", "state": "open",
                            **timers.fields([timer("A/sign_off", timedelta(hours=2), timedelta(hours=1)),
                                             timer("A/reply", timedelta(days=5))])})
    await cases.insert_one({"_id": "B", "state": "open"})  # an aggregate without clocks is never scanned
    with pytest.raises(LookupError):
        await timers.schedule([timer("C/reply", timedelta(hours=1))])  # no aggregate C to hold it
    clock.advance(timedelta(hours=3))
    assert await timers.fire_due() == 1
    assert await staged(store["db"]) == [("A/sign_off", "due_soon"), ("A/sign_off", "due")]
    reply = await timers.get("A", "reply")
    assert reply is not None and reply[1] == Stage.DUE
    assert await timers.cancel("A", ["reply"]) == 1
    assert await cases.find_one({"_id": "A"}) == {"_id": "A", "state": "open"}  # the aggregate stays
    await timers.schedule([timer("B/contact", timedelta(hours=4))])
    clock.advance(timedelta(hours=2))
    assert await timers.fire_due() == 1
    assert (await staged(store["db"]))[-1] == ("B/contact", "due")


async def test_a_scan_claims_the_oldest_up_to_its_limit(store: dict[str, Any]) -> None:
    clock = ManualClock(T0)
    timers = Timers(store["db"], store["outbox"], clock, Alarm(), batch=3)
    await timers.schedule([timer(f"T{i:02d}/reply", timedelta(minutes=10 + i)) for i in range(7)])
    clock.advance(timedelta(hours=1))
    assert [await timers.fire_due() for _ in range(4)] == [3, 3, 1, 0]
    assert [k for k, _ in await staged(store["db"])] == [f"T{i:02d}/reply" for i in range(7)]


async def test_a_failing_handler_fires_nothing_and_the_timer_stays_due(store: dict[str, Any]) -> None:
    clock = ManualClock(T0)
    timers = Timers(store["db"], store["outbox"], clock, Alarm(fail_first=1))
    await timers.schedule([timer("A/reply", timedelta(minutes=5))])
    clock.advance(timedelta(hours=1))
    with pytest.raises(RuntimeError):
        await timers.fire_due()
    assert await staged(store["db"]) == []
    assert await timers.fire_due() == 1
    assert await staged(store["db"]) == [("A/reply", "due")]


class SlowAlarm(Alarm):
    """Holds its transaction open for a while, so another replica scans meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = asyncio.Event()

    async def __call__(self, fired: Sequence[Fired], session: AsyncClientSession) -> list[Event]:
        self.inside.set()
        await asyncio.sleep(0.5)
        return await super().__call__(fired, session)


async def test_two_replicas_scanning_together_fire_every_stage_exactly_once(store: dict[str, Any],
                                                                            settings: Settings) -> None:
    clock = ManualClock(T0)
    other_client = mongo.client(settings)  # a second replica: its own connection pool
    other_db = other_client[store["db"].name]
    try:
        slow = SlowAlarm()
        first = Timers(store["db"], store["outbox"], clock, slow, batch=25)
        second = Timers(other_db, Outbox(other_db, store["outbox"].kafka, "test"), clock, Alarm(), batch=25)
        await first.schedule([timer(f"T{i:03d}/reply", timedelta(minutes=i % 50 + 1), timedelta(seconds=30))
                              for i in range(300)])
        clock.advance(timedelta(hours=2))

        # 1. the second replica scans while the first holds its claim uncommitted: it must not take
        # those timers (its claim conflicts and is retried after the first commits)
        holding = asyncio.create_task(first.fire_due())
        await slow.inside.wait()
        assert await second.fire_due() == 25
        assert await holding == 25
        assert len(set(await staged(store["db"]))) == len(await staged(store["db"])) == 100

        # 2. both drain the rest at full speed
        first.on_fire = Alarm()

        async def drain(t: Timers) -> int:
            total = 0
            while await t.collection.count_documents({}):
                total += await t.fire_due()
                await asyncio.sleep(0)
            return total

        claimed = await asyncio.gather(drain(first), drain(second))
    finally:
        await other_client.close()
    fired = Counter(await staged(store["db"]))
    assert len(fired) == 600 and set(fired.values()) == {1}, "every stage of every timer exactly once"
    assert sum(claimed) == 250
