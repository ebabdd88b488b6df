"""Retention of personal data, end to end: tickets flow through the five services; then intake's
retention job (services/intake/retention.py) runs on a clock past the period. Afterwards no ticket
received before the cutoff holds a caller's name or a phone number in clear, the tickets are still
there (same type, category, times), one audit entry names each batch, a second run changes nothing,
and every figure - the metrics summary and the KPI figures - is exactly what it was before.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline import mongo, pb
from hotline.clock import ManualClock
from hotline.privacy import PHONE
from hotline.settings import Settings
from hotline.v1 import kpis_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from hotline_dev.launcher import ServiceProcess
from hotline_dev.simulator import generate
from services.intake.retention import Retention, policy
from services.intake.store import TicketStore
from tests.e2e.test_pipeline import drained, summary
from tests.support import channel, eventually, publish_tickets

pytestmark = pytest.mark.e2e

N = 40
OLD_DAYS, RECENT_DAYS = 10, 1  # days before now the two halves were received


async def figures(settings: Settings, received: datetime) -> tuple[services_pb2.Summary, list[kpis_pb2.KpiResult]]:
    """The counts, and the KPIs of the days around ``received`` (the anonymised tickets' day: the KPIs
    of all time also hold the suite's other, younger tickets, whose rates move as their limits pass)."""
    s = await summary(settings)
    s.ClearField("computed_at")
    day = received.astimezone(ZoneInfo(settings.timezone)).date()
    window = {"from_date": (day - timedelta(days=1)).isoformat(), "to_date": (day + timedelta(days=1)).isoformat()}
    async with channel(settings, "metrics") as chan:
        stub = services_pb2_grpc.MetricsServiceStub(chan)
        kpis = [await stub.GetKpis(kpis_pb2.GetKpisRequest(group_by=g, **window))
                for g in ([], ["ticket_type"], ["day"])]
    for k in kpis:
        k.ClearField("as_of")
    return s, kpis


def clear_personal_data(doc: dict[str, Any]) -> list[str]:
    """What in a stored ticket is a caller's name or a phone number in clear."""
    found = [f"caller.{k}" for k in ("name", "phone") if doc.get("caller", {}).get(k)]
    for key in ("title", "content", "address"):
        if PHONE.search(str(doc.get(key, ""))):
            found.append(key)
    return found


async def test_callers_are_anonymised_after_the_period_and_every_figure_is_kept(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    now = datetime.now(UTC)
    tickets = list(generate(N, seed=1414))
    for i, t in enumerate(tickets):
        t.city_ticket_id = f"RET-{i:04d}"
        received = now - timedelta(days=OLD_DAYS if i % 2 == 0 else RECENT_DAYS)
        t.received_at.FromDatetime(received)
        t.dispatched_at.FromDatetime(received + timedelta(minutes=3))
        t.caller.name, t.caller.phone, t.caller.anonymous = "张三丰", f"1381234{i:04d}", False
        t.content += f" 联系电话 1391234{i:04d}"
    before_received = (await summary(settings)).received
    await publish_tickets(settings, tickets)
    await eventually(lambda: summary(settings), lambda s: s.received - before_received >= N, timeout=90)
    await drained(settings)

    client = mongo.client(settings)
    try:
        store = TicketStore(mongo.database(client, settings, "intake"))
        ids = [t.city_ticket_id for t in tickets]
        stored = {d["_id"]: d for d in await store.tickets.find({"_id": {"$in": ids}}).to_list()}
        assert all(clear_personal_data(d) for d in stored.values()), "the tickets hold their callers' contact"
        before = await figures(settings, now - timedelta(days=OLD_DAYS))

        # a clock past the period for the older half only (the district's policy: 180 days)
        rule = policy()
        assert rule.days == 180
        clock = ManualClock(now + timedelta(days=rule.days - OLD_DAYS + 2))
        retention = Retention(store, client, clock, rule, batch=7)  # several batches
        done = await retention.run_once()
        assert done >= N // 2
        assert await retention.run_once() == 0, "a second run finds nothing left"

        older = set(ids[::2])
        after_docs = {d["_id"]: d for d in await store.tickets.find({"_id": {"$in": ids}}).to_list()}
        assert set(after_docs) == set(ids), "tickets are kept"
        for tid, doc in after_docs.items():
            if tid in older:
                assert not clear_personal_data(doc), (tid, clear_personal_data(doc))
                assert doc["anonymised_at"] == clock.now()
                was, now_t = (pb.from_doc(stored[tid], ticket_pb2.Ticket), pb.from_doc(doc, ticket_pb2.Ticket))
                for field in ("ticket_type", "category", "received_at", "dispatched_at", "street", "urgency", "tags",
                              "source", "channel", "repeat_of"):
                    assert getattr(was, field) == getattr(now_t, field), (tid, field)
                assert re.search(r"139\*{4}\d{4}", now_t.content)  # the number in the text is masked
            else:
                assert doc == stored[tid], "a ticket inside the period is untouched"
        assert sum(1 for d in after_docs.values() if "anonymised_at" in d) == N // 2

        # one audit entry per batch, naming its tickets
        entries = await store.db["audit"].find({"action": "anonymise"}).to_list()
        named = [tid for e in entries for tid in e["after"]["tickets"]]
        assert len(named) == len(set(named)) and older <= set(named)
        assert all(e["actor"]["role"] == "system" and "180日" in e["reason"] for e in entries)
    finally:
        await client.close()

    after = await figures(settings, now - timedelta(days=OLD_DAYS))
    assert after[1][0].total.tickets >= N // 2, "the window holds the anonymised tickets"
    assert after == before, "anonymisation changed a figure"
