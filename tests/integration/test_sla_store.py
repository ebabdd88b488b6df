"""Supervision's case store against the real store: a case keeps the limits of the SLA policy
version it started with (the policy's versions: tests/integration/test_policy_store.py); system
supervision raised once."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hotline import mongo, pb
from hotline.policies import LivePolicy, PolicyStore
from hotline.settings import Settings, SlaSettings
from hotline.v1 import events_pb2
from services.supervision.cases.sla import POLICY_NAME, CaseFacts, limits_for, parse_policy
from services.supervision.cases.store import CaseStore, sla_extras

pytestmark = pytest.mark.integration
DOC: dict[str, Any] = json.loads(SlaSettings().policy_file.read_text("utf-8"))
NOW = datetime(2026, 12, 7, 2, tzinfo=UTC)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncDatabase[mongo.Doc]]:
    client = mongo.client(settings)
    database = client[f"{settings.mongo.database_prefix}_sla_{uuid.uuid4().hex[:6]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


async def test_a_case_keeps_its_limits(db: AsyncDatabase[mongo.Doc]) -> None:
    cases = CaseStore(db)
    case = events_pb2.Case(ticket_id="T1", state=events_pb2.CASE_STATE_AWAITING_SIGN_OFF, opened_at=pb.ts(NOW),
                           sign_off_due=pb.ts(NOW))
    await PolicyStore(db, POLICY_NAME).ensure(DOC, "system:supervision", NOW, DOC["version"])
    policies = LivePolicy(PolicyStore(db, POLICY_NAME), parse_policy)
    policy = await policies.current()
    limits = limits_for(CaseFacts(urgency="URGENCY_URGENT", city_reply_working_days=10), policy)
    case.policy_version, case.sla_lanes[:] = limits.policy_version, limits.lanes
    assert await cases.insert_new([case], {"T1": sla_extras(limits)}) == set()
    assert await cases.insert_new([case]) == {"T1"}  # a replay inserts nothing
    assert await cases.limits("T1", policies) == limits  # what the lifecycle reads for later clocks
