"""The KPI projection: the events that tell a month of lifecycles project back into exactly
those facts, whatever the batching, however often replayed, in any order across topics."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline.envelope import Event, Record, Skip
from hotline.v1 import events_pb2
from services.metrics.kpi import KpiPolicy, Period, compute
from services.metrics.projection import apply, assemble, decode, fold, updates
from services.metrics.simulate import events, lifecycles

TZ = ZoneInfo("Asia/Shanghai")
POLICY = KpiPolicy.load()
MONTH = Period.parse("2026-11", TZ)
AS_OF = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)
FACTS = list(lifecycles(MONTH, per_day=25, seed=3, as_of=AS_OF))


def record(e: Event, offset: int) -> Record:
    return Record(e.topic, 0, offset, e.key, e.message.SerializeToString(), dict(
        (k, v.decode()) for k, v in e.headers("test")), 0)


def project(stream: list[Event], batch: int) -> dict[str, dict[str, dict[str, Any]]]:
    docs: dict[str, dict[str, dict[str, Any]]] = {}
    records = [record(e, i) for i, e in enumerate(stream)]
    for start in range(0, len(records), batch):
        found = [decode(r) for r in records[start:start + batch]]
        for u in fold(u for m in found for u in updates(m)).values():
            apply(docs, u)
    return docs


def facts_of(docs: dict[str, dict[str, dict[str, Any]]]) -> list[Any]:
    return assemble(docs.get("ticket", {}), docs.get("dispatch", {}), docs.get("handling", {}), POLICY)


def test_the_events_of_a_month_project_back_into_the_same_facts() -> None:
    stream = events(FACTS)
    assert len({e.event_type for e in stream}) >= 9
    projected = facts_of(project(stream, batch=500))
    assert sorted(projected, key=lambda f: f.key) == sorted(FACTS, key=lambda f: f.key)
    table = compute(projected, POLICY, TZ, MONTH.start, MONTH.end, ("unit",), as_of=AS_OF)
    assert table.groups == compute(FACTS, POLICY, TZ, MONTH.start, MONTH.end, ("unit",), as_of=AS_OF).groups


def test_replays_and_batch_sizes_change_nothing() -> None:
    stream = events(FACTS)
    once = project(stream, batch=1000)
    assert project(stream + stream, batch=333) == once  # a replay from offset 0 after the first pass
    assert project(stream[:700] + stream[300:], batch=97) == once  # a crash replays part of a batch


def test_topics_may_arrive_in_any_order_relative_to_each_other() -> None:
    stream = events(FACTS)
    by_topic: dict[str, list[Event]] = {}
    for e in stream:
        by_topic.setdefault(e.topic, []).append(e)
    rng = random.Random(5)
    for _ in range(3):  # each topic keeps its own order; the topics interleave at random
        queues = [list(q) for q in by_topic.values()]
        mixed: list[Event] = []
        while any(queues):
            queue, n = rng.choice([q for q in queues if q]), rng.randint(1, 50)
            mixed += queue[:n]
            del queue[:n]
        assert len(mixed) == len(stream)
        assert project(mixed, batch=250) == project(stream, batch=250)


def test_events_the_projection_does_not_read_are_skipped() -> None:
    e = Event("t", "k", events_pb2.DeputySubmission(submission_id="s"), "k/x")
    with pytest.raises(Skip):
        decode(record(e, 0))


def test_the_lane_and_the_first_contact_limit_are_the_cases_own() -> None:
    """One definition (issue #22): the KPI row's lane and first-contact limit are what the case
    says (the SLA policy decided them), not the ticket's tags nor sign-off + 24 h."""
    from hotline import pb
    from hotline.v1 import ticket_pb2

    received = datetime(2026, 11, 23, 9, tzinfo=TZ)
    contact_due = datetime(2026, 11, 23, 17, tzinfo=TZ)
    ticket = ticket_pb2.Ticket(ticket_id="T-1", tags=["人大代表"], received_at=pb.ts(received),
                               caller=ticket_pb2.Caller(enterprise=True))
    case = events_pb2.Case(ticket_id="T-1", dispatch_round=1, lane="enterprise", sign_off_due=pb.ts(received),
                           contact_due=pb.ts(contact_due))
    docs: dict[str, dict[str, dict[str, Any]]] = {}
    for message in (events_pb2.TicketReceived(ticket=ticket), events_pb2.CaseOpened(case=case)):
        for u in updates(message):
            apply(docs, u)
    (row,) = facts_of(docs)
    assert row.lane == "enterprise" and row.first_contact_due == contact_due
    docs["dispatch"]["T-1|1"].pop("lane")  # a dispatch whose case has not opened yet: normal
    (row,) = facts_of(docs)
    assert row.lane == "normal"
