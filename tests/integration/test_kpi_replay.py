"""The KPI projection against the real broker and store: the events of a simulated month,
consumed by metrics' KPI consumer loop, give exactly the engine's figures for those lifecycles,
and a replay from offset 0 (over the stored facts, or into an empty store) rebuilds exactly the
same documents."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline import kafka, mongo
from hotline.kafka import ConsumerLoop, ConsumerSpec
from hotline.settings import Settings
from services.metrics.handlers import KpiProjection
from services.metrics.kpi import KpiPolicy, Period, compute
from services.metrics.simulate import events, lifecycles
from services.metrics.store import KpiStore
from tests.support import eventually, group_lag, rewind_group

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
MONTH = Period.parse("2026-11", TZ)
AS_OF = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)


async def consume_all(settings: Settings, store: KpiStore, group: str, topics: list[str], producer: Any) -> None:
    loop = ConsumerLoop(ConsumerSpec(topics, group, KpiProjection(store)), settings, producer, "metrics")
    task = asyncio.create_task(loop.run())
    try:
        await eventually(lambda: group_lag(settings, group, topics), lambda lag: lag == 0, timeout=120, every=0.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_replay_from_offset_zero_rebuilds_exactly_the_same_figures(settings: Settings,
                                                                           topics: list[str]) -> None:
    # Topics of its own: the session's shared topics also carry the cases other tests open on the
    # real clock, which the projection would rightly count.
    from hotline_dev import infra

    own = settings.topics.model_copy(update={"prefix": f"{settings.topics.prefix}kpi{uuid.uuid4().hex[:6]}."})
    facts = list(lifecycles(MONTH, per_day=8, seed=21, as_of=AS_OF))
    stream = events(facts, own.name)
    names = sorted({e.topic for e in stream})
    infra.ensure_topics(settings, names)
    client = mongo.client(settings)
    producer = kafka.producer(settings)
    await producer.start()
    db = client[f"{settings.mongo.database_prefix}_kpi_{uuid.uuid4().hex[:6]}"]
    store, group = KpiStore(db), f"{settings.topics.prefix}kpi-replay-{uuid.uuid4().hex[:6]}"
    try:
        await kafka.publish(producer, stream, "test")
        await consume_all(settings, store, group, names, producer)
        projected = await store.facts(POLICY)
        assert sorted(projected, key=lambda f: f.key) == sorted(facts, key=lambda f: f.key)
        for dims in [(), ("unit",), ("unit_type", "week"), ("category", "lane")]:
            got = compute(projected, POLICY, TZ, MONTH.start, MONTH.end, dims, as_of=AS_OF)
            want = compute(facts, POLICY, TZ, MONTH.start, MONTH.end, dims, as_of=AS_OF)
            assert (got.total, got.groups) == (want.total, want.groups)
        first = await store.documents()

        await rewind_group(settings, group, names)  # replay over the stored facts
        await consume_all(settings, store, group, names, producer)
        assert await store.documents() == first

        for collection in KpiStore.COLLECTIONS.values():  # rebuild from nothing
            await db[collection].drop()
        await rewind_group(settings, group, names)
        await consume_all(settings, store, group, names, producer)
        assert await store.documents() == first
    finally:
        await client.drop_database(db.name)
        await producer.stop()
        await client.close()  # the session's namespace drop deletes the topics (they share its prefix)
