"""The knowledge base inside metrics: the consumer that keeps the case read model from the events, the
indexer that follows the store into the search index, and the queries the API answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message

from hotline.envelope import Event, Record
from hotline.logging import get_logger
from hotline.mongo import Doc
from services.metrics import projection
from services.metrics.knowledge import cases
from services.metrics.knowledge.index import Hit, IndexDoc, SearchIndex
from services.metrics.knowledge.store import KnowledgeStore
from services.metrics.knowledge.text import mask, words
from services.metrics.kpi import REPLY_RESULTS, RESOLUTIONS, SATISFACTIONS

log = get_logger(__name__)
OVERLAP = timedelta(seconds=5)  # writes of concurrent batches may carry slightly older stamps: read again
EXCERPT = 160


class KnowledgeProjection:
    """Consumer (its own group on the three event topics): events -> kb_cases and article flags."""

    def __init__(self, store: KnowledgeStore) -> None:
        self.store = store

    def decode(self, record: Record) -> Message:
        return projection.decode(record)

    async def apply(self, items: list[tuple[Record, Message]]) -> list[Event]:
        await self.store.apply([u for _, m in items for u in cases.updates(m)])
        return []


def case_doc(d: Doc) -> IndexDoc:
    evaluation = d.get("evaluation") or {}
    answer = [*words(d.get("reply_text", "")), *words(d.get("reply_explanation", "")),
              *words(evaluation.get("comment", ""))]
    return IndexDoc(d["_id"], "case", words(d.get("title", "")), words(d.get("content", "")), answer,
                    d.get("category", ""), d.get("unit_id", ""), d.get("list_item", ""))


def article_doc(d: Doc) -> IndexDoc:
    body = " ".join([d.get("question", ""), d.get("where", ""), d.get("hours", ""), *d.get("materials", [])])
    return IndexDoc(d["_id"], "article", words(d.get("title", "")), words(body), words(d.get("answer", "")),
                    d.get("category", ""), d.get("unit_id", ""))


class Indexer:
    """Follows kb_cases (resolved ones) and kb_articles (active ones) into the search index: all at
    start, then what changed since the last look, every ``every_seconds``."""

    def __init__(self, store: KnowledgeStore, index: SearchIndex | None = None, every_seconds: float = 1.0) -> None:
        self.store = store
        self.index = index or SearchIndex()
        self.every = every_seconds
        self.since: dict[str, datetime | None] = {"kb_cases": None, "kb_articles": None}

    def _apply(self, collection: str, docs: Sequence[Doc]) -> None:
        put: list[IndexDoc] = []
        delete: list[str] = []
        for d in docs:
            if collection == "kb_cases":
                keep = bool(d.get("resolved")) and bool(d.get("title") or d.get("content"))
                build = case_doc
            else:
                keep = d.get("status", "active") == "active" and bool(d.get("title"))
                build = article_doc
            if keep:
                put.append(build(d))
            else:
                delete.append(d["_id"])
        self.index.apply(put, delete)

    async def step(self) -> int:
        """One look at the store; returns the documents read."""
        n = 0
        for collection in ("kb_cases", "kb_articles"):
            since = self.since[collection]
            docs = await self.store.changed_since(collection, since - OVERLAP if since else None, limit=0,
                                                  ever_resolved=collection == "kb_cases")
            if docs:
                await asyncio.to_thread(self._apply, collection, docs)
                self.since[collection] = max(d["updated_at"] for d in docs)
                n += len(docs)
        return n

    async def run_forever(self) -> None:
        while True:
            try:
                await self.step()
            except Exception as exc:  # the index is a cache of the store: try again at the next look
                log.warning("knowledge indexer step failed", error=repr(exc))
            await asyncio.sleep(self.every)


def _when(value: Any) -> str:
    return value.replace(tzinfo=value.tzinfo or UTC).isoformat() if isinstance(value, datetime) else ""


def case_view(d: Doc, score: float = 0.0) -> dict[str, Any]:
    """A resolved case as another unit may see it: masked texts, no caller, no address."""
    evaluation = d.get("evaluation") or {}
    content = mask(d.get("content", ""))
    return {
        "ticket_id": d["_id"], "title": mask(d.get("title", "")),
        "excerpt": content[:EXCERPT] + ("…" if len(content) > EXCERPT else ""),
        "category": d.get("category", ""), "list_item": d.get("list_item", ""),
        "unit_id": d.get("unit_id", ""), "unit_name": d.get("unit_name", ""),
        "reply": mask(d.get("reply_text", "")), "reply_result": REPLY_RESULTS.get(d.get("reply_result", ""), ""),
        "resolution": RESOLUTIONS.get(evaluation.get("resolution", ""), ""),
        "satisfaction": SATISFACTIONS.get(evaluation.get("satisfaction", ""), ""),
        "resolved_at": _when(d.get("resolved_at")), "article": d.get("article") or None,
        "score": round(score, 3),
    }


def article_view(d: Doc, score: float = 0.0) -> dict[str, Any]:
    keys = ("article_id", "version", "title", "question", "answer", "where", "hours", "materials", "links",
            "category", "unit_id", "unit_name", "review_on", "status", "flagged")
    return {**{k: d.get(k) for k in keys}, "score": round(score, 3)}


class Knowledge:
    """What the API asks: searches over the index, documents from the store."""

    def __init__(self, store: KnowledgeStore, indexer: Indexer) -> None:
        self.store = store
        self.indexer = indexer

    async def _hits(self, text: str, kind: str, limit: int, **filters: Any) -> list[Hit]:
        return await asyncio.to_thread(self.indexer.index.search, text, kind, limit, **filters)

    async def search(self, text: str, kind: str, limit: int = 10, category: str = "", unit: str = "",
                     list_item: str = "", exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
        hits = await self._hits(text, kind, limit, category=category, unit=unit, list_item=list_item,
                                exclude=list(exclude))
        ids = [h.doc_id for h in hits]
        if kind == "case":
            found = await self.store.cases_by_id(ids)
            return [case_view(found[h.doc_id], h.score) for h in hits if h.doc_id in found]
        arts = await self.store.articles_by_id(ids)
        return [article_view(arts[h.doc_id], h.score) for h in hits if h.doc_id in arts]

    async def similar(self, case: Doc, limit: int = 5, articles: int = 3, category: str = "",
                      unit: str = "") -> dict[str, Any]:
        """The most similar resolved cases (not this one) and the matching articles of a case."""
        text = f"{case.get('title', '')}\n{case.get('content', '')}"
        return {
            "ticket_id": case["_id"], "ticket_type": case.get("ticket_type", ""),
            "category": case.get("category", "") or case.get("reported_category", ""),
            "cases": await self.search(text, "case", limit, category, unit, exclude=[case["_id"]]),
            "articles": await self.search(text, "article", articles),
            "indexed": len(self.indexer.index),
        }
