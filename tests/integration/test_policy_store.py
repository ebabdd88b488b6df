"""Versioned policies (hotline/policies.py) in the real store: the shipped file seeded once, new
versions through the command path (idempotent, audited), every version kept and listable, a
concurrent save of the same version refused, and the live policy following the newest."""

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
from hotline.policies import INDEXES, PolicyStore, PolicyVersion, new_version
from hotline.policy import Role
from hotline.settings import Settings
from services.supervision import warning_policy
from services.supervision.warnings import RULES_FILE
from tests.integration.test_kit import kit  # noqa: F401 (fixture)

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SHIPPED = json.loads(RULES_FILE.read_text(encoding="utf-8"))
OFFICE = Principal("office:li", Role.OFFICE)


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
