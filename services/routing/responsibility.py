"""The first-responsible list (首接负责主协办清单) as versioned data: pure functions, no I/O.

A :class:`Listing` is the whole list at one version: its categories (the district's 10), its items
(:class:`Rule`: keywords, primary unit or rule, assisting units, limits lane) and the city's category
aliases. Its ``list_version`` is ``"<version>-<content hash>"``, stamped on every assignment.

A change (:class:`Change`: upsert or remove one item, or replace all items from an imported sheet)
goes through :func:`apply_change`, which validates it and returns the next version together with
its change-log entry (who, when, why, before and after). CSV and XLSX import and export are here too
(an office edits the list in a spreadsheet; the import becomes one ``replace`` change).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from hotline.commands import DomainError
from hotline.security import cell_text, cell_value, text_cells

STREET = "@street"  # the street office (街道) of the place (属地管理)
COMMUNITY = "@community"  # the community (社区) of the place, else its street
PLACE_RULES = (STREET, COMMUNITY)
Op = Literal["seed", "upsert", "remove", "replace"]


class ListChangeError(DomainError):
    """A change the list refuses (answered as invalid_argument: 422 / INVALID_ARGUMENT)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_argument", message)


@dataclass(frozen=True)
class Rule:
    """One item of the list: what it covers and who handles it."""

    rule_id: str
    category: str
    item: str
    keywords: tuple[str, ...]
    primary: str  # a unit id, @street or @community
    assisting: tuple[str, ...]
    lane: str = ""  # limits the SLA policy applies (water_power_gas_heat, emergency, complex...); "" = default

    def hits(self, text: str) -> int:
        return sum(1 for k in self.keywords if k in text)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"rule_id": self.rule_id, "category": self.category, "item": self.item,
                               "keywords": list(self.keywords), "primary": self.primary,
                               "assisting": list(self.assisting)}
        if self.lane:
            doc["lane"] = self.lane
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Rule:
        return cls(str(doc["rule_id"]), str(doc["category"]), str(doc["item"]), tuple(doc["keywords"]),
                   str(doc["primary"]), tuple(doc.get("assisting", ())), str(doc.get("lane", "")))


