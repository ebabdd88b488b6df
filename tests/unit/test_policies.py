"""Versioned policies (hotline/policies.py) and the early-warning rules as one: the schema names the
precise field at fault, a new version numbers on from the newest, stale edits and empty changes are
refused, and the running service re-reads only when a newer version is stored."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.policies import LivePolicy, Num, PolicyInvalid, PolicyVersion, Table, Text, Words, check, new_version
from hotline.policy import Role
from services.supervision.warnings import warning_policy
from services.supervision.warnings.warnings import RULES_FILE, Rules

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
OFFICE = Principal("office:li", Role.OFFICE)
SHIPPED = json.loads(RULES_FILE.read_text(encoding="utf-8"))


def field_of(doc: Any) -> str:
    with pytest.raises(PolicyInvalid) as caught:
        warning_policy.validate(doc)
    return caught.value.field


def changed(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SHIPPED)
    *parents, last = path.split(".")
    target = doc
    for name in parents:
        target = target[name]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return doc


def test_the_schema_names_the_field_at_fault() -> None:
    schema = {"a": {"n": Num(1, 10, integer=True)}, "w": Words(min_items=1), "t": Table(Text(required=True)),
              "s": Text()}
    check({"a": {"n": 3}, "w": ["x"], "t": {"k": "v"}, "s": ""}, schema)
    cases = [({"a": {"n": 0}, "w": ["x"], "t": {}, "s": ""}, "a.n", "between 1 and 10"),
             ({"a": {"n": 2.5}, "w": ["x"], "t": {}, "s": ""}, "a.n", "whole number"),
             ({"a": {"n": True}, "w": ["x"], "t": {}, "s": ""}, "a.n", "must be a number"),
             ({"a": {"n": 2}, "w": [], "t": {}, "s": ""}, "w", "at least 1"),
             ({"a": {"n": 2}, "w": ["x", "x"], "t": {}, "s": ""}, "w", "x more than once"),
             ({"a": {"n": 2}, "w": ["x"], "t": {"k": ""}, "s": ""}, "t.k", "must not be empty"),
             ({"a": {"n": 2}, "w": ["x"], "t": {}}, "s", "is required"),
             ({"a": {"n": 2, "m": 1}, "w": ["x"], "t": {}, "s": ""}, "a.m", "unknown field"),
             ({"a": "x", "w": ["x"], "t": {}, "s": ""}, "a", "must be an object")]
    for doc, field, words in cases:
        with pytest.raises(PolicyInvalid) as caught:
            check(doc, schema)
        assert caught.value.field == field and words in caught.value.message, (doc, caught.value.message)
        assert caught.value.code == "invalid_argument" and caught.value.message.startswith(f"{field}: ")


def test_the_shipped_warning_rules_pass_and_each_broken_field_is_named() -> None:
    warning_policy.validate(SHIPPED)
    assert field_of(changed("burst.p_value", 2)) == "burst.p_value"
    assert field_of(changed("burst.min_count", "6")) == "burst.min_count"
    assert field_of(changed("repeat.window_days", KeyError)) == "repeat.window_days"
    assert field_of(changed("keywords.purple", ["x"])) == "keywords.purple"
    assert field_of(changed("mass_incident.text_similarity", 1.5)) == "mass_incident.text_similarity"
    assert field_of(changed("burst.warmup_days", 20)) == "burst.warmup_days"  # beyond baseline_days (14)
    assert field_of(changed("repeat.orange_count", 2)) == "repeat.orange_count"  # below min_count (3)
    assert field_of(changed("mass_incident.red_callers", 4)) == "mass_incident.red_callers"
    assert field_of(changed("keywords.yellow", ["媒体", "自杀"])) == "keywords.yellow"  # red already
    assert field_of(changed("address.unit_forms", {"幢": ""})) == "address.unit_forms.幢"
    assert field_of([]) == ""


def test_a_new_version_numbers_on_and_is_labelled_so_warnings_say_which_rules_raised_them() -> None:
    first = PolicyVersion("warning_rules", 1, SHIPPED, "system:supervision", AT, "shipped file")
    edited = changed("repeat.min_count", 4)
    decision = new_version(first, edited, warning_policy.validate, 1, OFFICE, AT, "  近期重复来电过多  ")
    second = decision.state
    assert second is not None and second.version == 2 and second.actor == "office:li"
    assert second.reason == "近期重复来电过多" and second.doc["version"] == "v2"
    assert second.doc["repeat"]["min_count"] == 4 and SHIPPED["repeat"]["min_count"] == 3  # the input untouched
    assert decision.answer == second.as_json() and decision.audit == {"policy_version": 2}
    assert Rules.of(second.doc).version == "v2" and Rules.of(second.doc).repeat["min_count"] == 4

    def refused(current: PolicyVersion | None, doc: Any, expected: int, reason: str = "r") -> DomainError:
        with pytest.raises(DomainError) as caught:
            new_version(current, doc, warning_policy.validate, expected, OFFICE, AT, reason)
        return caught.value

    stale = refused(second, changed("repeat.min_count", 5), 1)
    assert stale.code == "failed_precondition" and "at version 2 now (you edited version 1)" in stale.message
    assert refused(second, second.doc, 2).message == "nothing changed: the document equals version 2"
    assert refused(second, changed("burst.p_value", -1), 2).message.startswith("burst.p_value: ")
    assert isinstance(refused(second, edited, 0, " "), PolicyInvalid)
    assert refused(None, edited, 0).code == "failed_precondition"
    third = new_version(second, changed("repeat.min_count", 5), warning_policy.validate, 0, OFFICE, AT, "r").state
    assert third is not None and third.version == 3  # no expected version: on from the newest


def test_a_numbered_document_keeps_its_number_form() -> None:
    first = PolicyVersion("sla_policy", 4, {"version": 4, "limit": 1}, "system:supervision", AT, "shipped file")
    second = new_version(first, {"limit": 2}, lambda doc: None, 4, OFFICE, AT, "r").state
    assert second is not None and second.doc == {"limit": 2, "version": 5}  # a number stays a number
    bare = PolicyVersion("other", 1, {"limit": 1}, "s", AT, "shipped file")
    third = new_version(bare, {"limit": 2}, lambda doc: None, 1, OFFICE, AT, "r").state
    assert third is not None and third.doc == {"limit": 2}  # no version field: none added


class FakeStore:
    def __init__(self, *versions: PolicyVersion) -> None:
        self.stored = list(versions)
        self.loads = self.asked = self.saves = 0
        self.name = "warning_rules"

    async def newest_number(self) -> int:
        self.asked += 1
        return self.stored[-1].version

    async def load(self) -> PolicyVersion:
        self.loads += 1
        return self.stored[-1]

    async def get(self, number: int) -> PolicyVersion | None:
        self.loads += 1
        return next((v for v in self.stored if v.version == number), None)


async def test_the_running_service_takes_the_newest_version_and_parses_it_once() -> None:
    store = FakeStore(PolicyVersion("warning_rules", 1, SHIPPED, "s", AT, "shipped file"))
    live = LivePolicy(store, Rules.of)  # type: ignore[arg-type]
    first = await live.current()
    assert first.version == SHIPPED["version"] and await live.current() is first and store.loads == 1
    second = new_version(store.stored[-1], changed("keywords.red", ["自杀", "新风险词"]), warning_policy.validate, 1,
                         OFFICE, AT, "新增").state
    assert second is not None
    store.stored.append(second)
    now = await live.current()
    assert now.version == "v2" and "新风险词" in now.keywords["red"] and store.loads == 2


async def test_old_versions_are_parsed_once_and_the_newest_is_asked_at_most_every_refresh() -> None:
    store = FakeStore(PolicyVersion("warning_rules", 1, SHIPPED, "s", AT, "shipped file"))
    ticks = [100.0]
    live = LivePolicy(store, Rules.of, refresh_seconds=5, monotonic=lambda: ticks[0])  # type: ignore[arg-type]
    first = await live.current()
    second = new_version(store.stored[-1], changed("repeat.min_count", 4), warning_policy.validate, 1, OFFICE, AT,
                         "r").state
    assert second is not None
    store.stored.append(second)
    ticks[0] += 4.9
    assert await live.current() is first and store.asked == 1  # trusted for refresh_seconds
    ticks[0] += 0.1
    assert (await live.current()).version == "v2" and store.asked == 2 and store.loads == 2
    store.saves += 1  # a version saved through this replica's API: asked at once
    assert (await live.current()).version == "v2" and store.asked == 3 and store.loads == 2
    assert await live.get(1) is first and await live.get(2) is await live.current()  # parsed once each
    assert store.loads == 2 and await live.get(3) is None
