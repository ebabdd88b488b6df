"""The knowledge base's HTTP API (metrics): articles (read by the office and units, saved by the office
through the command path), search, and a case's similar resolved cases with the matching articles.
Every route has its entry in hotline/policy.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query

from hotline import auth
from hotline.api import idempotency_key
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.clock import Clock
from hotline.commands import Invalid, NotFound
from hotline.policy import Role
from services.metrics.commands import SaveArticle
from services.metrics.knowledge import articles
from services.metrics.knowledge.service import Knowledge, case_view
from services.metrics.knowledge.store import KnowledgeStore

KINDS = ("case", "article")


def http_routes(store: KnowledgeStore, knowledge: Knowledge, bus: MessageBus, clock: Clock) -> APIRouter:
    """``bus``: metrics' MessageBus (SaveArticle, services/metrics/commands.py)."""
    api = APIRouter(tags=["knowledge"])

    @api.get("/knowledge/articles", summary="知识库: articles, filtered (q searches title, question and answer)")
    async def list_articles(q: str = "", category: str = "", unit_id: str = "",
                            flagged: bool = Query(False, description="only articles flagged for review (待复核)"),
                            due: bool = Query(False, description="only articles whose review date has come"),
                            who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        if q.strip():
            found = await knowledge.search(q, "article", 50, category, unit_id)
            docs = list((await store.articles_by_id([a["article_id"] for a in found])).values())
            order = {a["article_id"]: i for i, a in enumerate(found)}
            docs.sort(key=lambda d: order.get(d["_id"], 0))
        else:
            docs = [d for d in await store.all_articles()
                    if (not category or d.get("category") == category) and (not unit_id or d.get("unit_id") == unit_id)]
        today = clock.now().date()
        out = []
        for d in docs:
            if (flagged and not d.get("flagged")) or (due and not articles.review_due(d, today)):
                continue
            out.append(articles.public(d) | {"review_due": articles.review_due(d, today)})
        return {"articles": out}

    @api.get("/knowledge/articles/{article_id}", summary="One article, its current version")
    async def get_article(article_id: str, version: int = Query(0, ge=0, description="0: the current one"),
                          who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        doc = await store.load(article_id) if not version else await store.article_version(article_id, version)
        if doc is None:
            raise NotFound("article", article_id if not version else f"{article_id} v{version}")
        return articles.public(doc) | {"review_due": articles.review_due(doc, clock.now().date())}

    @api.get("/knowledge/articles/{article_id}/versions", summary="Every version of an article, newest first")
    async def article_versions(article_id: str, who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        versions = await store.article_versions(article_id)
        if not versions:
            raise NotFound("article", article_id)
        return {"article_id": article_id, "versions": [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()
             if k in ("version", "title", "saved_by", "saved_at", "reason", "review_on", "status")} for d in versions]}

    @api.put("/knowledge/articles/{article_id}", summary="Save a new version of an article (office); version 1 "
                                                         "creates it. Saving is the review: flags are cleared",
             description="Body: the article (title, question, answer, where, hours, materials, links [{label, url, "
                         "kind: link|qr|sms}], category, unit_id, unit_name, review_on YYYY-MM-DD, status), "
                         "expected_version (0 for a new article) and reason. Header Idempotency-Key.")
    async def save_article(article_id: str = Path(..., max_length=64), body: dict[str, Any] = Body(...),
                           who: Principal = Depends(auth.principal),
                           key: str = Depends(idempotency_key)) -> dict[str, Any]:
        expected, reason = body.get("expected_version", 0), str(body.get("reason", "") or "")
        if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
            raise Invalid("expected_version must be a version number (0 for a new article)")
        article = body.get("article", body)
        if not isinstance(article, dict):
            raise Invalid("article must be an object (title, answer, unit_id, review_on, ...)")
        answer: dict[str, Any] = await bus.handle(SaveArticle(article, who, key, ref=article_id, reason=reason,
                                                              expected_version=expected))
        return answer

    @api.get("/knowledge/search", summary="Search resolved cases or articles in Chinese (jieba words, BM25), "
                                          "filtered by category, unit and list item")
    async def search(q: str = Query(..., min_length=1, max_length=2000), kind: str = "case", category: str = "",
                     unit_id: str = "", list_item: str = "", limit: int = Query(10, ge=1, le=50),
                     who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        if kind not in KINDS:
            raise Invalid(f"kind must be one of {', '.join(KINDS)}")
        return {"kind": kind, "results": await knowledge.search(q, kind, limit, category, unit_id, list_item)}

    @api.get("/knowledge/cases/{ticket_id}/similar",
             summary="The 5 most similar resolved cases (replies and evaluations, personal data masked, no caller "
                     "contact) and the matching articles of a case; a unit: of its own cases only")
    async def similar(ticket_id: str, category: str = "", unit_id: str = "",
                      limit: int = Query(5, ge=1, le=20),
                      who: Principal = Depends(auth.principal)) -> dict[str, Any]:
        case = await store.case(ticket_id)
        if case is None or (who.role == Role.UNIT and who.unit_id not in (
                case.get("unit_id"), *case.get("assisting", []))):
            raise NotFound("case", ticket_id)
        answer = await knowledge.similar(case, limit, category=category, unit=unit_id)
        answer["this_case"] = {k: v for k, v in case_view(case).items() if k in ("title", "category", "list_item")}
        return answer

    return api