@dataclass(frozen=True)
class Listing:
    version: int
    categories: tuple[str, ...]
    items: tuple[Rule, ...]
    category_aliases: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def content_hash(self) -> str:
        """Hash of what routes (categories, items, aliases): equal lists hash equal, whatever their version."""
        content = {"categories": list(self.categories), "items": [r.to_doc() for r in self.items],
                   "category_aliases": dict(sorted(self.category_aliases.items()))}
        canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def list_version(self) -> str:
        return f"{self.version}-{self.content_hash[:12]}"

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.items if r.rule_id == rule_id), None)

    def to_doc(self) -> dict[str, Any]:
        """The file format of ``data/responsibilities.json`` (also what the store keeps)."""
        doc: dict[str, Any] = {"description": self.description} if self.description else {}
        return {**doc, "version": self.version, "categories": list(self.categories),
                "responsibilities": [r.to_doc() for r in self.items],
                "category_aliases": dict(self.category_aliases)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Listing:
        items = tuple(Rule.from_doc(r) for r in doc["responsibilities"])
        categories = tuple(doc.get("categories") or dict.fromkeys(r.category for r in items))
        return cls(int(doc.get("version", 1)), categories, items, dict(doc.get("category_aliases", {})),
                   str(doc.get("description", "")))


def load_listing(path: Path) -> Listing:
    return Listing.from_doc(json.loads(path.read_text("utf-8")))


@dataclass(frozen=True)
class Change:
    """What an office or admin asks of the list. ``reason`` (why) is required."""

    op: Literal["upsert", "remove", "replace"]
    reason: str
    item: Rule | None = None  # upsert
    rule_id: str = ""  # remove
    items: tuple[Rule, ...] = ()  # replace: the whole list, e.g. from an imported sheet


@dataclass(frozen=True)
class LogEntry:
    """One line of the list's change log (变更记录)."""

    version: int
    list_version: str
    previous_version: str  # list_version it was made from ("" for the seed)
    actor: str
    at: datetime
    reason: str
    op: Op
    rule_id: str = ""
    before: dict[str, Any] | None = None  # the item before (upsert of an existing item, remove)
    after: dict[str, Any] | None = None  # the item after (upsert)
    added: tuple[str, ...] = ()  # replace: rule ids added, removed and changed
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return {"version": self.version, "list_version": self.list_version,
                "previous_version": self.previous_version, "actor": self.actor, "at": self.at,
                "reason": self.reason, "op": self.op, "rule_id": self.rule_id, "before": self.before,
                "after": self.after, "added": list(self.added), "removed": list(self.removed),
                "changed": list(self.changed)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> LogEntry:
        return cls(int(doc["version"]), doc["list_version"], doc["previous_version"], doc["actor"], doc["at"],
                   doc["reason"], doc["op"], doc.get("rule_id", ""), doc.get("before"), doc.get("after"),
                   tuple(doc.get("added", ())), tuple(doc.get("removed", ())), tuple(doc.get("changed", ())))


@dataclass(frozen=True)
class ListVersion:
    """A version of the list and the log entry that made it (the state a list command changes)."""

    listing: Listing
    entry: LogEntry

    def __iter__(self) -> Iterator[Any]:  # new, entry = apply_change(...)
        return iter((self.listing, self.entry))


def seed(listing: Listing, actor: str, at: datetime, reason: str = "shipped list", previous: str = "") -> ListVersion:
    """A version taken as shipped (the data file): the first one, or a newer release over ``previous``."""
    return ListVersion(listing, LogEntry(listing.version, listing.list_version, previous, actor, at, reason, "seed"))


def apply_change(listing: Listing, change: Change, actor: str, at: datetime, units: Collection[str]) -> ListVersion:
    """The next version of ``listing`` after ``change``, and its log entry.

    ``units`` are the unit ids of the directory. Refuses (:class:`ListChangeError`) a change without a
    reason or an actor, an item whose category is not one of the list's, whose keywords are empty or
    whose units are unknown, a removal of an unknown item or of the last item of a category, and a
    change that changes nothing.
    """
    if not change.reason.strip():
        raise ListChangeError("a change needs a reason")
    if not actor:
        raise ListChangeError("a change needs an actor")
    before = after = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    if change.op == "upsert":
        if change.item is None:
            raise ListChangeError("upsert needs an item")
        item = normalized(change.item)
        old = listing.get(item.rule_id)
        if old == item:
            raise ListChangeError(f"item {item.rule_id} is unchanged")
        items = _upsert(listing.items, item)
        rule_id, before, after = item.rule_id, old.to_doc() if old else None, item.to_doc()
    elif change.op == "remove":
        old = listing.get(change.rule_id)
        if old is None:
            raise ListChangeError(f"no item {change.rule_id}")
        items = tuple(r for r in listing.items if r.rule_id != change.rule_id)
        rule_id, before = old.rule_id, old.to_doc()
    elif change.op == "replace":
        items = tuple(normalized(r) for r in change.items)
        old_items = {r.rule_id: r for r in listing.items}
        new_items = {r.rule_id: r for r in items}
        added = tuple(i for i in new_items if i not in old_items)
        removed = tuple(i for i in old_items if i not in new_items)
        changed = tuple(i for i in new_items if i in old_items and new_items[i] != old_items[i])
        if items == listing.items:
            raise ListChangeError("the imported list is the current list")
        rule_id = ""
    else:
        raise ListChangeError(f"unknown change {change.op!r}")
    new = Listing(listing.version + 1, listing.categories, items, listing.category_aliases, listing.description)
    problems = validate(new, units)
    if problems:
        raise ListChangeError("; ".join(problems))
    entry = LogEntry(new.version, new.list_version, listing.list_version, actor, at, change.reason.strip(),
                     change.op, rule_id, before, after, added, removed, changed)
    return ListVersion(new, entry)


def normalized(rule: Rule) -> Rule:
    """Surrounding blanks stripped, keywords and assisting units deduplicated in order."""
    return Rule(rule.rule_id.strip(), rule.category.strip(), rule.item.strip(),
                tuple(dict.fromkeys(k.strip() for k in rule.keywords if k.strip())), rule.primary.strip(),
                tuple(dict.fromkeys(a.strip() for a in rule.assisting if a.strip())), rule.lane.strip())


def validate(listing: Listing, units: Collection[str]) -> list[str]:
    """Everything wrong with ``listing`` (empty when it is sound)."""
    problems: list[str] = []
    seen: set[str] = set()
    for rule in listing.items:
        where = f"item {rule.rule_id or '(no id)'}"
        if not rule.rule_id:
            problems.append(f"{where}: rule_id is empty")
        elif rule.rule_id in seen:
            problems.append(f"{where}: rule_id appears twice")
        seen.add(rule.rule_id)
        if rule.category not in listing.categories:
            problems.append(f"{where}: category {rule.category!r} is not one of the list's {len(listing.categories)}")
        if not rule.item:
            problems.append(f"{where}: item name is empty")
        if not rule.keywords or any(not k for k in rule.keywords):
            problems.append(f"{where}: keywords are empty")
        if rule.primary not in units and rule.primary not in PLACE_RULES:
            problems.append(f"{where}: primary unit {rule.primary!r} is not in the directory")
        for unit in rule.assisting:
            if unit not in units and unit not in PLACE_RULES:
                problems.append(f"{where}: assisting unit {unit!r} is not in the directory")
        if rule.primary in rule.assisting:
            problems.append(f"{where}: primary unit {rule.primary} also assists")
    present = {r.category for r in listing.items}
    problems += [f"category {c} has no item left" for c in listing.categories if c not in present]
    problems += [f"alias {a} names unknown category {c}" for a, c in listing.category_aliases.items()
                 if c not in listing.categories]
    return problems


def _upsert(items: Sequence[Rule], item: Rule) -> tuple[Rule, ...]:
    """Replace in place; a new item goes after the last item of its category (the first stays its default)."""
    if any(r.rule_id == item.rule_id for r in items):
        return tuple(item if r.rule_id == item.rule_id else r for r in items)
    last = max((i for i, r in enumerate(items) if r.category == item.category), default=len(items) - 1)
    return (*items[:last + 1], item, *items[last + 1:])


# ------------------------------------------------------------------------------------------------
# CSV and XLSX (one row per item; lists of keywords and units joined with 、)
# ------------------------------------------------------------------------------------------------

COLUMNS = ("rule_id", "category", "item", "keywords", "primary", "assisting", "lane")
LABELS = {"rule_id": "事项编号", "category": "类别", "item": "事项", "keywords": "关键词", "primary": "主办单位",
          "assisting": "协办单位", "lane": "时限类别"}
NAME_COLUMNS = ("primary_name", "assisting_names")  # written for reading; ignored on import
JOIN = "、"
_SPLIT = re.compile(r"[、,，;；|\s]+")
SHEET = "首接负责主协办清单"


def rows(listing: Listing, unit_names: Mapping[str, str] | None = None) -> list[list[str]]:
    """The header row and one row per item, as the CSV and XLSX exports write them."""
    names = dict(unit_names or {})
    header = [*COLUMNS, *(NAME_COLUMNS if unit_names is not None else ())]
    out = [header]
    for r in listing.items:
        row = [r.rule_id, r.category, r.item, JOIN.join(r.keywords), r.primary, JOIN.join(r.assisting), r.lane]
        if unit_names is not None:
            row += [names.get(r.primary, r.primary), JOIN.join(names.get(a, a) for a in r.assisting)]
        out.append(row)
    return out


def from_rows(table: Iterable[Sequence[Any]]) -> tuple[Rule, ...]:
    """Items from a header row (English keys or Chinese labels) and item rows; blank rows are skipped."""
    it = iter(table)
    header = [str(h or "").strip() for h in next(it, [])]
    by_label = {label: key for key, label in LABELS.items()}
    keys = [by_label.get(h, h) for h in header]
    missing = [c for c in COLUMNS if c not in keys and c != "lane"]
    if missing:
        raise ListChangeError(f"the sheet lacks columns {', '.join(missing)}")
    items = []
    for number, raw in enumerate(it, start=2):
        cells = {k: "" if v is None else cell_value(str(v).strip()) for k, v in zip(keys, raw, strict=False)}
        if not any(cells.get(c) for c in COLUMNS):
            continue
        if not cells.get("rule_id"):
            raise ListChangeError(f"row {number}: rule_id is empty")
        items.append(Rule(cells["rule_id"], cells["category"], cells["item"], _split(cells["keywords"]),
                          cells["primary"], _split(cells.get("assisting", "")), cells.get("lane", "")))
    return tuple(items)


def _split(value: str) -> tuple[str, ...]:
    return tuple(p for p in _SPLIT.split(value) if p)


def to_csv(listing: Listing, unit_names: Mapping[str, str] | None = None) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese right."""
    buffer = io.StringIO()
    table = ([cell_text(c) for c in row] for row in rows(listing, unit_names))  # formulas as text (issue #19)
    csv.writer(buffer, lineterminator="\r\n").writerows(table)
    return buffer.getvalue().encode("utf-8-sig")


def from_csv(data: bytes) -> tuple[Rule, ...]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ListChangeError("the CSV is not UTF-8") from exc
    return from_rows(csv.reader(io.StringIO(text)))


def to_xlsx(listing: Listing, unit_names: Mapping[str, str] | None = None) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = SHEET
    for row in rows(listing, unit_names):
        sheet.append(row)
    sheet.freeze_panes = "A2"
    text_cells(book)  # formula-like text opens as text (issue #19)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def from_xlsx(data: bytes) -> tuple[Rule, ...]:
    from hotline.security import SpreadsheetTooLarge, bounded_rows

    try:
        table = bounded_rows(data, sheet=SHEET)  # issue #19: bounded in rows and uncompressed size
    except SpreadsheetTooLarge as exc:
        raise ListChangeError(f"workbook too large: {exc}") from exc
    except Exception as exc:  # openpyxl raises several types for a file that is no workbook
        raise ListChangeError(f"not an XLSX workbook: {exc}") from exc
    return from_rows(table)
