"""Evaluations waiting in the inbox join their cases as a batch of commands loads them: one find
of the cases and one of the inbox for the whole batch (hotline/uow.py ``load``, the repository's
``side``), not two finds per command, each case with its own evaluations only."""

from __future__ import annotations

from typing import Any

import pytest

from hotline import audit, mongo, pb
from hotline.auth import Principal
from hotline.clock import SystemClock
from hotline.commands import Command, Decision
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.policy import Role
from hotline.settings import Settings
from hotline.uow import MongoUnitOfWork, Work
from hotline.v1 import events_pb2, lifecycle_pb2
from services.supervision.cases.store import COLLECTION, INBOX, CaseRepository, CaseStore
from tests.integration.test_commands import Sent
from tests.integration.test_kit import kit  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

OFFICE = Principal("office:1", Role.OFFICE)


async def test_a_batch_reads_the_waiting_evaluations_once(settings: Settings, kit: dict) -> None:  # noqa: F811
    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    try:
        db = client[kit["db"].name]
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
        await db[COLLECTION].insert_many([{"_id": t, **pb.to_doc(events_pb2.Case(ticket_id=t))}
                                          for t in ("C1", "C2", "C3")])
        store = CaseStore(db)
        for t, e in [("C1", "E1"), ("C1", "E2"), ("C3", "E3")]:  # evaluations that came before their results
            assert await store.keep_evaluation(lifecycle_pb2.CityEvaluation(evaluation_id=e, city_ticket_id=t))
        uow = MongoUnitOfWork(client, db, Outbox(db, kit["producer"], "kit"), "kit", SystemClock())
        seen: dict[str, list[str]] = {}

        def work(target: str) -> Work[Any]:
            def decide(case: events_pb2.Case | None) -> Decision[events_pb2.Case]:
                assert case is not None
                seen[target] = [e.evaluation_id for e in case.pending_evaluations]
                return Decision(case)
            return Work(Command("review", target, OFFICE, f"review-{target}"),
                        CaseRepository(store, None, inbox=True), decide, kit["out"])

        sent.names.clear()
        results = await uow.run([work(t) for t in ("C1", "C2", "C3")])
        assert [r.ticket_id for r in results] == ["C1", "C2", "C3"]
        assert seen == {"C1": ["E1", "E2"], "C2": [], "C3": ["E3"]}
        assert sent.names == ["find", "find", "bulkWrite", "commitTransaction"]  # cases, inbox: 2 finds, not 6
        assert await db[INBOX].count_documents({}) == 0  # they live in their cases now
        stored = {d["_id"]: [e["evaluation_id"] for e in d.get("pending_evaluations", [])]
                  for d in await db[COLLECTION].find({}).to_list()}
        assert stored == {"C1": ["E1", "E2"], "C2": [], "C3": ["E3"]}

        assert await store.keep_evaluation(lifecycle_pb2.CityEvaluation(evaluation_id="E4", city_ticket_id="C2"))
        sent.names.clear()  # alone: the case and its inbox, as before
        (alone,) = await uow.run([Work(Command("review", "C2", OFFICE, "review-C2-again"),
                                       CaseRepository(store, None, inbox=True), lambda c: Decision(c), kit["out"])])
        assert [e.evaluation_id for e in alone.pending_evaluations] == ["E4"]
        assert sent.names == ["find", "find", "bulkWrite", "commitTransaction"]
    finally:
        await client.close()
