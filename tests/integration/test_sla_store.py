"""Supervision's SLA stores against the real store: policy versions kept for good, the
current one seeded from the file, a stale or doubled replacement refused; system supervision
raised once."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hotline import mongo, pb
from hotline.clock import ManualClock
from hotline.settings import Settings, SlaSettings
from hotline.v1 import events_pb2
from services.supervision.sla import CaseFacts, SlaClock, limits_for, next_policy, parse_policy
from services.supervision.store import CaseStore, PolicyConflict, PolicyStore, sla_extras

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


async def test_policy_versions_are_kept_and_the_newest_is_current(db: AsyncDatabase[mongo.Doc]) -> None:
    clock = ManualClock(NOW)
    store = PolicyStore(db, clock, refresh_seconds=0)
    first = await store.seed(parse_policy(DOC))
    assert first.version == DOC["version"]
    assert (await store.seed(parse_policy(DOC))).version == first.version  # a restart seeds nothing new

    proposed = copy.deepcopy(DOC)
    proposed["defaults"]["reply"] = {"working_days": 7}
    second = next_policy(await store.current(), proposed, based_on=first.version)
    await store.add(second, actor="admin:王主任", reason="区政府要求缩短办理时限")
    assert (await store.current()).version == second.version
    with pytest.raises(PolicyConflict):  # another admin replaced the same version at the same time
        await store.add(next_policy(first, proposed), actor="admin:李", reason="同时修改")

    other_replica = PolicyStore(db, clock, refresh_seconds=0)
    old = await other_replica.get(first.version)
    assert old is not None and old.defaults[SlaClock.REPLY].amount == 5  # a case started under v1 keeps v1
    assert (await other_replica.current()).defaults[SlaClock.REPLY].amount == 7
    assert (await other_replica.seed(parse_policy(DOC))).version == second.version  # the file never downgrades
    history = await store.history()
    assert [(h["_id"], h["actor"]) for h in history] == [(second.version, "admin:王主任"),
                                                        (first.version, "system:policy-file")]
    assert history[0]["stored_at"] == NOW


async def test_a_case_keeps_its_limits(db: AsyncDatabase[mongo.Doc]) -> None:
    cases = CaseStore(db)
    case = events_pb2.Case(ticket_id="T1", state=events_pb2.CASE_STATE_AWAITING_SIGN_OFF, opened_at=pb.ts(NOW),
                           sign_off_due=pb.ts(NOW))
    policies = PolicyStore(db, ManualClock(NOW))
    policy = await policies.seed(parse_policy(DOC))
    limits = limits_for(CaseFacts(urgency="URGENCY_URGENT", city_reply_working_days=10), policy)
    case.policy_version, case.sla_lanes[:] = limits.policy_version, limits.lanes
    assert await cases.insert_new([case], {"T1": sla_extras(limits)}) == set()
    assert await cases.insert_new([case]) == {"T1"}  # a replay inserts nothing
    assert await cases.limits("T1", policies) == limits  # what the lifecycle reads for later clocks
