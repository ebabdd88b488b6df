"""Routing's pure domain logic: who handles a ticket (派单).

The decision follows the district's first-responsible list (首接负责主协办清单): each entry
names a category, keywords, a primary unit (主办) and assisting units (协办). ``@street``
stands for the street office (街道) whose jurisdiction the address lies in (属地管理).

Order of evidence: the city's own category; then two or more of the list's keywords; then
the trained classifier when its calibrated confidence clears its threshold (its label becomes
a list category through the versioned label map, data/label_map.json); then a single
keyword (one word like 收费 is weak evidence); then the street of the address. Failing all,
the ticket goes to manual dispatch (人工派单) by the hotline office.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from hotline.v1 import events_pb2, ticket_pb2
from services.routing.classifier.label_map import LabelMap

DATA_DIR = Path(__file__).parent / "data"
STREET = "@street"
MANUAL_UNIT = "HOTLINE"  # 区12345热线办
STRONG_KEYWORD_HITS = 2  # keyword hits that outrank the classifier
METHODS = ("city_category", "keyword", "classifier", "street", "manual")  # how a decision was made


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
class Rule:
    rule_id: str
    category: str
    item: str
    keywords: tuple[str, ...]
    primary: str
    assisting: tuple[str, ...]

    def hits(self, text: str) -> int:
        return sum(1 for k in self.keywords if k in text)


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


class Directory:
    """Units (承办单位) and the jurisdiction gazetteer (place name -> street office)."""

    def __init__(self, units: list[dict[str, Any]], gazetteer: dict[str, str]) -> None:
        self.units = {
            u["unit_id"]: events_pb2.Unit(
                unit_id=u["unit_id"], name=u["name"], unit_type=events_pb2.UnitType.Value(u["unit_type"])
            )
            for u in units
        }
        # longest names first, so "石门坎东路" wins over "石门坎"
        self.places = sorted(gazetteer.items(), key=lambda kv: -len(kv[0]))

    def street_of(self, ticket: ticket_pb2.Ticket) -> str | None:
        for text in (ticket.street, ticket.address):
            for place, unit_id in self.places:
                if text and place in text:
                    return unit_id
        return None


class Router:
    def __init__(self, directory: Directory, rules: list[Rule], aliases: dict[str, str],
                 label_map: LabelMap | None = None) -> None:
        self.directory = directory
        self.rules = rules
        self.aliases = aliases  # the city's own category names (not the classifier's labels)
        self.categories = {r.category for r in rules}
        self.label_map = label_map or LabelMap.load()
        for rule in rules:
            for unit in (rule.primary, *rule.assisting):
                if unit != STREET and unit not in directory.units:
                    raise ValueError(f"rule {rule.rule_id} names unknown unit {unit}")

    @classmethod
    def from_files(cls, data_dir: Path = DATA_DIR) -> Router:
        directory = json.loads((data_dir / "directory.json").read_text("utf-8"))
        listing = json.loads((data_dir / "responsibilities.json").read_text("utf-8"))
        rules = [
            Rule(r["rule_id"], r["category"], r["item"], tuple(r["keywords"]), r["primary"], tuple(r["assisting"]))
            for r in listing["responsibilities"]
        ]
        label_map = LabelMap.load(data_dir / "label_map.json")
        label_map.check({r.category for r in rules})  # every category it names must be on the list
        return cls(Directory(directory["units"], directory["gazetteer"]), rules, listing["category_aliases"], label_map)

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
        text = self._text(ticket)
        rule = self._best_rule(text, self.rules)
        return rule is None or rule.hits(text) < STRONG_KEYWORD_HITS

    def decide(self, ticket: ticket_pb2.Ticket, prediction: Prediction | None = None) -> Decision:
        decision = self._decide(ticket, prediction)
        if prediction is None:
            return decision
        return replace(decision, classifier_label=prediction.label,
                       model_version=decision.model_version or prediction.model_version)

    def _decide(self, ticket: ticket_pb2.Ticket, prediction: Prediction | None) -> Decision:
        text = self._text(ticket)
        street = self.directory.street_of(ticket)
        category = self.category_of(ticket.category)
        if category:
            in_category = [r for r in self.rules if r.category == category]
            rule = self._best_rule(text, in_category) or in_category[0]
            return self._from_rule(rule, street, "city_category", 1.0)
        matched = self._best_rule(text, self.rules)
        hits = matched.hits(text) if matched else 0
        if matched and hits >= STRONG_KEYWORD_HITS:
            return self._from_rule(matched, street, "keyword", min(1.0, 0.5 + 0.15 * hits))
        if prediction and not prediction.abstained and (category := self.classifier_category(prediction.label, ticket)):
            in_category = [r for r in self.rules if r.category == category]
            rule = self._best_rule(text, in_category) or in_category[0]
            return replace(self._from_rule(rule, street, "classifier", prediction.confidence),
                           model_version=prediction.model_version)
        if matched:
            return self._from_rule(matched, street, "keyword", 0.5 + 0.15 * hits)
        if street:
            return Decision(self.directory.units[street], [], ticket.category, "street", 0.5)
        return Decision(self.directory.units[MANUAL_UNIT], [], ticket.category, "manual", 0.0)

    def _from_rule(self, rule: Rule, street: str | None, method: str, confidence: float) -> Decision:
        def resolve(unit: str) -> str | None:
            return street if unit == STREET else unit

        primary = resolve(rule.primary)
        assisting = [u for u in (resolve(a) for a in rule.assisting) if u]
        if primary is None:  # a street matter but the address names no street we know
            departments = [u for u in assisting if self.directory.units[u].unit_type != events_pb2.UNIT_TYPE_STREET]
            primary = departments[0] if departments else MANUAL_UNIT
            method = method if departments else "manual"
        assisting = [u for u in dict.fromkeys(assisting) if u != primary]
        return Decision(
            self.directory.units[primary],
            [self.directory.units[u] for u in assisting],
            rule.category,
            method,
            confidence,
            rule.rule_id,
        )

    @staticmethod
    def _best_rule(text: str, rules: list[Rule]) -> Rule | None:
        best, best_hits = None, 0
        for rule in rules:
            hits = rule.hits(text)
            if hits > best_hits:
                best, best_hits = rule, hits
        return best

    @staticmethod
    def _text(ticket: ticket_pb2.Ticket) -> str:
        return f"{ticket.title} {ticket.content}"
