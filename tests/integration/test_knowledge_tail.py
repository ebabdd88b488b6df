"""The knowledge base's indexer follows only what its index may hold (real store): a ticket's receipt
and assignment write its case without the tail's stamp, so the indexer reads nothing of it until the
case is resolved; then the whole case (text, unit, reply) is indexed; a case sent back is removed."""

from __future__ import annotations

import uuid

import pytest

from hotline import mongo
from hotline.settings import Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, ticket_pb2
from services.metrics.knowledge import cases
from services.metrics.knowledge.service import Indexer
from services.metrics.knowledge.store import KnowledgeStore

pytestmark = pytest.mark.integration


async def test_the_indexer_reads_a_case_once_it_is_resolved(settings: Settings) -> None:
    client = mongo.client(settings)
    db = client[f"{settings.mongo.database_prefix}_kbt_{uuid.uuid4().hex[:6]}"]
    store = KnowledgeStore(db)
    indexer = Indexer(store)
    case = events_pb2.Case(ticket_id="K1", ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, category="市政设施",
                           primary_unit=events_pb2.Unit(unit_id="ST01", name="瑞金路街道"))
    try:
        await store.apply([*cases.updates(events_pb2.TicketReceived(ticket=ticket_pb2.Ticket(
            ticket_id="K1", title="路灯不亮", content="小区门口路灯坏了一周")))])
        await store.apply([*cases.updates(events_pb2.TicketAssigned(assignment=events_pb2.Assignment(
            ticket_id="K1", category="市政设施", rule_id="R9", primary_unit=case.primary_unit)))])
        await store.apply(cases.updates(lifecycle_pb2.CaseReplied(case=case, reply=case_pb2.Reply(
            text="已更换灯泡", result=case_pb2.REPLY_RESULT_RESOLVED))))
        stored = await store.case("K1")
        assert stored is not None and stored["list_item"] == "R9" and "updated_at" not in stored
        assert await indexer.step() == 0 and len(indexer.index) == 0  # nothing read: not resolvable yet

        await store.apply(cases.updates(lifecycle_pb2.ReviewDecided(case=case, passed=True)))
        assert await indexer.step() == 1 and len(indexer.index) == 1
        assert [h.doc_id for h in indexer.index.search("路灯", "case", 5)] == ["K1"]
        await store.apply(cases.updates(lifecycle_pb2.CaseEvaluated(case=case, evaluation=case_pb2.Evaluation(
            satisfaction=case_pb2.SATISFACTION_SATISFIED))))
        assert (await store.case("K1") or {}).get("updated_at") is not None  # a resolved case's change: read

        await store.apply(cases.updates(lifecycle_pb2.RedoDecided(case=case, redo=True)))
        await indexer.step()
        assert len(indexer.index) == 0  # sent back: removed
        fresh = Indexer(store)  # a restarted process reads the cases resolved once, not every ticket
        await store.apply([*cases.updates(events_pb2.TicketReceived(ticket=ticket_pb2.Ticket(
            ticket_id="K2", title="噪音", content="夜间施工")))])
        assert await fresh.step() == 1 and len(fresh.index) == 0
    finally:
        await client.drop_database(db.name)
        await client.close()
