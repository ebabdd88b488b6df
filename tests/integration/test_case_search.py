"""Case search (services/supervision/cases/search.py) against the real store: Chinese words over title,
content and address, the filters, sort and paging on the server, and a unit's scope."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hotline import mongo, pb
from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.directory import DIRECTORY_FILE, Directory
from hotline.policy import Role
from hotline.v1 import case_pb2, events_pb2, ticket_pb2
from services.supervision.cases.search import INDEXES, CaseSearch, Query, query_terms, terms
from services.supervision.cases.store import INDEXES as CASE_INDEXES
from services.supervision.cases.store import CaseStore

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 7, 2, tzinfo=UTC)
OFFICE = Principal(subject="office", role=Role.OFFICE)


@pytest.fixture
async def db(settings: object) -> AsyncIterator[AsyncDatabase[mongo.Doc]]:
    client = mongo.client(settings)  # type: ignore[arg-type]
    database = client[f"{settings.mongo.database_prefix}_search_{uuid.uuid4().hex[:6]}"]  # type: ignore[attr-defined]
    for name, models in {**CASE_INDEXES, **INDEXES, "cases": [*CASE_INDEXES["cases"], *INDEXES["cases"]]}.items():
        await database[name].create_indexes(models)
    yield database
    await client.drop_database(database.name)
    await client.close()


def case(tid: str, unit: str, state: int, due: datetime | None, category: str = "市场监管", level: int = 0,
         assists: tuple[str, ...] = ()) -> events_pb2.Case:
    c = events_pb2.Case(ticket_id=tid, state=state, primary_unit=events_pb2.Unit(unit_id=unit), category=category,
                        received_at=pb.ts(NOW - timedelta(days=1)), opened_at=pb.ts(NOW), supervision_level=level,
                        assists=[case_pb2.AssistTask(unit_id=a) for a in assists])
    if due is not None:
        c.reply_due.CopyFrom(pb.ts(due))
    return c


def received(tid: str, title: str, content: str, address: str) -> events_pb2.TicketReceived:
    return events_pb2.TicketReceived(ticket=ticket_pb2.Ticket(ticket_id=tid, title=title, content=content,
                                                              address=address, received_at=pb.ts(NOW)))


def test_words_are_segmented() -> None:
    assert {"电饭", "饭煲", "退货", "质量"} <= set(terms("电饭煲质量问题商家拒绝退货"))  # character pairs
    assert query_terms("电饭煲的退货") == ["电饭", "饭煲", "退货"]  # the pairs holding a stop word dropped
    assert query_terms("现在") == ["现在"]  # unless nothing else is left
    assert set(query_terms("路灯 不亮")) <= set(terms("路灯不亮"))
    assert terms("12号楼 No.3") == ["12", "号楼", "no", "3"] and query_terms("NO 12") == ["no", "12"]


async def test_search_filters_sorts_pages_and_scopes(db: AsyncDatabase[mongo.Doc]) -> None:
    store = CaseStore(db)
    live = events_pb2.CASE_STATE_IN_PROGRESS
    await store.insert_new([
        case("T1", "DP01", live, NOW - timedelta(hours=2), level=2),
        case("T2", "DP01", live, NOW + timedelta(hours=3)),
        case("T3", "DP02", live, NOW - timedelta(hours=1), category="住房", assists=("DP01",)),
        case("T4", "DP02", events_pb2.CASE_STATE_ARCHIVED, None, category="住房"),
    ])
    search = CaseSearch(db, Directory.from_file(DIRECTORY_FILE))
    await search.remember([
        received("T1", "电饭煲质量问题", "商场购买的电饭煲有质量问题，商家拒绝退货。", "幸福路1号"),
        received("T2", "噪音扰民", "楼下饭店深夜噪音。", "幸福路2号"),
        received("T3", "小区漏水", "楼顶漏水，物业不管。", "光明路3号"),
        received("T4", "电梯故障", "电梯经常停运。", "光明路4号"),
        events_pb2.TicketAssigned(assignment=events_pb2.Assignment(ticket_id="T1", rule_id="R-9")),
    ])

    async def ids(q: Query, who: Principal = OFFICE) -> list[str]:
        return [r["case"].ticket_id for r in (await search.search(q, who, NOW)).rows]

    assert await ids(Query(text="电饭煲 退货")) == ["T1"]
    assert await ids(Query(text="漏水")) == ["T3"]
    assert await ids(Query(text="不存在的词语")) == []
    assert await ids(Query(rule_id="R-9")) == ["T1"]
    assert await ids(Query(overdue=True)) == ["T1", "T3"]  # most overdue first
    assert await ids(Query(overdue=True, unit_id="DP02")) == ["T3"]
    assert await ids(Query(category="住房", sort="ticket", descending=True)) == ["T4", "T3"]
    assert await ids(Query(open_only=True, sort="ticket")) == ["T1", "T2", "T3"]
    assert await ids(Query(level=2)) == ["T1"]
    assert await ids(Query(due_before=NOW + timedelta(hours=4), sort="ticket")) == ["T1", "T2", "T3"]
    page = await search.search(Query(sort="ticket", size=2, page=2), OFFICE, NOW)
    assert (page.total, [r["case"].ticket_id for r in page.rows]) == (4, ["T3", "T4"])
    first = (await search.search(Query(text="电饭煲"), OFFICE, NOW)).rows[0]
    assert (first["title"], first["address"], first["rule_id"]) == ("电饭煲质量问题", "幸福路1号", "R-9")

    unit = Principal(subject="u", role=Role.UNIT, unit_id="DP01")
    assert await ids(Query(sort="ticket"), unit) == ["T1", "T2", "T3"]  # its own and the one it assists
    assert await ids(Query(text="电梯"), unit) == []
    with pytest.raises(DomainError):
        await search.search(Query(unit_id="DP02"), unit, NOW)
    with pytest.raises(DomainError):
        await search.search(Query(sort="nonsense"), OFFICE, NOW)


async def test_list_items_stand_beside_the_texts_and_either_event_may_come_first(
        db: AsyncDatabase[mongo.Doc]) -> None:
    """The list item is a small document of its own (an update of the ~46-term document rewrote
    every multikey entry, issue #21): an assignment before or after its ticket, a replayed
    ticket, a document written by an older version (the item on the text document), the item
    combined with words; each word's query walks the terms index instead of scanning."""
    store = CaseStore(db)
    live = events_pb2.CASE_STATE_IN_PROGRESS
    await store.insert_new([case(t, "DP01", live, None) for t in ("A1", "A2", "A3", "A4")])
    search = CaseSearch(db, Directory.from_file(DIRECTORY_FILE))

    def assigned(tid: str, rule: str) -> events_pb2.TicketAssigned:
        return events_pb2.TicketAssigned(assignment=events_pb2.Assignment(ticket_id=tid, rule_id=rule))

    await search.remember([assigned("A1", "R-1")])  # before its ticket
    await search.remember([received("A1", "路灯不亮", "小区路灯坏了三天。", "幸福路1号"),
                           received("A2", "路灯闪烁", "路灯一直闪。", "幸福路2号"), assigned("A2", "R-2")])
    await search.remember([received("A1", "路灯不亮", "小区路灯坏了三天。", "幸福路1号"),  # replayed
                           received("A3", "噪音扰民", "夜间施工。", "光明路3号"), assigned("A3", "R-1")])
    await db["case_search"].insert_one({"_id": "A4", "title": "旧路灯", "address": "旧址", "rule_id": "R-1",
                                        "terms": terms("旧路灯")})  # as an older version stored it

    async def ids(q: Query) -> list[str]:
        return sorted(r["case"].ticket_id for r in (await search.search(q, OFFICE, NOW)).rows)

    assert await ids(Query(text="路灯")) == ["A1", "A2", "A4"]
    assert await ids(Query(rule_id="R-1")) == ["A1", "A3", "A4"]
    assert await ids(Query(rule_id="R-1", text="路灯")) == ["A1", "A4"]
    assert await ids(Query(rule_id="R-2", text="噪音")) == []
    assert await ids(Query(rule_id="R-9")) == []
    rows = (await search.search(Query(text="路灯", sort="ticket"), OFFICE, NOW)).rows
    assert [(r["title"], r["rule_id"]) for r in rows] == [("路灯不亮", "R-1"), ("路灯闪烁", "R-2"), ("旧路灯", "R-1")]
    assert await db["case_search"].count_documents({}) == 4 and await db["case_search_items"].count_documents({}) == 3
    assert "rule_id" not in (await db["case_search"].find_one({"_id": "A1"}) or {})

    plan = await db["case_search"].find({"terms": "不亮"}).explain()  # what _by_words asks, once per word
    assert plan["executionStats"]["totalDocsExamined"] == 1  # through the index, not every document


def test_common_terms_are_stored_but_not_indexed() -> None:
    """The common pairs (in 5 % or more of the tickets) are kept out of the multikey index: the
    checked-in list is what hotline_dev/common_terms.py derives, and a ticket's document indexes
    only its other pairs while it stores them all (issue #21: half of a ticket's index entries)."""
    from hotline_dev.common_terms import simulated
    from services.supervision.cases.search import COMMON, common_terms

    assert set(common_terms(simulated(4000, 5))) == COMMON and {"来电", "小区", "反映"} <= COMMON
    doc = CaseSearch.__new__(CaseSearch)
    doc.directory = None
    stored = doc.ticket_doc(ticket_pb2.Ticket(title="小区路灯不亮", content="来电反映小区路灯坏了", address="幸福路"))
    assert "路灯" in stored["terms"] and "小区" not in stored["terms"] and "来电" not in stored["terms"]
    assert set(stored["all_terms"]) == set(terms("小区路灯不亮", "来电反映小区路灯坏了", "幸福路"))


async def test_queries_with_common_words_find_what_they_found_before(db: AsyncDatabase[mongo.Doc]) -> None:
    """A query's common words are checked in the candidates' stored terms; a query of common words
    only scans; a document an older version wrote (every pair indexed, no ``all_terms``) is found
    by all three kinds of query."""
    store = CaseStore(db)
    live = events_pb2.CASE_STATE_IN_PROGRESS
    await store.insert_new([case(t, "DP01", live, None) for t in ("K1", "K2", "K3", "K4")])
    search = CaseSearch(db, Directory.from_file(DIRECTORY_FILE))
    await search.remember([received("K1", "小区路灯不亮", "来电反映小区路灯坏了三天。", "幸福路1号"),
                           received("K2", "路灯闪烁", "路灯一直闪。", "幸福路2号"),
                           received("K3", "小区噪音", "来电反映小区夜间施工噪音。", "光明路3号")])
    await db["case_search"].insert_one({"_id": "K4", "title": "旧小区路灯", "address": "旧址",
                                        "terms": terms("旧小区路灯")})  # as an older version stored it

    async def ids(text: str) -> list[str]:
        return sorted(r["case"].ticket_id for r in (await search.search(Query(text=text), OFFICE, NOW)).rows)

    assert await ids("路灯") == ["K1", "K2", "K4"]  # an uncommon word: the index
    assert await ids("小区 路灯") == ["K1", "K4"]  # + a common word: checked in the stored terms
    assert await ids("小区") == ["K1", "K3", "K4"]  # common words only: a scan
    assert await ids("来电反映小区") == ["K1", "K3"]
    assert await ids("小区 闪烁") == []
    indexed = await db["case_search"].find_one({"_id": "K1"})
    assert indexed is not None and "小区" not in indexed["terms"] and "小区" in indexed["all_terms"]
    row = (await search.search(Query(text="路灯", sort="ticket"), OFFICE, NOW)).rows[0]
    assert row["title"] == "小区路灯不亮"
