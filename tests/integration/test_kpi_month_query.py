"""The KPI gauges read one month's facts (KpiStore.facts_within, by the anchors' months) instead of
every fact ever stored: against the real store, for every month of half a year of simulated
lifecycles, the rows and the gauges' tables equal the engine's over the simulated facts (the
independent computation) and the full read's; facts stored before they carried their months are
found after the backfill."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hotline import mongo
from hotline.clock import ManualClock
from hotline.settings import Settings
from services.metrics.handlers import kpi_gauge_tables
from services.metrics.kpi import KpiPolicy, Period, within
from services.metrics.projection import updates
from services.metrics.simulate import events, lifecycles
from services.metrics.store import INDEXES, MONTHS, KpiStore
from services.metrics.views import Views

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
HALF = Period.parse("2026-H2", TZ)
AS_OF = datetime(2027, 1, 10, 12, 0, tzinfo=TZ)
MONTHS_SEEN = [Period.parse("2026-06", TZ).shifted(i) for i in range(9)]  # 2026-06 .. 2027-02


def key(f: object) -> str:
    return str(getattr(f, "key"))  # noqa: B009


async def test_a_months_rows_equal_the_full_computation_and_old_facts_are_backfilled(settings: Settings) -> None:
    facts = list(lifecycles(HALF, per_day=2, seed=7, as_of=AS_OF))
    client = mongo.client(settings)
    db = client[f"{settings.mongo.database_prefix}_kpim_{uuid.uuid4().hex[:6]}"]
    store = KpiStore(db, TZ)
    try:
        await mongo.ensure_indexes(db, INDEXES)  # as the service does at start: the month query uses them
        stream = [u for e in events(facts) for u in updates(e.message)]
        for start in range(0, len(stream), 700):
            await store.apply(stream[start:start + 700])
        full = await store.facts(POLICY)
        assert sorted(full, key=key) == sorted(facts, key=key)
        views = Views(store, POLICY, TZ, ManualClock(AS_OF))
        categories = frozenset(f.category for f in facts[::3])
        counted = 0
        for month in MONTHS_SEEN:
            got = await store.facts_within(POLICY, month.start, month.end)
            want = within(facts, month.start, month.end)
            assert sorted(got, key=key) == sorted(want, key=key), month.label
            assert sorted(within(full, month.start, month.end), key=key) == sorted(want, key=key)
            now = min(AS_OF, month.end)
            assert kpi_gauge_tables(got, views, month, now, categories) == \
                kpi_gauge_tables(facts, views, month, now, categories)
            counted += len(got)
        assert counted > len(facts)  # rows counted in several months (received in one, closed in the next)
        stored = await db["kpi_dispatches"].find_one({MONTHS: {"$exists": True}})
        assert stored is not None and all(len(m) == 7 for m in stored[MONTHS])
        # facts stored before this change: no months; a new process backfills them once
        for collection in ("kpi_tickets", "kpi_dispatches", "kpi_handlings"):
            await db[collection].update_many({}, {"$unset": {MONTHS: ""}})
        assert await store.facts_within(POLICY, HALF.start, HALF.end) == []  # this process backfilled already
        again = KpiStore(db, TZ)
        month = MONTHS_SEEN[4]
        assert sorted(await again.facts_within(POLICY, month.start, month.end), key=key) == \
            sorted(within(facts, month.start, month.end), key=key)
        assert await db["kpi_handlings"].count_documents({MONTHS: {"$exists": False}}) == 0
    finally:
        await client.drop_database(db.name)
        await client.close()
