"""The resolved-case read model (办结案例) from the events: what a unit sees of how a similar problem was
solved. Pure: one event -> the ``$set`` / ``$addToSet`` updates of ``kb_cases`` and ``kb_articles``.

A case is *resolved* once its reply passed the district review (审核通过, reported to the city); its
evaluation (回访) is added when it comes. Texts are kept masked (phones, identity numbers, names the
caller gave); the caller's contact never reaches metrics' topics and is never stored here. Every
update only ``$set``s values taken from the event (or adds to a set), so a replay changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from hotline import pb
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2
from services.metrics.knowledge.text import mask
from services.metrics.projection import REPLY_RESULTS, RESOLUTIONS, SATISFACTIONS, TICKET_TYPES

CONTENT_CHARS = 2000
POOR_SATISFACTION = frozenset({case_pb2.SATISFACTION_UNSATISFIED})
POOR_RESOLUTION = frozenset({case_pb2.RESOLUTION_UNRESOLVED})


@dataclass(frozen=True)
class Update:
    collection: str  # "kb_cases" | "kb_articles"
    key: str
    set: dict[str, Any] = field(default_factory=dict)
    add: dict[str, Any] = field(default_factory=dict)  # $addToSet
    upsert: bool = True
    match: dict[str, Any] = field(default_factory=dict)  # more conditions on the document


def _t(stamp: Any) -> datetime | None:
    return pb.dt(stamp) if stamp.seconds or stamp.nanos else None


def updates(event: Message) -> list[Update]:
    if isinstance(event, events_pb2.TicketReceived):
        t = event.ticket
        return [Update("kb_cases", t.ticket_id, {
            "title": mask(t.title)[:200], "content": mask(t.content)[:CONTENT_CHARS],
            "ticket_type": TICKET_TYPES.get(t.ticket_type, ""), "reported_category": t.category,
            "received_at": _t(t.received_at)})]
    if isinstance(event, events_pb2.TicketAssigned):
        a = event.assignment
        return [Update("kb_cases", a.ticket_id, {
            "category": a.category, "list_item": a.rule_id, "unit_id": a.primary_unit.unit_id,
            "unit_name": a.primary_unit.name, "assisting": [u.unit_id for u in a.assisting_units],
            "dispatch_round": a.dispatch_round})]
    case = getattr(event, "case", None)
    if not isinstance(case, events_pb2.Case) or not case.ticket_id:
        return []
    tid = case.ticket_id
    if isinstance(event, lifecycle_pb2.CaseReplied):
        r = event.reply
        out = [Update("kb_cases", tid, {
            "reply_text": mask(r.text)[:CONTENT_CHARS], "reply_explanation": mask(r.explanation)[:CONTENT_CHARS],
            "reply_result": REPLY_RESULTS.get(r.result, ""), "replied_at": _t(r.replied_at),
            "article": {"article_id": r.article.article_id, "version": r.article.version,
                        "title": r.article.title} if r.article.article_id else None})]
        if r.article.article_id:  # how often an article answered (知识库使用次数)
            out.append(Update("kb_articles", r.article.article_id, add={"answered": tid}, upsert=False))
        return out
    if isinstance(event, lifecycle_pb2.ReviewDecided) and event.passed:
        return [Update("kb_cases", tid, {"resolved": True, "resolved_at": _t(event.occurred_at) or _t(
            case.reported_at), "ticket_type": TICKET_TYPES.get(case.ticket_type, ""),
                                         "unit_id": case.primary_unit.unit_id,
                                         "unit_name": case.primary_unit.name})]
    if isinstance(event, lifecycle_pb2.ReviewDecided) or (
            isinstance(event, lifecycle_pb2.RedoDecided) and event.redo):
        return [Update("kb_cases", tid, {"resolved": False})]  # sent back: not a model answer (yet)
    if isinstance(event, lifecycle_pb2.CaseEvaluated):
        e = event.evaluation
        out = [Update("kb_cases", tid, {"evaluation": {
            "resolution": RESOLUTIONS.get(e.resolution, ""), "satisfaction": SATISFACTIONS.get(e.satisfaction, ""),
            "comment": mask(e.comment)[:500]}})]
        article = case.reply.article
        if article.article_id and (e.satisfaction in POOR_SATISFACTION or e.resolution in POOR_RESOLUTION):
            out.append(Update("kb_articles", article.article_id, {"flagged": True}, add={"flags": {
                "ticket_id": tid, "version": article.version, "at": _t(e.evaluated_at) or _t(event.occurred_at),
                "satisfaction": SATISFACTIONS.get(e.satisfaction, ""),
                "resolution": RESOLUTIONS.get(e.resolution, "")}}, upsert=False,
                match={"version": article.version}))  # once reviewed (a newer version), old answers flag nothing
        return out
    if isinstance(event, lifecycle_pb2.CaseClosed):
        if event.closure == case_pb2.CLOSURE_REDISPATCHED:
            return []
        return [Update("kb_cases", tid, {"closed_at": _t(case.closed_at) or _t(event.occurred_at),
                                         "closure": case_pb2.Closure.Name(event.closure)})]
    return []
