"""Routing's pure domain logic: who handles a ticket (派单).

The decision follows the district's first-responsible list (首接负责主协办清单): each entry
names a category, keywords, a primary unit (主办) and assisting units (协办). ``@street``
stands for the street office (街道) whose jurisdiction the place lies in (属地管理);
``@community`` for its community (社区), or the street when the community is not known.

Order of evidence: the city's own category; then two or more of the list's keywords; then
the trained classifier when its calibrated confidence clears its threshold (its label becomes
a list category through the versioned label map, data/label_map.json); then a single
keyword (one word like 收费 is weak evidence); then the street of the address. Failing all,
the ticket goes to manual dispatch (人工派单) by the hotline office. Between items with as many
keyword hits, the one whose matched keywords are longer (more specific) wins, then list order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from hotline import pb
from hotline.directory import DIRECTORY_FILE, Directory, Location, Place
from hotline.v1 import events_pb2, ticket_pb2
from services.routing.classifier.label_map import LabelMap
from services.routing.responsibility import COMMUNITY, STREET, Listing, Rule, load_listing

__all__ = ["COMMUNITY", "STREET", "Decision", "Directory", "Location", "Place", "Router", "Rule", "classifier_text"]

DATA_DIR = Path(__file__).parent / "data"
MANUAL_UNIT = "HOTLINE"  # 区12345热线办
STRONG_KEYWORD_HITS = 2  # keyword hits that outrank the classifier
METHODS = ("city_category", "keyword", "classifier", "street", "manual",  # how a decision was made
           "office", "return", "recategorize", "joint_review")  # the office's desk (services/routing/desk.py)


class Prediction(Protocol):
    """What routing needs from a classifier's prediction (services/routing/classifier)."""

    @property
    def label(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def abstained(self) -> bool: ...
    @property
    def model_version(self) -> str: ...


def classifier_text(ticket: ticket_pb2.Ticket) -> str:
    """What the classifier reads of a ticket: title and body, as in the training columns."""
    return f"{ticket.title}\n{ticket.content}"


@dataclass(frozen=True)
class Decision:
    primary: events_pb2.Unit
    assisting: list[events_pb2.Unit]
    category: str
    method: str
    confidence: float
    rule_id: str = ""
    model_version: str = ""
    classifier_label: str = ""  # the classifier's own label when it was asked, used or not
    list_version: str = ""  # version of the list the decision followed
    lane: str = ""  # the list item's limits lane (时限类别), for the SLA policy


class Router:
    def __init__(self, directory: Directory, rules: Sequence[Rule], aliases: Mapping[str, str],
                 list_version: str = "", label_map: LabelMap | None = None) -> None:
        self.directory = directory
        self.rules = list(rules)
        self.aliases = dict(aliases)  # the city's own category names (not the classifier's labels)
        self.list_version = list_version
        self.categories = {r.category for r in rules}
        self.label_map = label_map or LabelMap.load()
        for rule in rules:
            for unit in (rule.primary, *rule.assisting):
                if unit not in (STREET, COMMUNITY) and unit not in directory.units:
                    raise ValueError(f"rule {rule.rule_id} names unknown unit {unit}")
        self._by_category: dict[str, list[int]] = {}
        by_keyword: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            self._by_category.setdefault(rule.category, []).append(index)
            for keyword in dict.fromkeys(rule.keywords):
                by_keyword.setdefault(keyword, []).append(index)
        self._by_first: dict[str, list[tuple[str, list[int]]]] = {}  # first character -> (keyword, rule indexes)
        for keyword, indexes in by_keyword.items():
            self._by_first.setdefault(keyword[0], []).append((keyword, indexes))

    @classmethod
    def from_listing(cls, directory: Directory, listing: Listing, label_map: LabelMap | None = None) -> Router:
        """``label_map``: default data/label_map.json (a label whose category the list lacks is not followed)."""
        return cls(directory, listing.items, listing.category_aliases, listing.list_version, label_map)

    @classmethod
    def from_files(cls, data_dir: Path = DATA_DIR, directory_file: Path = DIRECTORY_FILE) -> Router:
        directory = Directory.from_file(directory_file)  # the district's directory: kit data (hotline/data/)
        listing = load_listing(data_dir / "responsibilities.json")
        label_map = LabelMap.load(data_dir / "label_map.json")
        label_map.check({r.category for r in listing.items})  # every category it names must be on the list
        return cls.from_listing(directory, listing, label_map)

    def category_of(self, label: str) -> str | None:
        if label in self.categories:
            return label
        return self.aliases.get(label)

    def classifier_category(self, label: str, ticket: ticket_pb2.Ticket) -> str | None:
        """The list category of a classifier label for this ticket (label map, with refinements)."""
        category = self.label_map.category(label, classifier_text(ticket))
        return category if category in self.categories else None

    def needs_classifier(self, ticket: ticket_pb2.Ticket) -> bool:
        if self.category_of(ticket.category) is not None:
            return False
        best = self._best(self._scores(self._text(ticket)))
        return best is None or best[1] < STRONG_KEYWORD_HITS

    def decide(self, ticket: ticket_pb2.Ticket, prediction: Prediction | None = None) -> Decision:
        decision = replace(self._decide(ticket, prediction), list_version=self.list_version)
        if prediction is None:
            return decision
        return replace(decision, classifier_label=prediction.label,
                       model_version=decision.model_version or prediction.model_version)

    def decide_in_category(self, ticket: ticket_pb2.Ticket, category: str, method: str) -> Decision:
        """The decision for ``ticket`` within ``category`` (the office recategorised it)."""
        if category not in self.categories:
            raise ValueError(f"{category!r} is not a category of the list")
        rule = self._in_category(self._scores(self._text(ticket)), category)
        decision = self._from_rule(rule, self.directory.locate(ticket), method, 1.0)
        return replace(decision, list_version=self.list_version)

    def suggest(self, ticket: ticket_pb2.Ticket, prediction: Prediction | None = None,
                limit: int = 3) -> list[tuple[str, Rule | None, str, float]]:
        """Suggestions for the office (人工派单): (source, list item, classifier label, confidence),
        best first: the classifier's label (even abstaining) with its category's best item, then
        the items with most keyword hits."""
        scores = self._scores(self._text(ticket))
        out: list[tuple[str, Rule | None, str, float]] = []
        if prediction is not None:
            category = self.classifier_category(prediction.label, ticket)
            rule = self._in_category(scores, category) if category else None
            out.append(("classifier", rule, prediction.label, prediction.confidence))
        ranked = sorted(scores, key=lambda i: (-scores[i][0], -scores[i][1], i))
        total = max((scores[i][0] for i in ranked), default=1)
        for index in ranked:
            if len(out) >= limit:
                break
            if all(r is None or r.rule_id != self.rules[index].rule_id for _, r, _, _ in out):
                out.append(("list", self.rules[index], "", scores[index][0] / total))
        return out[:limit]

    def _decide(self, ticket: ticket_pb2.Ticket, prediction: Prediction | None) -> Decision:
        scores = self._scores(self._text(ticket))
        location = self.directory.locate(ticket)
        category = self.category_of(ticket.category)
        if category:
            return self._from_rule(self._in_category(scores, category), location, "city_category", 1.0)
        best = self._best(scores)
        hits = best[1] if best else 0
        if best and hits >= STRONG_KEYWORD_HITS:
            return self._from_rule(best[0], location, "keyword", min(1.0, 0.5 + 0.15 * hits))
        if prediction and not prediction.abstained and (category := self.classifier_category(prediction.label, ticket)):
            rule = self._in_category(scores, category)
            return replace(self._from_rule(rule, location, "classifier", prediction.confidence),
                           model_version=prediction.model_version)
        if best:
            return self._from_rule(best[0], location, "keyword", 0.5 + 0.15 * hits)
        if location.street:
            return Decision(self.directory.units[location.street], [], ticket.category, "street", 0.5)
        return Decision(self.directory.units[MANUAL_UNIT], [], ticket.category, "manual", 0.0)

    def _from_rule(self, rule: Rule, location: Location, method: str, confidence: float) -> Decision:
        def resolve(unit: str) -> str | None:
            if unit == STREET:
                return location.street
            if unit == COMMUNITY:
                return location.community or location.street
            return unit

        primary = resolve(rule.primary)
        assisting = [u for u in (resolve(a) for a in rule.assisting) if u]
        if primary is None and rule.primary == STREET:  # a street matter, but no street we know: a department
            place_units = (events_pb2.UNIT_TYPE_STREET, events_pb2.UNIT_TYPE_COMMUNITY)
            others = [u for u in assisting if self.directory.units[u].unit_type not in place_units]
            primary = others[0] if others else None
        if primary is None:  # nowhere to send it: the hotline office dispatches by hand
            primary, method = MANUAL_UNIT, "manual"
        assisting = [u for u in dict.fromkeys(assisting) if u != primary]
        return Decision(
            self.directory.units[primary],
            [self.directory.units[u] for u in assisting],
            rule.category,
            method,
            confidence,
            rule.rule_id,
            lane=rule.lane,
        )

    def _scores(self, text: str) -> dict[int, tuple[int, int]]:
        """Per rule index: (keywords found, their total length)."""
        scores: dict[int, tuple[int, int]] = {}
        for keyword, indexes in (k for ch in set(text) for k in self._by_first.get(ch, ())):
            if keyword in text:
                for i in indexes:
                    hits, length = scores.get(i, (0, 0))
                    scores[i] = (hits + 1, length + len(keyword))
        return scores

    def _best(
        self, scores: Mapping[int, tuple[int, int]], among: Sequence[int] | None = None
    ) -> tuple[Rule, int] | None:
        """The rule with most hits, then longest matched keywords, then first in the list."""
        candidates = [i for i in (among if among is not None else scores) if i in scores]
        if not candidates:
            return None
        index = min(candidates, key=lambda i: (-scores[i][0], -scores[i][1], i))
        return self.rules[index], scores[index][0]

    def _in_category(self, scores: Mapping[int, tuple[int, int]], category: str) -> Rule:
        """The category's best matching item, else its first (its default)."""
        indexes = self._by_category[category]
        best = self._best(scores, indexes)
        return best[0] if best else self.rules[indexes[0]]

    @staticmethod
    def _text(ticket: ticket_pb2.Ticket) -> str:
        return f"{ticket.title} {ticket.content}"


def assignment_event(
    ticket: ticket_pb2.Ticket, decision: Decision, dispatch_round: int, at: datetime
) -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(
            ticket_id=ticket.ticket_id,
            primary_unit=decision.primary,
            assisting_units=decision.assisting,
            category=decision.category,
            method=decision.method,
            confidence=decision.confidence,
            model_version=decision.model_version,
            rule_id=decision.rule_id,
            dispatch_round=dispatch_round,
            assigned_at=pb.ts(at),
            classifier_label=decision.classifier_label,
            list_version=decision.list_version,
            lane=decision.lane,
        ),
        ticket_type=ticket.ticket_type,
        urgency=ticket.urgency,
        received_at=ticket.received_at,
        tags=list(ticket.tags),
        time_limit_working_days=ticket.time_limit_working_days,
        street=ticket.street,
        city_ticket_id=ticket.city_ticket_id if ticket.source == "city" else "",
        enterprise=ticket.caller.enterprise,
        source=ticket.source,
    )
