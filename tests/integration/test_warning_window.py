"""Early warnings' history in memory (services/supervision/warnings/fact_window.py) against the real
store: two processes taking turns on the batches of a simulated 40 days, one of them restarted
halfway, raise exactly the warnings of the in-memory detector over the whole stream in order; a
replayed batch raises nothing; a late ticket whose history the window already dropped is judged
on the facts read back from the store; each batch reads only what the other process stored."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hotline import mongo, pb
from hotline.directory import DIRECTORY_FILE
from hotline.envelope import Record
from hotline.v1 import events_pb2, ticket_pb2
from hotline_dev.simulator import generate
from services.intake.core import to_ticket, without_contact
from services.supervision.warnings import warnings as w
from services.supervision.warnings.warning_handlers import WarningInbox
from services.supervision.warnings.warning_store import INDEXES, WarningStore

pytestmark = pytest.mark.integration
RULES = w.Rules.load()
START = datetime(2026, 3, 1, tzinfo=UTC)
STREET_OF = w.street_finder(json.loads(DIRECTORY_FILE.read_text("utf-8")))


@pytest.fixture
async def db(settings: object) -> AsyncIterator[AsyncDatabase[mongo.Doc]]:
    client = mongo.client(settings)  # type: ignore[arg-type]
    database = client[f"{settings.mongo.database_prefix}_warnwin_{uuid.uuid4().hex[:6]}"]  # type: ignore[attr-defined]
    for name, models in INDEXES.items():
        await database[name].create_indexes(models)
    yield database
    await client.drop_database(database.name)
    await client.close()


def city(tid: str, at: datetime, text: str, address: str, phone: str, category: str = "") -> ticket_pb2.CityTicket:
    return ticket_pb2.CityTicket(city_ticket_id=tid, ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title=text[:12],
                                 content=text, category=category, address=address,
                                 caller=ticket_pb2.Caller(name="张三", phone=phone), received_at=pb.ts(at))


def received(c: ticket_pb2.CityTicket) -> events_pb2.TicketReceived:
    ticket = without_contact(to_ticket(c, c.city_ticket_id, "city", pb.dt(c.received_at)), "test-secret")
    return events_pb2.TicketReceived(ticket=ticket)


def stream() -> list[ticket_pb2.CityTicket]:
    """~1,200 simulated tickets over 40 days, with a burst, a repeat caller and a mass incident."""
    base = list(generate(1200, seed=11, start=START))
    first, last = pb.dt(base[0].received_at), pb.dt(base[-1].received_at)
    for t in base:
        t.received_at.CopyFrom(pb.ts(START + (pb.dt(t.received_at) - first) * (timedelta(days=40) / (last - first))))
    day = timedelta(days=1)
    base += [city(f"IB{k:03d}", START + 20 * day + timedelta(minutes=20 * k),
                  f"长干里{k}号门口车辆乱停放，占用消防通道", f"长干里{k}号", f"1390000{k:04d}", "停车管理")
             for k in range(12)]
    base += [city(f"IR{k:03d}", START + (3 + gap) * day, "楼上装修噪音扰民", f"中华路{k}号", "13700001111")
             for k, gap in enumerate((0, 9, 21, 35))]
    text = "瑞金北村旁边工地拖欠农民工工资三个月，几十名工人在工地门口聚集讨薪"
    base += [city(f"IM{k:03d}", START + 33 * day + timedelta(minutes=15 * k), text, "瑞金北村工地", f"1350000{k:04d}",
                  "劳动保障") for k in range(7)]
    base.sort(key=lambda t: (pb.dt(t.received_at), t.city_ticket_id))
    return base


def inbox(db: AsyncDatabase[mongo.Doc]) -> WarningInbox:
    store = WarningStore(db)
    store.beat_every = timedelta(0)  # a new process is known to the others at their next batch
    return WarningInbox(store, RULES, STREET_OF, "t.warnings")


async def run(box: WarningInbox, batch: list[ticket_pb2.CityTicket]) -> list[str]:
    items = [(Record("t.tickets", 0, i, t.city_ticket_id, b"", {}, 0), received(t)) for i, t in enumerate(batch)]
    return [e.key for e in await box.apply(items)]


async def test_two_processes_and_a_restart_raise_what_one_detector_raises(db: AsyncDatabase[mongo.Doc]) -> None:
    tickets = stream()
    detector = w.Detector(RULES)
    expected = [x.warning_id for t in tickets for x in detector.observe(w.fact_of(received(t).ticket, RULES,
                                                                                 STREET_OF))]
    assert {"burst", "repeat_caller", "mass_incident"} <= {i.split(".")[-1] for i in expected}

    a, b = inbox(db), inbox(db)
    raised: list[str] = []
    batches = [tickets[i:i + 60] for i in range(0, len(tickets), 60)]
    for n, batch in enumerate(batches):
        if n == len(batches) // 2:
            a = inbox(db)  # a restarted: its window read again from the store
        raised += await run(a if n % 2 else b, batch)
    assert raised == expected
    assert await run(a, batches[-1]) == [] and await run(b, batches[3]) == []  # replays raise nothing

    window = b.window  # pruned: the oldest kept is within the horizon (+ a day) of the newest
    assert window.low is not None and window.newest is not None
    assert window.low >= window.newest - w.horizon(RULES) - timedelta(days=2)
    assert min(f.at for f in window.facts.values()) >= window.low
    assert not any(f.text for f in window.facts.values() if f.at < window.newest - timedelta(days=2))

    # a late ticket of the repeat caller, between its first two calls' window: judged on the stored facts
    late = city("LATE1", START + timedelta(days=13), "楼上装修噪音又来了", "中华路9号", "13700001111")
    found = await run(b, [late])
    assert found == ["LATE1.repeat_caller"]
    stored = await b.store.get("LATE1.repeat_caller")
    assert stored is not None and list(stored.ticket_ids) == ["IR000", "IR001", "LATE1"]


async def test_a_batch_reads_only_what_the_other_process_stored(db: AsyncDatabase[mongo.Doc]) -> None:
    tickets = stream()[:200]
    ids = [t.city_ticket_id for t in tickets]
    a = inbox(db)
    await run(a, tickets[:40])
    await run(a, tickets[40:50])
    assert a.store.others == {} and await a.store.by_others() == []  # alone: no query at all
    b = inbox(db)
    await run(b, tickets[50:100])  # b's first batch: the window read from the store
    assert set(b.window.facts) == set(ids[:100])
    again = await b.store.by_others()  # a's, stored within the clocks' slack: read again, nothing of b's
    assert {f.ticket_id for f in again} <= set(ids[:50])
    await run(a, tickets[100:150])  # a learns of b, reads b's 50
    assert set(a.window.facts) == set(ids[:150])
    await run(b, tickets[150:200])
    assert set(b.window.facts) == set(ids)
