"""Supervision's SLA gauges read from the real store: open cases by deadline, and the city
evaluations waiting in the inbox for a case that has not opened (the oldest one's age)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hotline import pb
from hotline.clock import ManualClock
from hotline.v1 import events_pb2, lifecycle_pb2
from services.supervision.cases import gauge_ledger
from services.supervision.cases.gauge_ledger import SlaGauges
from services.supervision.cases.store import INBOX, CaseStore

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 7, 2, tzinfo=UTC)


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def test_gauges_count_open_cases_and_the_evaluations_waiting_for_their_case(scratch_db: Any) -> None:
    store = CaseStore(scratch_db)
    await scratch_db["cases"].insert_many([
        {"_id": "T1", "state": "CASE_STATE_IN_PROGRESS", "category": "物业管理", "supervision_level": 1,
         "primary_unit": {"unit_type": "UNIT_TYPE_STREET"}, "next_deadline": NOW - timedelta(hours=1),
         "received_at": NOW - timedelta(days=2)},
        {"_id": "T2", "state": "CASE_STATE_ARCHIVED", "category": "物业管理", "next_deadline": NOW - timedelta(hours=1),
         "received_at": NOW - timedelta(days=2)},  # closed: not counted
    ])
    for i, age in enumerate((timedelta(days=4), timedelta(hours=3))):
        kept = await store.keep_evaluation(lifecycle_pb2.CityEvaluation(
            evaluation_id=f"EV-{i}", city_ticket_id=f"NEVER-{i}", result_id=f"NEVER-{i}/result/1/0",
            evaluated_at=pb.ts(NOW - age)))
        assert kept
    gauges = SlaGauges(scratch_db["cases"], scratch_db[INBOX], ManualClock(NOW))
    figures = await gauges.refresh()
    assert dict(figures.overdue) == {("street", "物业管理"): 1} and figures.supervised["1"] == 1
    assert (figures.waiting, figures.waiting_oldest_seconds) == (2, 4 * 86400)
    assert gauge("hotline_evaluations_waiting") == 2
    assert gauge("hotline_evaluation_wait_oldest_seconds") == 4 * 86400


async def test_gauges_read_the_open_cases_once_then_follow_the_case_writes(scratch_db: Any) -> None:
    """Issue 21: a refresh costs O(changes): the writes of this process note into the ledger, the
    open cases are read in full only to reconcile it, and the figures equal a full recount."""
    from services.supervision.cases.sla_metrics import FIELDS, OPEN, figures
    from services.supervision.cases.store import CaseRepository

    store = CaseStore(scratch_db)
    gauges = SlaGauges(scratch_db["cases"], scratch_db[INBOX], ManualClock(NOW), reconcile_seconds=86400)
    try:
        assert (await gauges.refresh()).backlog["lt_1d"] == 0 and gauges.scans == 1

        def case(i: int, state: events_pb2.CaseState.ValueType, due_hours: int) -> events_pb2.Case:
            c = events_pb2.Case(ticket_id=f"T{i}", state=state, category=f"类{i % 3}", dispatch_round=1,
                                received_at=pb.ts(NOW - timedelta(hours=30 * i)), opened_at=pb.ts(NOW))
            c.primary_unit.unit_id, c.primary_unit.unit_type = "U1", events_pb2.UNIT_TYPE_STREET
            c.sign_off_due.FromDatetime(NOW + timedelta(hours=due_hours))
            c.reply_due.FromDatetime(NOW + timedelta(hours=due_hours))
            return c

        await store.insert_new([case(i, events_pb2.CASE_STATE_AWAITING_SIGN_OFF, 10 - 6 * i) for i in range(6)])
        await store.insert_new([case(0, events_pb2.CASE_STATE_AWAITING_SIGN_OFF, 99)])  # a replay: stored once
        repo = CaseRepository(store, None)
        await repo.save(case(1, events_pb2.CASE_STATE_IN_PROGRESS, 30), None)  # signed off: the reply clock
        await repo.save(case(2, events_pb2.CASE_STATE_ARCHIVED, 0), None)  # closed: leaves the counts
        for later in (NOW, NOW + timedelta(hours=12)):
            gauges.clock = ManualClock(later)
            got = await gauges.refresh()
            want = figures(await scratch_db["cases"].find(OPEN, FIELDS).to_list(), later)
            assert (dict(got.overdue), dict(got.due_soon), got.backlog, got.supervised) == \
                (dict(want.overdue), dict(want.due_soon), want.backlog, want.supervised)
        assert sum(got.backlog.values()) == 5 and gauges.scans == 1  # no second read of the open cases
        gauges.clock = ManualClock(NOW + timedelta(days=1))
        await gauges.refresh()
        assert gauges.scans == 2  # the day passed: reconciled from a full read
    finally:
        gauge_ledger.forget(scratch_db.name)
