"""Deputy liaison's ticket facts (the monthly lists' input) against the real store: each event is one
insert-only fact, no read and no update per ticket; a month's facts merged at read time equal what
the former read-and-upsert gave (the receipt's fields, the latest dispatch round's category, the
flags), whatever the batches, with replays, and over facts stored the former way."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.message import Message

from hotline import mongo, pb
from hotline.directory import DIRECTORY_FILE, Directory
from hotline.envelope import Record
from hotline.settings import Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, ticket_pb2
from services.deputy_liaison.handlers import TicketFacts
from services.deputy_liaison.store import DeputyStore

pytestmark = pytest.mark.integration
RECEIVED = datetime(2026, 10, 31, 20, 0, tzinfo=UTC)  # 2026-11-01 04:00 in the district: November
REPLIED = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)


def record(message: Message, offset: int) -> Record:
    return Record("t", 0, offset, "k", message.SerializeToString(),
                  {"event_type": message.DESCRIPTOR.full_name}, 0)


def ticket_events(i: int) -> list[Message]:
    tid = f"DF-{i}"
    case = events_pb2.Case(ticket_id=tid, received_at=pb.ts(RECEIVED), reply_due=pb.ts(REPLIED),
                           replied_at=pb.ts(REPLIED if i % 2 else datetime(2026, 11, 10, tzinfo=UTC)),
                           evaluation=case_pb2.Evaluation(satisfaction=case_pb2.SATISFACTION_UNSATISFIED))
    out: list[Message] = [
        events_pb2.TicketReceived(ticket=ticket_pb2.Ticket(
            ticket_id=tid, address=f"长干桥小区{i % 3}号", received_at=pb.ts(RECEIVED), street="ST01",
            repeat_of="X" if i % 4 == 0 else "")),
        events_pb2.TicketAssigned(assignment=events_pb2.Assignment(
            ticket_id=tid, category="环境卫生", dispatch_round=1), received_at=pb.ts(RECEIVED)),
    ]
    if i % 3 == 0:  # re-dispatched: the second round's category is the ticket's
        out.append(events_pb2.TicketAssigned(assignment=events_pb2.Assignment(
            ticket_id=tid, category="市容市貌", dispatch_round=2), received_at=pb.ts(RECEIVED)))
    out.append(lifecycle_pb2.CaseReplied(case=case))
    if i % 5 == 0:
        out.append(lifecycle_pb2.RedoDecided(case=case, redo=True))
        out.append(lifecycle_pb2.CaseEvaluated(case=case))
    return out


def expected(i: int, facts: TicketFacts) -> dict[str, Any]:
    """What the former store kept: every fact's fields $set on one document, in order."""
    doc: dict[str, Any] = {}
    for n, message in enumerate(ticket_events(i)):
        fact = facts.decode(record(message, n))
        if fact is not None:
            doc.update({k: v for k, v in fact.items() if k not in ("fact", "round")})
    return doc


async def test_one_insert_per_fact_merged_by_month(settings: Settings) -> None:
    client = mongo.client(settings)
    db = client[f"{settings.mongo.database_prefix}_dtf_{uuid.uuid4().hex[:6]}"]
    store = DeputyStore(db)
    facts = TicketFacts(store, Directory.from_file(DIRECTORY_FILE), "Asia/Shanghai")
    try:
        # each ticket's events in their order, tickets interleaved (partitions); then a part replayed
        rng = random.Random(3)
        pending = [[record(m, n) for n, m in enumerate(ticket_events(i))] for i in range(12)]
        stream: list[Record] = []
        while pending:
            events = rng.choice(pending)
            stream.append(events.pop(0))
            pending = [p for p in pending if p]
        replayed = stream + stream[5:30]
        for start in range(0, len(replayed), 7):
            batch = replayed[start:start + 7]
            await facts.apply([(r, facts.decode(r)) for r in batch])
        got = {d["ticket_id"]: d for d in await store.facts_of_month("2026-11")}
        want = {f"DF-{i}": expected(i, facts) for i in range(12)}
        assert got == want
        assert got["DF-3"]["category"] == "市容市貌" and got["DF-1"]["category"] == "环境卫生"
        assert got["DF-5"]["redone"] and got["DF-5"]["unsatisfied"] and "redone" not in got["DF-1"]
        assert "overdue" in got["DF-2"] and "overdue" not in got["DF-1"]
        assert await store.facts_of_month("2026-10") == []
        # one document per fact, each written once
        assert await db["ticket_facts"].count_documents({}) == sum(
            1 for i in range(12) for n, m in enumerate(ticket_events(i)) if facts.decode(record(m, n)) is not None)
        # a document stored the former way (one per ticket, every fact merged) is read as it was,
        # and a later round's category still wins over it
        old = {**want["DF-1"], "_id": "OLD-1", "ticket_id": "OLD-1", "category": "旧分类", "overdue": True}
        await db["ticket_facts"].insert_one(old)
        await store.merge_facts([{"ticket_id": "OLD-2", "received_month": "2026-11", "street": "S"}])
        await db["ticket_facts"].insert_one({**old, "_id": "OLD-3", "ticket_id": "OLD-3"})
        await store.merge_facts([{"ticket_id": "OLD-3", "received_month": "2026-11", "fact": "category",
                                  "round": 2, "category": "新分类"}])
        got = {d["ticket_id"]: d for d in await store.facts_of_month("2026-11")}
        assert got["OLD-1"] == {k: v for k, v in old.items() if k != "_id"}
        assert got["OLD-3"]["category"] == "新分类" and got["OLD-3"]["overdue"]
    finally:
        await client.drop_database(db.name)
        await client.close()
