"""Duplicate merging (并单): the pure part. No I/O.

The office merges tickets about one event under one parent case (:func:`merge`); when the
parent closes, each merged case closes with the parent's result through the case lifecycle
(cases/lifecycle.py ``Action.CLOSE_MERGED``, closure ``CLOSURE_MERGED``; a command keyed by
child and parent, escalation_store.py, so a replay closes nothing twice). Suggestions
(:func:`suggest`) rank the tickets of the same street near in time by text similarity (the
early warnings' measure) and place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hotline import pb
from hotline.auth import Principal
from hotline.commands import Decision, Illegal, Invalid, NotFound
from hotline.v1 import events_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.levels.escalation import ARCHIVED, Supervised, actor_of
from services.supervision.warnings.warnings import Fact, similarity

MAX_CHILDREN = 50
SUGGEST_DAYS = 7  # tickets within a week of each other
SAME_ADDRESS_BONUS = 0.3


def merge(state: Supervised | None, r: sv.MergeTicketsRequest, actor: Principal, now: datetime) -> Decision[Supervised]:
    """The parent (``state``, with ``children`` loaded) takes the tickets under it."""
    if state is None:
        raise NotFound("case", r.parent_ticket_id)
    wanted = list(dict.fromkeys(t.strip() for t in r.ticket_ids if t.strip()))
    if not wanted or len(wanted) > MAX_CHILDREN:
        raise Invalid(f"merge 1-{MAX_CHILDREN} tickets")
    if r.parent_ticket_id in wanted:
        raise Invalid("a ticket is not merged under itself")
    if not r.reason.strip():
        raise Invalid("a reason is required")
    parent = state.supervision
    if state.case.state == ARCHIVED:
        raise Illegal(f"the parent case {r.parent_ticket_id} is archived")
    if parent.merged_into:
        raise Illegal(f"{r.parent_ticket_id} is itself merged under {parent.merged_into}")
    out = Supervised(events_pb2.Case(), sv.CaseSupervision())
    out.case.CopyFrom(state.case)
    out.supervision.CopyFrom(parent)
    out.supervision.ticket_id = r.parent_ticket_id
    added = []
    for tid in wanted:
        child = state.children.get(tid)
        if child is None:
            raise NotFound("case", tid)
        if child.supervision.merged_into == r.parent_ticket_id:
            continue  # merged before
        if child.supervision.merged_into:
            raise Illegal(f"{tid} is already merged under {child.supervision.merged_into}")
        if child.supervision.merged:
            raise Illegal(f"{tid} has tickets merged under it; merge them under {r.parent_ticket_id} instead")
        if child.case.state == ARCHIVED:
            raise Illegal(f"{tid} is archived")
        moved = Supervised(child.case, sv.CaseSupervision())
        moved.supervision.CopyFrom(child.supervision)
        moved.supervision.ticket_id = tid
        moved.supervision.merged_into = r.parent_ticket_id
        moved.supervision.revision += 1
        out.children[tid] = moved
        added.append(tid)
    if not added:
        raise Illegal(f"every ticket named is already merged under {r.parent_ticket_id}")
    out.supervision.merged.extend(added)
    out.supervision.revision += 1
    snapshot = sv.CaseSupervision()
    snapshot.CopyFrom(out.supervision)
    event = sv.SupervisionUpdated(supervision=snapshot, change="merged", actor=actor_of(actor), occurred_at=pb.ts(now))
    return Decision(out, events=[event], answer=snapshot, audit={"detail": f"并单 {', '.join(added)}"})


@dataclass(frozen=True)
class Suggestion:
    ticket_id: str
    score: float
    text_similarity: float
    same_address: bool


def suggest(fact: Fact, candidates: Sequence[Fact], limit: int = 10, threshold: float = 0.2) -> list[Suggestion]:
    """Tickets that may be about the same event as ``fact``: same street, within
    SUGGEST_DAYS, scored by text similarity plus a bonus for the same normalised address."""
    out = []
    for other in candidates:
        if other.ticket_id == fact.ticket_id or other.street != fact.street or \
                abs((other.at - fact.at).total_seconds()) > SUGGEST_DAYS * 86400:
            continue
        text = similarity(fact.text, other.text)
        same = bool(fact.address) and fact.address == other.address
        score = round(min(1.0, text + (SAME_ADDRESS_BONUS if same else 0.0)), 3)
        if score >= threshold:
            out.append(Suggestion(other.ticket_id, score, round(text, 3), same))
    return sorted(out, key=lambda s: (-s.score, s.ticket_id))[:limit]
