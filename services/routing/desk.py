"""The office's dispatch desk (派单台): pure decisions for the commands on one ticket.

Every write goes through the kit's CommandBus (services/routing/api.py builds the commands):
the state is a :class:`Desk` (routing's record of one ticket: the ticket, its current
assignment, its queue entry, its return, its joint review) and each function here is the
``decide`` of one command, returning the next state and the events, or raising a DomainError.

* 人工派单 ``dispatch``: a ticket in the queue (method manual) gets the office's units;
* 退单 ``receive_return`` (from supervision's ReturnRequested) and ``decide_return``: approved,
  a ReturnDecision(approved) and the next round's TicketAssigned (never the returning unit
  unless ``allow_same_unit``); refused, a ReturnDecision(approved = false), the unit's case resumes;
* 改类 ``recategorize``: the list's decision within the new category, next round;
* 加派 ``sub_dispatch``: a street office sends the ticket on to one of its communities (SubDispatched);
* 联席研判 ``open_review`` / ``decide_review``: the decision fixes the units (next round) and may
  upsert a list item (a new list version, saved in the same transaction).

A re-dispatch is always a TicketAssigned with ``dispatch_round`` + 1: supervision closes the
old case (CLOSURE_REDISPATCHED) and opens the new one. Office dispatches, approved re-dispatches
and recategorisations are kept as labelled examples for ``hotline classify retrain --from-store``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hotline import pb, sla_defaults
from hotline.auth import Principal
from hotline.commands import Decision, DomainError, Illegal, Invalid, NotFound
from hotline.policy import Role
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2, ticket_pb2
from services.routing import core
from services.routing.responsibility import Change, Listing, ListVersion, Rule, apply_change


def dispatch_limit(policy_file: Path | None = None) -> timedelta:
    """派单时限, from arrival in the district: the SLA policy's ``dispatch`` default (the shipped
    policy file, hotline/data/sla_policy.json), not a constant of its own (issue #22);
    5 minutes when the policy names it in days (a desk limit is clock time). The kit reads the figure
    (hotline/sla_defaults.py): routing imports nothing of supervision's."""
    return sla_defaults.clock_time(sla_defaults.load(policy_file), "dispatch") or timedelta(minutes=5)


DISPATCH_LIMIT = dispatch_limit()
SUB_DISPATCH_WORKING_DAYS = 2  # a community's default limit when a street sub-dispatches (加派)

AddWorkingDays = Callable[[datetime, int], datetime]


@dataclass
class Desk:
    """Routing's record of one ticket (the state of the desk's commands)."""

    ticket: ticket_pb2.Ticket
    assigned: events_pb2.TicketAssigned
    queue: routing_pb2.QueueEntry | None = None  # waiting for the office (人工派单)
    ret: routing_pb2.PendingReturn | None = None  # the latest return (退单)
    review: routing_pb2.JointReview | None = None  # the latest joint review (联席研判)
    subs: list[routing_pb2.SubDispatched] = field(default_factory=list)  # 加派
    # saved with the state, not part of it:
    list_after: ListVersion | None = None  # a list change decided with the command
    examples: list[dict[str, Any]] = field(default_factory=list)  # labelled examples for retraining

    @property
    def round(self) -> int:
        return self.assigned.assignment.dispatch_round

    @property
    def primary(self) -> str:
        return self.assigned.assignment.primary_unit.unit_id

    def to_doc(self) -> dict[str, Any]:
        """As the audit trail keeps it."""
        doc: dict[str, Any] = {"ticket_id": self.ticket.ticket_id, "assignment": pb.to_doc(self.assigned.assignment)}
        for name, value in (("queue", self.queue), ("return", self.ret), ("review", self.review)):
            if value is not None:
                doc[name] = pb.to_doc(value)
        if self.subs:
            doc["sub_dispatches"] = [pb.to_doc(s) for s in self.subs]
        if self.list_after is not None:
            doc["list_version"] = self.list_after.listing.list_version
        return doc

    def fresh(self) -> Desk:
        """A copy to decide on: the state loaded stays as it was (the audit's "before")."""
        def copy(message: Any) -> Any:
            if message is None:
                return None
            twin = type(message)()
            twin.CopyFrom(message)
            return twin

        return Desk(copy(self.ticket), copy(self.assigned), copy(self.queue), copy(self.ret), copy(self.review),
                    [copy(s) for s in self.subs])


def queue_entry(ticket: ticket_pb2.Ticket, suggestions: Sequence[tuple[str, Rule | None, str, float]],
                resolve: Callable[[Rule], str], now: datetime) -> routing_pb2.QueueEntry:
    arrived = pb.dt(ticket.received_at) if ticket.HasField("received_at") else now
    return routing_pb2.QueueEntry(
        ticket_id=ticket.ticket_id, title=ticket.title, address=ticket.address,
        suggestions=[routing_pb2.Suggestion(source=source, rule_id=rule.rule_id if rule else "",
                                            category=rule.category if rule else "", label=label,
                                            primary_unit_id=resolve(rule) if rule else "", confidence=confidence)
                     for source, rule, label, confidence in suggestions],
        arrived_at=pb.ts(arrived), dispatch_due=pb.ts(arrived + DISPATCH_LIMIT), queued_at=pb.ts(now))


def _existing(state: Desk | None, ticket_id: str) -> Desk:
    if state is None:
        raise NotFound("ticket", ticket_id)
    return state.fresh()


def _units(router: core.Router, primary: str, assisting: Sequence[str]) -> tuple[events_pb2.Unit,
                                                                                 list[events_pb2.Unit]]:
    units = router.directory.units
    if not primary:
        raise Invalid("primary_unit_id is required")
    unknown = [u for u in (primary, *assisting) if u not in units or u == core.MANUAL_UNIT]
    if unknown:
        raise Invalid(f"unknown handling units: {', '.join(unknown)}")
    return units[primary], [units[u] for u in dict.fromkeys(assisting) if u != primary]


def _reassign(state: Desk, decision: core.Decision, now: datetime) -> events_pb2.TicketAssigned:
    return core.assignment_event(state.ticket, decision, state.round + 1, now)


def _example(state: Desk, category: str, kind: str, now: datetime) -> dict[str, Any]:
    return {"_id": f"{state.ticket.ticket_id}/{kind}/{state.round + 1}", "text": core.classifier_text(state.ticket),
            "category": category, "decided_at": now, "ticket_id": state.ticket.ticket_id, "kind": kind}


def _office_decision(router: core.Router, state: Desk, primary: str, assisting: Sequence[str], category: str,
                     rule_id: str, method: str) -> core.Decision:
    main, helpers = _units(router, primary, assisting)
    lane = ""
    if rule_id:
        rule = next((r for r in router.rules if r.rule_id == rule_id), None)
        if rule is None:
            raise Invalid(f"no list item {rule_id}")
        category = category or rule.category
        lane = rule.lane
    category = category or state.assigned.assignment.category
    if category and category not in router.categories:
        raise Invalid(f"{category!r} is not a category of the list")
    return core.Decision(main, helpers, category, method, 1.0, rule_id, list_version=router.list_version, lane=lane)


def dispatch(state: Desk | None, request: routing_pb2.DispatchRequest, router: core.Router,
             now: datetime) -> Decision[Desk]:
    """人工派单: the office dispatches a queued ticket."""
    desk = _existing(state, request.ticket_id)
    if desk.queue is None:
        raise Illegal(f"ticket {request.ticket_id} is not in the dispatch queue (it went to "
                      f"{desk.primary}, round {desk.round})")
    decision = _office_decision(router, desk, request.primary_unit_id, request.assisting_unit_ids,
                                request.category, request.rule_id, "office")
    desk.assigned = _reassign(desk, decision, now)
    desk.queue = None
    if decision.category:
        desk.examples.append(_example(state or desk, decision.category, "dispatch", now))
    return Decision(desk, events=[desk.assigned], answer=desk.assigned.assignment)


def receive_return(state: Desk | None, event: lifecycle_pb2.ReturnRequested, now: datetime) -> Decision[Desk]:
    """A unit's return request (from hotline.cases.v1), kept for the office. One asked after its
    limit (supervision refuses those already) is refused at once."""
    case = event.case
    desk = _existing(state, case.ticket_id)
    if case.dispatch_round != desk.round:
        raise Illegal(f"return of round {case.dispatch_round}, the ticket is in round {desk.round}")
    requested = event.return_request.requested_at if event.return_request.HasField("requested_at") \
        else event.occurred_at
    desk.ret = routing_pb2.PendingReturn(
        ticket_id=case.ticket_id, dispatch_round=case.dispatch_round, unit_id=case.primary_unit.unit_id,
        reason=event.reason or event.return_request.reason, requested_at=requested,
        status=case_pb2.RETURN_STATUS_REQUESTED)
    if case.HasField("return_due") and pb.dt(requested) > pb.dt(case.return_due):
        reason = f"退单超过时限 (limit {pb.dt(case.return_due).isoformat()})"
        return _refuse(desk, reason, Principal.system("routing"), now)
    return Decision(desk, answer=desk.ret)


def _refuse(desk: Desk, reason: str, actor: Principal, now: datetime) -> Decision[Desk]:
    assert desk.ret is not None
    desk.ret.status = case_pb2.RETURN_STATUS_REFUSED
    desk.ret.decision_reason = reason
    desk.ret.decided_at.CopyFrom(_ts(now))
    event = lifecycle_pb2.ReturnDecision(ticket_id=desk.ret.ticket_id, dispatch_round=desk.ret.dispatch_round,
                                         approved=False, reason=reason, actor=_actor(actor),
                                         decided_at=pb.ts(now))
    return Decision(desk, events=[event], answer=desk.ret)


def _ts(at: datetime) -> Any:
    return pb.ts(at)


def _actor(who: Principal) -> case_pb2.Actor:
    return case_pb2.Actor(subject=who.subject, role=str(who.role), unit_id=who.unit_id)


def decide_return(state: Desk | None, request: routing_pb2.DecideReturnRequest, router: core.Router,
                  actor: Principal, now: datetime) -> Decision[Desk]:
    """退单审核: approve (re-dispatch, round + 1) or refuse (back to the unit, its clock running)."""
    desk = _existing(state, request.ticket_id)
    ret = desk.ret
    if ret is None or ret.status != case_pb2.RETURN_STATUS_REQUESTED:
        raise Illegal(f"ticket {request.ticket_id} has no return waiting for a decision")
    if ret.dispatch_round != desk.round:
        raise Illegal(f"the return is of round {ret.dispatch_round}, the ticket is in round {desk.round}")
    if not request.reason.strip():
        raise Invalid("a reason is required")
    if not request.approved:
        return _refuse(desk, request.reason, actor, now)
    returning = ret.unit_id
    if request.primary_unit_id:
        decision = _office_decision(router, desk, request.primary_unit_id, request.assisting_unit_ids,
                                    request.category, "", "return")
    else:
        decision = router.decide(desk.ticket)
        if request.category:
            decision = _in_category(router, desk.ticket, request.category, "return")
        others = [u for u in decision.assisting if u.unit_id != returning]
        if decision.primary.unit_id == returning and not request.allow_same_unit:
            if not others:
                raise Invalid(f"the list sends this ticket to {returning} again: name the units (primary_unit_id)")
            decision = replace(decision, primary=others[0], assisting=others[1:])
        decision = replace(decision, method="return")
    if decision.primary.unit_id == core.MANUAL_UNIT:
        raise Invalid("the list cannot decide this ticket: name the units (primary_unit_id)")
    if decision.primary.unit_id == returning and not request.allow_same_unit:
        raise Invalid(f"{returning} returned the ticket: re-dispatching to it needs allow_same_unit")
    ret.status = case_pb2.RETURN_STATUS_APPROVED
    ret.decision_reason = request.reason
    ret.decided_at.CopyFrom(_ts(now))
    ret.redispatched_to = decision.primary.unit_id
    approved = lifecycle_pb2.ReturnDecision(ticket_id=ret.ticket_id, dispatch_round=ret.dispatch_round,
                                            approved=True, reason=request.reason, actor=_actor(actor),
                                            decided_at=pb.ts(now))
    if decision.category:
        desk.examples.append(_example(desk, decision.category, "redispatch", now))
    desk.assigned = _reassign(desk, decision, now)
    desk.queue = None
    return Decision(desk, events=[approved, desk.assigned], answer=ret)


def _in_category(router: core.Router, ticket: ticket_pb2.Ticket, category: str, method: str) -> core.Decision:
    try:
        return router.decide_in_category(ticket, category, method)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def recategorize(state: Desk | None, request: routing_pb2.RecategorizeRequest, router: core.Router,
                 now: datetime) -> Decision[Desk]:
    """改类: the list's decision within the new category, as the next dispatch round."""
    desk = _existing(state, request.ticket_id)
    if not request.reason.strip():
        raise Invalid("a reason is required")
    decision = _in_category(router, desk.ticket, request.category, "recategorize")
    if decision.primary.unit_id == core.MANUAL_UNIT:
        raise Invalid(f"category {request.category} needs the place's street, which the ticket does not name: "
                      "dispatch it by hand")
    desk.examples.append(_example(desk, decision.category, "recategorize", now))
    desk.assigned = _reassign(desk, decision, now)
    desk.queue = None
    return Decision(desk, events=[desk.assigned], answer=desk.assigned.assignment)


def sub_dispatch(state: Desk | None, request: routing_pb2.SubDispatchRequest, router: core.Router,
                 actor: Principal, now: datetime, add_working_days: AddWorkingDays) -> Decision[Desk]:
    """加派: the street office handling the ticket sends it on to a community under it."""
    desk = _existing(state, request.ticket_id)
    if actor.role == Role.UNIT and actor.unit_id != desk.primary:
        raise NotFound("ticket", request.ticket_id)
    street = desk.assigned.assignment.primary_unit
    if street.unit_type != events_pb2.UNIT_TYPE_STREET:
        raise Illegal(f"only a street office sub-dispatches; {street.unit_id} is not one")
    if router.directory.parents.get(request.community_unit_id) != street.unit_id:
        raise Invalid(f"{request.community_unit_id} is not a community of {street.unit_id}")
    if any(s.community_unit.unit_id == request.community_unit_id and s.dispatch_round == desk.round
           for s in desk.subs):
        raise Illegal(f"already sub-dispatched to {request.community_unit_id}")
    days = request.working_days or SUB_DISPATCH_WORKING_DAYS
    if days < 1:
        raise Invalid("working_days must be at least 1")
    event = routing_pb2.SubDispatched(
        ticket_id=request.ticket_id, dispatch_round=desk.round, street_unit=street,
        community_unit=router.directory.units[request.community_unit_id], due=pb.ts(add_working_days(now, days)),
        reason=request.reason, dispatched_at=pb.ts(now))
    desk.subs.append(event)
    return Decision(desk, events=[event], answer=event)


def open_review(state: Desk | None, request: routing_pb2.OpenJointReviewRequest, router: core.Router,
                now: datetime) -> Decision[Desk]:
    """联席研判: a contested ticket, the units contesting it."""
    desk = _existing(state, request.ticket_id)
    if desk.review is not None and desk.review.status == routing_pb2.REVIEW_STATUS_OPEN:
        raise Illegal(f"ticket {request.ticket_id} is under joint review already")
    units = list(dict.fromkeys(request.unit_ids))
    if len(units) < 2:
        raise Invalid("a joint review names at least two units")
    _units(router, units[0], units[1:])
    if not request.reason.strip():
        raise Invalid("a reason is required")
    desk.review = routing_pb2.JointReview(ticket_id=request.ticket_id, unit_ids=units, reason=request.reason,
                                          status=routing_pb2.REVIEW_STATUS_OPEN, opened_at=pb.ts(now))
    return Decision(desk, events=[routing_pb2.JointReviewChanged(review=desk.review)], answer=desk.review)


def decide_review(state: Desk | None, request: routing_pb2.DecideJointReviewRequest, router: core.Router,
                  listing: Listing, actor: Principal, now: datetime) -> Decision[Desk]:
    """研判结论: the units (next round) and, optionally, a list item upserted (a new list version)."""
    desk = _existing(state, request.ticket_id)
    review = desk.review
    if review is None or review.status != routing_pb2.REVIEW_STATUS_OPEN:
        raise Illegal(f"ticket {request.ticket_id} has no open joint review")
    if not request.reason.strip():
        raise Invalid("a reason is required")
    category = ""
    if request.HasField("list_change"):
        rule = rule_of(request.list_change)
        try:
            desk.list_after = apply_change(listing, Change("upsert", request.reason, item=rule), actor.subject, now,
                                           router.directory.units)
        except DomainError:
            raise
        review.list_version = desk.list_after.listing.list_version
        category = rule.category
    decision = _office_decision(router, desk, request.primary_unit_id, request.assisting_unit_ids, category, "",
                                "joint_review")
    if desk.list_after is not None:
        decision = replace(decision, list_version=desk.list_after.listing.list_version,
                           rule_id=request.list_change.rule_id, lane=request.list_change.lane)
    review.status = routing_pb2.REVIEW_STATUS_DECIDED
    review.decided_at.CopyFrom(_ts(now))
    review.primary_unit_id = decision.primary.unit_id
    review.assisting_unit_ids[:] = [u.unit_id for u in decision.assisting]
    review.decision_reason = request.reason
    if decision.category:
        desk.examples.append(_example(desk, decision.category, "redispatch", now))
    desk.assigned = _reassign(desk, decision, now)
    desk.queue = None
    return Decision(desk, events=[routing_pb2.JointReviewChanged(review=review), desk.assigned], answer=review)


def rule_of(item: routing_pb2.ListItem) -> Rule:
    if not item.rule_id or not item.category:
        raise Invalid("a list item needs rule_id and category")
    return Rule(item.rule_id, item.category, item.item, tuple(item.keywords), item.primary, tuple(item.assisting),
                item.lane)


def list_item(rule: Rule) -> routing_pb2.ListItem:
    return routing_pb2.ListItem(rule_id=rule.rule_id, category=rule.category, item=rule.item,
                                keywords=list(rule.keywords), primary=rule.primary, assisting=list(rule.assisting),
                                lane=rule.lane)


def upsert_item(current: ListVersion | None, request: routing_pb2.UpsertListItemRequest, units: Any,
                actor: Principal, now: datetime) -> Decision[ListVersion]:
    """A list item added or changed (a new list version with who, when, why)."""
    if current is None:
        raise Illegal("the list is not loaded yet")
    rule = rule_of(request.item)
    new = apply_change(current.listing, Change("upsert", request.reason, item=rule), actor.subject, now, units)
    saved = new.listing.get(rule.rule_id)
    assert saved is not None
    return Decision(new, answer=list_item(saved), audit={"list_version": new.listing.list_version})
