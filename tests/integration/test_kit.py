"""The shared kit against the real broker and store: consumer loop and outbox."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from hotline import kafka, mongo
from hotline import observability as obs
from hotline.envelope import Event, PermanentError, Record, Skip
from hotline.kafka import ConsumerLoop, ConsumerSpec
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.settings import Settings
from hotline.v1 import events_pb2
from tests.support import eventually, group_lag, publish_raw, read_topic

pytestmark = pytest.mark.integration


class Recorder:
    """Stores each record's value once; fails as told, to exercise the loop's error paths."""

    def __init__(self, collection: Any, out_topic: str, transient_failures: int = 0, poison: bytes = b"") -> None:
        self.collection = collection
        self.out_topic = out_topic
        self.transient_failures = transient_failures
        self.poison = poison
        self.calls = 0

    def decode(self, record: Record) -> str:
        if record.value == b"undecodable":
            raise PermanentError("schema", "cannot decode")
        if record.value == b"newer-event-type":
            raise Skip("hotline.v1.SomethingNewer")
        if record.value == b"overflow":  # a bug met on one record, as metrics met year 9999 (issue 15)
            raise OverflowError("date value out of range")
        return record.value.decode()

    async def apply(self, items: list[tuple[Record, str]]) -> list[Event]:
        self.calls += 1
        if self.transient_failures:
            self.transient_failures -= 1
            raise AutoReconnect("store went away")
        if any(v.encode() == self.poison for _, v in items):
            raise ValueError("bug triggered by one record")
        await mongo.insert_missing(self.collection, [{"_id": v} for _, v in items])
        return [Event(self.out_topic, v, events_pb2.Unit(unit_id=v), f"{v}/echo") for _, v in items]


@pytest.fixture
async def kit(settings: Settings, topics: list[str]) -> AsyncIterator[dict[str, Any]]:
    client = mongo.client(settings)
    producer = kafka.producer(settings)
    await producer.start()
    name = uuid.uuid4().hex[:6]
    from hotline_dev import infra

    source, out = f"{settings.topics.prefix}kit-{name}-in", f"{settings.topics.prefix}kit-{name}-out"
    infra.ensure_topics(settings, [source, out])
    db = client[f"{settings.mongo.database_prefix}_kit_{name}"]
    yield {"client": client, "db": db, "producer": producer, "source": source, "out": out, "group": f"kit-{name}"}
    await producer.stop()
    await client.close()


async def run_loop(settings: Settings, kit: dict[str, Any], handler: Recorder, expect: int) -> None:
    loop = ConsumerLoop(ConsumerSpec([kit["source"]], kit["group"], handler), settings, kit["producer"], "kit")
    task = asyncio.create_task(loop.run())
    try:
        await eventually(lambda: kit["db"]["seen"].count_documents({}), lambda n: n >= expect, timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_transient_failures_are_retried_and_poison_is_isolated(settings: Settings, kit: dict) -> None:
    values = [f"v{i}".encode() for i in range(10)]
    await publish_raw(settings, kit["source"], [(b"k", v) for v in [*values[:5], b"undecodable", b"poison",
                                                                     b"newer-event-type", *values[5:]]])
    skipped = obs.SKIPPED.labels("kit", kit["source"], "other")
    skipped_before = skipped._value.get()
    handler = Recorder(kit["db"]["seen"], kit["out"], transient_failures=2, poison=b"poison")
    await run_loop(settings, kit, handler, expect=10)

    stored = sorted(d["_id"] for d in await kit["db"]["seen"].find({}).to_list())
    assert stored == sorted(v.decode() for v in values)
    echoed = await read_topic(settings, kit["out"], expect=10)
    assert sorted(m.key.decode() for m in echoed) == stored
    assert all(dict(m.headers)["event_type"] == b"hotline.v1.Unit" for m in echoed)
    dead = await read_topic(settings, settings.topics.name("dead_letters"), expect=None, timeout=3)
    ours = {m.value: dict(m.headers) for m in dead if dict(m.headers)[b"dlq_original_topic".decode()] ==
            kit["source"].encode()}
    assert set(ours) == {b"undecodable", b"poison"}
    assert ours[b"undecodable"]["dlq_reason"] == b"schema"
    assert ours[b"poison"]["dlq_reason"] == b"handler_error"
    assert b"bug triggered" in ours[b"poison"]["dlq_detail"]
    assert skipped._value.get() == skipped_before + 1  # an unknown event type is counted, not dead-lettered


async def test_any_decode_failure_is_dead_lettered_and_the_loop_goes_on(settings: Settings, kit: dict) -> None:
    """An exception in decode that is not an outage ends nothing: the record is dead-lettered
    (decode_error, with the exception), its offset committed, and the records after it handled."""
    await publish_raw(settings, kit["source"], [(b"k", v) for v in [b"d0", b"overflow", b"\xff\xfe", b"d1"]])
    handler = Recorder(kit["db"]["seen"], kit["out"])
    loop = ConsumerLoop(ConsumerSpec([kit["source"]], kit["group"], handler), settings, kit["producer"], "kit")
    task = asyncio.create_task(loop.run())
    try:
        await eventually(lambda: kit["db"]["seen"].count_documents({}), lambda n: n >= 2, timeout=30)
        dead = await eventually(lambda: ours_dead(settings, kit["source"]), lambda d: len(d) >= 2, timeout=30)
        assert not task.done() and loop.running, "the loop is still consuming"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(d["_id"] for d in await kit["db"]["seen"].find({}).to_list()) == ["d0", "d1"]
    assert dead[b"overflow"]["dlq_reason"] == b"decode_error"
    assert dead[b"overflow"]["dlq_detail"] == b"OverflowError: date value out of range"
    assert dead[b"\xff\xfe"]["dlq_reason"] == b"decode_error"
    assert b"UnicodeDecodeError" in dead[b"\xff\xfe"]["dlq_detail"]
    # offsets are committed: the group has nothing left, so a restart does not meet the records again
    assert await group_lag(settings, kit["group"], [kit["source"]]) == 0


def with_commit_interval(settings: Settings, ms: int) -> Settings:
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"commit_interval_ms": ms})})


async def test_offsets_are_committed_at_most_every_interval_and_on_the_way_out(settings: Settings, kit: dict) -> None:
    """The offsets of batches handled within ``commit_interval_ms`` of the last commit wait for the
    next one (issue 21: a commit per batch per group was much of the broker's work at tens of tickets
    a second); a consumer that stops commits them, so its restart meets nothing it handled."""
    seen = kit["db"]["seen"]
    loop = ConsumerLoop(ConsumerSpec([kit["source"]], kit["group"], Recorder(seen, kit["out"])),
                        with_commit_interval(settings, 600_000), kit["producer"], "kit")
    task = asyncio.create_task(loop.run())
    try:
        await publish_raw(settings, kit["source"], [(b"k", f"c{i}".encode()) for i in range(3)])
        await eventually(lambda: seen.count_documents({}), lambda n: n >= 3, timeout=30)  # committed: the first
        await eventually(lambda: group_lag(settings, kit["group"], [kit["source"]]), lambda n: n == 0, timeout=10)
        await publish_raw(settings, kit["source"], [(b"k", f"c{i}".encode()) for i in range(3, 6)])
        await eventually(lambda: seen.count_documents({}), lambda n: n >= 6, timeout=30)
        await asyncio.sleep(1)
        assert await group_lag(settings, kit["group"], [kit["source"]]) == 3  # handled, not committed yet
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await group_lag(settings, kit["group"], [kit["source"]]) == 0  # committed on the way out


async def test_an_idle_consumer_commits_once_the_interval_has_passed(settings: Settings, kit: dict) -> None:
    seen = kit["db"]["seen"]
    loop = ConsumerLoop(ConsumerSpec([kit["source"]], kit["group"], Recorder(seen, kit["out"])),
                        with_commit_interval(settings, 5_000), kit["producer"], "kit")
    task = asyncio.create_task(loop.run())
    try:
        await publish_raw(settings, kit["source"], [(b"k", b"i0")])
        await eventually(lambda: seen.count_documents({}), lambda n: n >= 1, timeout=30)
        await eventually(lambda: group_lag(settings, kit["group"], [kit["source"]]), lambda n: n == 0, timeout=10)
        await publish_raw(settings, kit["source"], [(b"k", b"i1")])
        await eventually(lambda: seen.count_documents({}), lambda n: n >= 2, timeout=30)
        assert await group_lag(settings, kit["group"], [kit["source"]]) == 1  # within the interval
        # no more records: the idle loop commits once the interval has passed, while still running
        await eventually(lambda: group_lag(settings, kit["group"], [kit["source"]]), lambda n: n == 0, timeout=20)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def ours_dead(settings: Settings, source: str) -> dict[bytes, dict[str, bytes]]:
    dead = await read_topic(settings, settings.topics.name("dead_letters"), expect=None, timeout=2)
    return {m.value: dict(m.headers) for m in dead if dict(m.headers)["dlq_original_topic"] == source.encode()}


async def test_offsets_are_committed_only_after_the_work(settings: Settings, kit: dict) -> None:
    await publish_raw(settings, kit["source"], [(b"k", f"w{i}".encode()) for i in range(5)])
    await run_loop(settings, kit, Recorder(kit["db"]["seen"], kit["out"]), expect=5)
    # a second consumer in the same group finds nothing left to do
    again = Recorder(kit["db"]["seen"], kit["out"])
    loop = ConsumerLoop(ConsumerSpec([kit["source"]], kit["group"], again), settings, kit["producer"], "kit")
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert again.calls == 0


async def test_outbox_publishes_staged_events_in_order_once(settings: Settings, kit: dict) -> None:
    outbox = Outbox(kit["db"], kit["producer"], "kit")
    await mongo.ensure_indexes(kit["db"], OUTBOX_INDEXES)  # as the runtime does at start-up
    events = [Event(kit["out"], "same-key", events_pb2.Unit(unit_id=str(i)), f"e{i}") for i in range(20)]
    async with kit["client"].start_session() as session:
        async def write(s: Any) -> None:
            await outbox.stage(events[:10], session=s)

        await session.with_transaction(write)
    await outbox.stage(events[10:])
    await outbox.stage(events[:3])  # staged twice: kept once
    assert await outbox.relay_once() == 20
    assert await outbox.relay_once() == 0
    published = await read_topic(settings, kit["out"], expect=20)
    assert [events_pb2.Unit.FromString(m.value).unit_id for m in published] == [str(i) for i in range(20)]


async def test_outbox_relay_wakes_for_a_commit_made_during_an_empty_read(settings: Settings, kit: dict) -> None:
    """A commit that lands while the relay's read finds nothing is published at once, not after a
    poll: the relay clears its wake-up before it reads (issue 21: this lost wake-up was the tail of
    publish -> case opened)."""
    await mongo.ensure_indexes(kit["db"], OUTBOX_INDEXES)
    late = Event(kit["out"], "late", events_pb2.Unit(unit_id="late"), "late-1")

    class CommitDuringTheRead(Outbox):
        injected = False

        async def relay_once(self, limit: int = 500) -> int:
            published = await super().relay_once(limit)
            if published == 0 and not self.injected:  # the read found nothing; now a transaction commits
                self.injected = True
                async with kit["client"].start_session() as session:
                    async def write(s: Any) -> None:
                        await self.stage([late], session=s)

                    await session.with_transaction(write)
                self.staged()  # as the unit of work does after its commit
            return published

    outbox = CommitDuringTheRead(kit["db"], kit["producer"], "kit")
    relay = asyncio.create_task(outbox.relay_forever(poll_seconds=60))
    try:
        started = time.monotonic()
        published = await read_topic(settings, kit["out"], expect=1, timeout=20)
        assert [m.key for m in published] == [b"late"]
        assert time.monotonic() - started < 20  # a poll of 60 s would not have come yet
        assert outbox.injected
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
