"""Case search (案件查询): the workbench's lists and its search page, on the server.

Supervision owns the cases; what a case list also needs of its ticket (title, address, street,
community) is kept beside them in ``case_search``, one document per ticket written once from
intake's TicketReceived (an insert; a replay inserts nothing), and the list item it was
dispatched by in ``case_search_items``, one small document per ticket from routing's
TicketAssigned (an upsert; either event may come first). Full text is the character pairs of
title, content and address (the CJK bigrams a search engine indexes Chinese by, no dictionary:
jieba's took ~96 MB of supervision's memory, issue #21): a query's pairs must all be among a
ticket's terms (``all_terms``, not indexed). Only the pairs that are not common (:data:`COMMON`:
those in 5 % or more of the tickets, "来电", "相关", "小区"...) are indexed, as ``terms``, a multikey
index (issue #21: the store writes an index entry per term, and they were half of all the entries a
ticket costs; a common pair selects too many tickets to serve a query anyway). A query with an
uncommon pair selects by the index and checks its common pairs in the candidates' ``all_terms``; a
query of common pairs only scans (bounded by the places it names). A document an older version
wrote has every pair in ``terms`` and no ``all_terms``: it is found the same way.

Why two collections (issue #21): the store rewrites every index entry of a document it updates,
so setting the list item on the document that holds ~46 terms re-wrote ~46 multikey entries
(twice the cost of the insert itself); the item beside it costs one small upsert. And the
store answers ``$all`` over a multikey field by a scan of every document (hinted, of every
index entry): a query of several words runs one indexed equality per word (``_by_words``).

Every query is served by an index: words, street, community or list item select ticket ids in
``case_search`` first (each an index); the case filters (state, unit, category, lane, level,
overdue, due before, received between) then run on ``cases`` restricted to those ids, sorted
and paged there (skip/limit, with the total). A unit sees only its cases (primary or assisting).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.auth import Principal
from hotline.commands import Invalid
from hotline.directory import Directory
from hotline.envelope import Event, EventTypes, Record
from hotline.mongo import IN_CHUNK, Doc, find_in, insert_missing, write_batch
from hotline.policy import Role
from hotline.v1 import events_pb2, ticket_pb2

COLLECTION = "case_search"
ITEMS = "case_search_items"  # the list item (清单事项) a ticket was dispatched by: {_id: ticket id, rule_id}
WORD_MATCHES = 50_000  # tickets one word's index entries may yield before its query falls back to $all
MAX_MATCHES = 5000  # ticket ids a word/street/list-item selection may yield before it is refused as too broad
MAX_PAGE = 200
INDEXES = {
    COLLECTION: [
        IndexModel([("terms", ASCENDING)]),
        IndexModel([("street", ASCENDING)], sparse=True),
        IndexModel([("community", ASCENDING)], sparse=True),
        IndexModel([("rule_id", ASCENDING)], sparse=True),  # documents written before case_search_items
    ],
    ITEMS: [IndexModel([("rule_id", ASCENDING)])],
    # the case filters not served by the case store's own indexes (services/supervision/cases/store.py)
    "cases": [IndexModel([("received_at", DESCENDING)]), IndexModel([("supervision_level", ASCENDING)])],
}
SORTS = {  # sort key -> the case document field
    "due": "next_deadline", "received": "received_at", "level": "supervision_level", "state": "state",
    "updated": "updated_at", "ticket": "_id",
}
# a run of Chinese characters, or a run of other word characters (letters, digits)
_TOKEN = re.compile(r"[\u4e00-\u9fff]+|[^\W\u4e00-\u9fff]+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
STOP = frozenset("的 了 和 与 在 是 有 我 你 他 她 也 就 都 而 及 或 被 把 对 从 向 到 为 之 其 这 那 个 一".split())
COMMON_FILE = Path(__file__).with_name("common_terms.txt")  # versioned data: hotline_dev/common_terms.py
COMMON_SHARE = 0.05  # a term in at least this share of the tickets is common: stored, not indexed


def load_common(path: Path = COMMON_FILE) -> frozenset[str]:
    """The common terms (one per line; ``#`` starts a comment)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    return frozenset(line for line in lines if line)


def common_terms(texts: Iterable[Sequence[str]], share: float = COMMON_SHARE) -> list[str]:
    """The terms in at least ``share`` of the tickets (each given as its texts), most frequent first."""
    frequency: Counter[str] = Counter()
    tickets = 0
    for parts in texts:
        tickets += 1
        frequency.update(terms(*parts))
    return [t for t, n in frequency.most_common() if n >= share * tickets]


COMMON = load_common()


def _bigrams(run: str) -> list[str]:
    """A Chinese run's character pairs ("路灯不亮" -> 路灯, 灯不, 不亮); a lone character stands for itself."""
    return [run[i:i + 2] for i in range(len(run) - 1)] if len(run) > 1 else [run]


def terms(*texts: str) -> list[str]:
    """The index terms of a ticket's texts: the character pairs of every Chinese run (a lone
    Chinese character as itself) and every other word (letters, digits) in lower case; each once."""
    out: dict[str, None] = {}
    for text in texts:
        for token in _TOKEN.findall(text or ""):
            out.update(dict.fromkeys(_bigrams(token) if _CJK.match(token) else [token.lower()]))
    return list(out)


def query_terms(text: str) -> list[str]:
    """The terms a ticket must all have: the query's Chinese runs as character pairs, without the
    pairs that hold a stop word ("电饭煲的退货" -> 电饭, 饭煲, 退货) unless nothing else is left
    ("现在"), and its other words as themselves."""
    words: dict[str, None] = {}
    for token in _TOKEN.findall(text or ""):
        if not _CJK.match(token):
            words[token.lower()] = None
            continue
        pairs = _bigrams(token)
        kept = [pair for pair in pairs if not STOP.intersection(pair)]
        words.update(dict.fromkeys(kept or pairs))
    return list(words)


@dataclass
class Query:
    """A case search. Empty fields do not filter."""

    text: str = ""
    unit_id: str = ""
    category: str = ""
    rule_id: str = ""  # list item (清单事项)
    street: str = ""
    community: str = ""
    states: Sequence[str] = ()  # CaseState names
    lane: str = ""
    received_from: datetime | None = None
    received_to: datetime | None = None
    overdue: bool = False
    due_before: datetime | None = None  # a running clock due before this (due today / tomorrow)
    upcoming: bool = False  # a running clock not yet overdue
    level: int | None = None  # supervision level (督办); 0: none
    min_level: int = 0
    open_only: bool = False  # not archived, not reported
    assisting: bool = False  # with unit_id: the unit's assisting sub-cases
    primary: bool = False  # a unit: only the cases it handles (主办), not those it assists
    sort: str = "due"
    descending: bool = False
    page: int = 1
    size: int = 50
    ticket_ids: Sequence[str] = field(default_factory=tuple)


@dataclass
class Result:
    rows: list[dict[str, Any]]
    total: int
    page: int
    size: int


def scope(who: Principal, unit_id: str) -> str:
    """The unit whose cases a listing shows: a unit only ever its own."""
    if who.role == Role.UNIT:
        if unit_id and unit_id != who.unit_id:
            raise Invalid(f"a unit searches its own cases only (asked for {unit_id})")
        return who.unit_id
    return unit_id


def card(doc: Doc | None) -> dict[str, Any]:
    doc = doc or {}
    return {k: doc.get(k, "") for k in ("title", "address", "street", "community", "rule_id")}


class CaseSearch:
    def __init__(self, db: AsyncDatabase[Doc], directory: Directory | None = None) -> None:
        self.db = db
        self.index = db[COLLECTION]
        self.items = db[ITEMS]
        self.cases = db["cases"]
        self.directory = directory

    # ------------------------------------------------------------ the index (consumer side)

    def ticket_doc(self, ticket: ticket_pb2.Ticket) -> Doc:
        every = terms(ticket.title, ticket.content, ticket.address)
        doc: Doc = {"title": ticket.title, "address": ticket.address,
                    "terms": [t for t in every if t not in COMMON], "all_terms": every}
        if self.directory is not None:
            where = self.directory.locate(ticket)
            if where.street:
                doc["street"] = where.street
            if where.community:
                doc["community"] = where.community
        return doc

    async def remember(self, messages: Sequence[Message]) -> int:
        """Index a batch: the received tickets' documents in one insert (those already there, a
        replay or a document an older version started from an assignment, get their fields set),
        the assignments' list items in one bulk upsert. Returns the number of documents written."""
        docs: dict[str, Doc] = {}
        items: dict[str, str] = {}
        for m in messages:
            if isinstance(m, events_pb2.TicketReceived) and m.ticket.ticket_id:
                docs[m.ticket.ticket_id] = {"_id": m.ticket.ticket_id, **self.ticket_doc(m.ticket)}
            elif isinstance(m, events_pb2.TicketAssigned) and m.assignment.ticket_id and m.assignment.rule_id:
                items[m.assignment.ticket_id] = m.assignment.rule_id
        if docs:
            there = await insert_missing(self.index, list(docs.values()))
            if there:  # unchanged fields rewrite nothing in the store
                await self.index.bulk_write([UpdateOne({"_id": t}, {"$set": {k: v for k, v in docs[t].items()
                                                                             if k != "_id"}}) for t in there],
                                            ordered=False)
        if items:
            await write_batch(self.items, [UpdateOne({"_id": t}, {"$set": {"rule_id": r}}, upsert=True)
                                           for t, r in items.items()])
        return len(docs) + len(items)

    # ------------------------------------------------------------ queries

    async def _by_words(self, words: list[str], places: dict[str, str]) -> list[str]:
        """The tickets holding every word (and in the places): one indexed query per uncommon word,
        the ids intersected here, then the common words checked in the candidates' ``all_terms``
        (module doc). The store plans ``$all`` over a multikey field as a scan of every document,
        and, hinted, as a scan of every index entry (issue #21, measured); a single word's equality
        walks only its own entries. A word with more than ``WORD_MATCHES`` tickets, or a query of
        common words only, falls back to one ``$all`` query (a scan)."""
        indexed = [w for w in words if w not in COMMON]
        common = [w for w in words if w in COMMON]
        if not indexed:
            return await self._scan(words, places)
        found = await self._by_indexed(indexed, places)
        if not found or not common:
            return found
        needed = set(common)
        held: set[str] = set()
        for doc in await find_in(self.index, found, projection={"all_terms": 1, "terms": 1}):
            if needed.issubset(doc.get("all_terms") or doc.get("terms") or []):  # (older: every term in terms)
                held.add(doc["_id"])
        return [t for t in found if t in held]

    async def _scan(self, words: list[str], places: dict[str, str]) -> list[str]:
        """Common words only: the documents that hold them all (``all_terms``; an older version's in
        ``terms``), a scan bounded by the places."""
        cond = {"$or": [{"all_terms": {"$all": words}}, {"terms": {"$all": words}}], **places}
        return [d["_id"] async for d in self.index.find(cond, {"_id": 1}).limit(MAX_MATCHES + 1)]

    async def _by_indexed(self, words: list[str], places: dict[str, str]) -> list[str]:
        found: list[str] | None = None
        for n, word in enumerate(words):
            cond = {"terms": word, **(places if n == 0 else {})}
            ids = [d["_id"] async for d in self.index.find(cond, {"_id": 1}).limit(WORD_MATCHES + 1)]
            if len(ids) > WORD_MATCHES:
                return [d["_id"] async for d in self.index.find({"terms": {"$all": words}, **places}, {"_id": 1})
                        .limit(MAX_MATCHES + 1)]
            if found is None:
                found = ids
            else:
                have = set(ids)
                found = [t for t in found if t in have]
            if not found:
                return []
        return found or []

    async def _selected(self, q: Query) -> list[str] | None:
        """Ticket ids the index fields select, or None when the query names none of them."""
        words = query_terms(q.text)
        if q.text.strip() and not words:
            return []
        places = {name: value for name, value in (("street", q.street), ("community", q.community)) if value}
        if not words and not places and not q.rule_id:
            return None
        ids: list[str] | None = None
        if q.rule_id:  # the list item's tickets (and those of documents that carry it from before)
            ids = list(dict.fromkeys(
                [d["_id"] async for d in self.items.find({"rule_id": q.rule_id}, {"_id": 1}).limit(MAX_MATCHES + 1)]
                + [d["_id"] async for d in self.index.find({"rule_id": q.rule_id}, {"_id": 1})
                   .limit(MAX_MATCHES + 1)]))
            if len(ids) > MAX_MATCHES:
                raise Invalid(f"more than {MAX_MATCHES} tickets match; narrow the search")
            if (not words and not places) or not ids:
                return ids
        if words:  # (intersected with the list item's tickets below)
            found = await self._by_words(words, places)
        else:  # places: of a few tickets of a list item, or all (intersected below)
            cond: dict[str, Any] = dict(places)
            if ids is not None and len(ids) <= IN_CHUNK:
                cond["_id"] = {"$in": ids}
            found = [d["_id"] async for d in self.index.find(cond, {"_id": 1}).limit(MAX_MATCHES + 1)]
        if len(found) > MAX_MATCHES:
            raise Invalid(f"more than {MAX_MATCHES} tickets match; narrow the search")
        if ids is not None:
            chosen = set(found)
            found = [t for t in ids if t in chosen]
        return found

    def case_filter(self, q: Query, who: Principal, now: datetime) -> dict[str, Any]:
        cond: dict[str, Any] = {}
        unit = scope(who, q.unit_id)
        if unit and who.role == Role.UNIT and not q.assisting and not q.primary:
            cond["$or"] = [{"primary_unit.unit_id": unit}, {"assists.unit_id": unit}]
        elif unit:
            cond["assists.unit_id" if q.assisting else "primary_unit.unit_id"] = unit
        if q.states:
            cond["state"] = q.states[0] if len(q.states) == 1 else {"$in": list(q.states)}
        elif q.open_only:
            cond["state"] = {"$nin": ["CASE_STATE_ARCHIVED", "CASE_STATE_REPORTED"]}
        if q.category:
            cond["category"] = q.category
        if q.lane:
            cond["sla_lanes"] = q.lane
        if q.level is not None:
            cond["supervision_level"] = q.level if q.level else {"$in": [0, None]}
        elif q.min_level:
            cond["supervision_level"] = {"$gte": q.min_level}
        received: dict[str, Any] = {}
        if q.received_from:
            received["$gte"] = q.received_from
        if q.received_to:
            received["$lt"] = q.received_to
        if received:
            cond["received_at"] = received
        due: dict[str, Any] = {}
        if q.overdue:
            due["$lt"] = now
        if q.due_before:
            due["$lt"] = min(q.due_before, due.get("$lt", q.due_before))
        if q.upcoming:
            due["$gte"] = now
        if due:
            due["$ne"] = None
            cond["next_deadline"] = due
        if q.ticket_ids:
            cond["_id"] = {"$in": list(q.ticket_ids)}
        return cond

    async def search(self, q: Query, who: Principal, now: datetime) -> Result:
        if q.sort not in SORTS:
            raise Invalid(f"cannot sort by {q.sort!r}; by: {', '.join(SORTS)}")
        if not 1 <= q.size <= MAX_PAGE or q.page < 1:
            raise Invalid(f"page from 1, size 1..{MAX_PAGE}")
        cond = self.case_filter(q, who, now)
        selected = await self._selected(q)
        if selected is not None:  # at most MAX_MATCHES: the cases in short $in chunks, sorted and paged here
            if "_id" in cond:
                selected = [t for t in selected if t in set(cond["_id"]["$in"])]
                del cond["_id"]
            found: list[Doc] = []
            for start in range(0, len(selected), IN_CHUNK):
                chunk = {**cond, "_id": {"$in": selected[start:start + IN_CHUNK]}}
                found += await self.cases.find(chunk).to_list()
            total = len(found)
            field = SORTS[q.sort]
            found.sort(key=lambda d: (d.get(field) is None, d.get(field) if d.get(field) is not None else 0,
                                      d["_id"]))
            if q.descending:
                found = [d for d in found if d.get(field) is not None][::-1] + \
                    [d for d in found if d.get(field) is None]
            docs = found[(q.page - 1) * q.size:q.page * q.size]
        else:
            total = await self.cases.count_documents(cond)
            order = DESCENDING if q.descending else ASCENDING
            keys = [(SORTS[q.sort], order)] + ([("_id", ASCENDING)] if q.sort != "ticket" else [])
            docs = await self.cases.find(cond).sort(keys).skip((q.page - 1) * q.size).limit(q.size).to_list()
        shown = [d["_id"] for d in docs]
        cards = {d["_id"]: d for d in await find_in(self.index, shown, projection={"terms": 0, "all_terms": 0})}
        for item in await find_in(self.items, shown):
            cards.setdefault(item["_id"], {})["rule_id"] = item["rule_id"]
        rows = []
        for d in docs:
            case = pb.from_doc(d, events_pb2.Case)
            rows.append({"case": case, **card(cards.get(d["_id"]))})
        return Result(rows, total, q.page, q.size)


class SearchIndexer:
    """The consumer that keeps ``case_search``: TicketReceived (texts, place) and TicketAssigned
    (the list item). Publishes nothing."""

    def __init__(self, search: CaseSearch) -> None:
        self.search = search
        self.types = EventTypes(events_pb2.TicketReceived, events_pb2.TicketAssigned)

    def decode(self, record: Record) -> Message:
        return self.types.decode(record)

    async def apply(self, items: list[tuple[Record, Message]]) -> list[Event]:
        await self.search.remember([m for _, m in items])
        return []
