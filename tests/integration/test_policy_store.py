"""Versioned policies (hotline/policies.py) in the real store, the one store of the early-warning
rules and the SLA policy: the shipped file seeded once (or again only when newer), new versions
through the command path (idempotent, audited), every version kept and listable, a concurrent save
of the same version refused, the live policy following the newest, and a case judged under the
SLA policy version it started with."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from hotline import audit, mongo
from hotline.auth import Principal
from hotline.commands import Command, CommandBus, DomainError
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.policies import INDEXES, LivePolicy, PolicyStore, PolicyVersion, new_version
from hotline.policy import Role
from hotline.settings import Settings, SlaSettings
from services.supervision.cases import sla
from services.supervision.cases.sla import Period, SlaClock, Unit, parse_policy
from services.supervision.cases.store import limits_of_doc
from services.supervision.warnings import warning_policy
from services.supervision.warnings.warnings import RULES_FILE
from tests.integration.test_kit import kit  # noqa: F401 (fixture)

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SHIPPED = json.loads(RULES_FILE.read_text(encoding="utf-8"))
OFFICE = Principal("office:li", Role.OFFICE)
ADMIN = Principal("admin:wang", Role.ADMIN)
SLA_DOC = json.loads(SlaSettings().policy_file.read_text(encoding="utf-8"))


pytestmark = pytest.mark.integration


def edited(min_count: int) -> dict:  # type: ignore[type-arg]
    doc = copy.deepcopy(SHIPPED)
    doc["repeat"]["min_count"] = min_count
    return doc


async def test_versions_are_saved_through_the_command_path_and_kept(settings: Settings, kit: dict) -> None:  # noqa: F811
    database = kit["db"]
    await mongo.ensure_indexes(database, {**OUTBOX_INDEXES, **audit.INDEXES, **INDEXES})
    store = warning_policy.store(database)
    first = await store.ensure(SHIPPED, "system:supervision", AT)
    assert (first.version, first.doc, first.reason) == (1, SHIPPED, "随程序发布的文件")
    assert await store.ensure(edited(9), "system:supervision", AT + timedelta(days=1)) == first  # seeded once
    live = warning_policy.live(store)
    assert (await live.current()).repeat["min_count"] == 3

    bus = CommandBus(kit["client"], database, Outbox(database, kit["producer"], "kit"), "supervision")

    async def save(doc: dict, key: str, expected: int = 0) -> object:  # type: ignore[type-arg]
        return await bus.run(Command("save_warning_rules", "warning_rules", OFFICE, key, "复核"), store,
                             lambda current: new_version(current, doc, warning_policy.validate, expected, OFFICE,
                                                         AT + timedelta(hours=1), "复核"), "unused-topic")

    answer = await save(edited(4), "k1", 1)
    assert isinstance(answer, dict) and answer["version"] == 2 and answer["doc"]["version"] == "v2"
    assert await save(edited(5), "k1", 1) == answer  # the same key: the first answer, nothing saved again
    with pytest.raises(DomainError) as stale:
        await save(edited(5), "k2", 1)
    assert stale.value.code == "failed_precondition"
    assert (await save(edited(5), "k3", 2))["version"] == 3  # type: ignore[index]

    assert [(v.version, v.actor) for v in await store.history()] == [
        (3, "office:li"), (2, "office:li"), (1, "system:supervision")]
    older = await store.get(2)
    assert older is not None and older.doc["repeat"]["min_count"] == 4 and older.at == AT + timedelta(hours=1)
    assert await store.get(7) is None
    now = await live.current()
    assert now.version == "v3" and now.repeat["min_count"] == 5
    trail = await audit.query(database, "warning_rules", "", 10)
    assert [(e["action"], e["after"]["version"]) for e in trail] == [("save_warning_rules", 3),
                                                                     ("save_warning_rules", 2)]
    assert trail[-1]["before"]["version"] == 1 and trail[-1]["reason"] == "复核"

    with pytest.raises(DomainError) as twice:  # two replicas deciding from the same newest: one lands
        await store.save(PolicyVersion("warning_rules", 3, SHIPPED, "office:wang", AT, "x"))
    assert twice.value.code == "failed_precondition"
    other = PolicyStore(database, "sla")  # another policy keeps its own versions
    assert await other.load() is None and await other.newest_number() == 0


async def test_the_sla_policy_file_seeds_only_a_newer_version_and_a_case_keeps_its_own(
    settings: Settings, kit: dict,  # noqa: F811
) -> None:
    database = kit["db"]
    await mongo.ensure_indexes(database, {**OUTBOX_INDEXES, **audit.INDEXES, **INDEXES})
    store = PolicyStore(database, sla.POLICY_NAME)
    first = await store.ensure(SLA_DOC, "system:supervision", AT, SLA_DOC["version"])
    assert (first.version, first.doc) == (SLA_DOC["version"], SLA_DOC)
    bus = CommandBus(kit["client"], database, Outbox(database, kit["producer"], "kit"), "supervision")
    shorter = copy.deepcopy(SLA_DOC)
    shorter["defaults"]["reply"] = {"working_days": 7}
    answer = await bus.run(Command("save_sla_policy", sla.POLICY_NAME, ADMIN, "s1", "缩短办理时限"), store,
                           lambda current: new_version(current, shorter, sla.validate, first.version, ADMIN, AT,
                                                       "缩短办理时限"), "unused-topic")
    assert isinstance(answer, dict) and answer["version"] == answer["doc"]["version"] == first.version + 1
    restarted = await store.ensure(SLA_DOC, "system:supervision", AT, SLA_DOC["version"])
    assert restarted.version == answer["version"]  # a stored version wins over the file

    live = LivePolicy(store, parse_policy)
    reply = SlaClock.REPLY
    assert (await live.current()).defaults[reply] == Period(7, Unit.WORKING_DAYS)  # the newest is current
    old = await live.get(first.version)
    assert old is not None and old.defaults[reply] == Period(5, Unit.WORKING_DAYS)
    case = {"policy_version": first.version, "sla_lanes": ["complex"]}  # a case opened under the first version
    assert (await limits_of_doc(live, case)).periods[reply] == Period(15, Unit.WORKING_DAYS)
    assert (await limits_of_doc(live, {"sla_lanes": []})).policy_version == answer["version"]  # none: current

    newer = await store.ensure({**SLA_DOC, "version": 5}, "system:supervision", AT, 5)  # a newer file ships
    assert newer.version == 5 and (await live.current()).version == 5
    assert [v.version for v in await store.history()] == [5, answer["version"], first.version]
    assert (await limits_of_doc(live, case)).policy_version == first.version  # still its own
