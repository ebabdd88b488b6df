"""Supervision's SLA gauges read from the real store: open cases by deadline, and the city
evaluations waiting in the inbox for a case that has not opened (the oldest one's age)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hotline import pb
from hotline.clock import ManualClock
from hotline.v1 import lifecycle_pb2
from services.supervision.cases.sla_metrics import SlaGauges
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
