"""The command path against the real store: one transaction, idempotent, audited."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession

from hotline import audit, mongo
from hotline.auth import Principal
from hotline.clock import SystemClock
from hotline.commands import Command, CommandBus, Decision, DomainError, Illegal, Invalid
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.policy import Role
from hotline.settings import Settings
from hotline.v1 import events_pb2
from tests.integration.test_kit import kit  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

UNIT = Principal("unit:U1", Role.UNIT, unit_id="U1")


class Units:
    """A tiny aggregate for the test: a Unit message per id."""

    kind = "unit"

    def __init__(self, db: Any) -> None:
        self.collection = db["units"]

    async def load(self, target: str, session: AsyncClientSession | None) -> events_pb2.Unit | None:
        doc = await self.collection.find_one({"_id": target}, session=session)
        return events_pb2.Unit(unit_id=doc["_id"], name=doc["name"]) if doc else None

    async def save(self, state: events_pb2.Unit, session: AsyncClientSession | None) -> None:
        await self.collection.replace_one({"_id": state.unit_id}, {"name": state.name}, upsert=True, session=session)


def rename(to: str) -> Any:
    def decide(unit: events_pb2.Unit | None) -> Decision[events_pb2.Unit]:
        if unit is not None and unit.name == to:
            raise Illegal(f"already named {to}")
        renamed = events_pb2.Unit(unit_id="U1", name=to)
        return Decision(renamed, events=[renamed])
    return decide


async def test_a_command_runs_once_per_idempotency_key(settings: Settings, kit: dict) -> None:  # noqa: F811
    db = kit["db"]
    await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
    outbox = Outbox(db, kit["producer"], "kit")
    bus = CommandBus(kit["client"], db, outbox, "kit", SystemClock())
    repo = Units(db)

    first = await bus.run(Command("rename", "U1", UNIT, "key-1", reason="typo"), repo, rename("街道办"), kit["out"])
    again = await bus.run(Command("rename", "U1", UNIT, "key-1"), repo, rename("ignored"), kit["out"])
    assert first == again == events_pb2.Unit(unit_id="U1", name="街道办")
    assert (await repo.load("U1", None)).name == "街道办"
    assert await db["outbox"].count_documents({}) == 1
    trail = await audit.query(db, "U1", "", 10)
    assert [(e["action"], e["reason"], e["actor"]["subject"]) for e in trail] == [("rename", "typo", "unit:U1")]
    assert trail[0]["before"] is None and trail[0]["after"] == {"unit_id": "U1", "name": "街道办"}

    # a refused command changes nothing and stores no answer: fixing the request and retrying works
    with pytest.raises(DomainError) as refused:
        await bus.run(Command("rename", "U1", UNIT, "key-2"), repo, rename("街道办"), kit["out"])
    assert refused.value.code == "failed_precondition"
    assert await db["outbox"].count_documents({}) == 1 and len(await audit.query(db, "U1", "", 10)) == 1
    await bus.run(Command("rename", "U1", UNIT, "key-2"), repo, rename("社区"), kit["out"])
    assert (await repo.load("U1", None)).name == "社区"

    # the same key from another actor is another command; the same key for another command is refused
    other = Principal("unit:U2", Role.UNIT, unit_id="U2")
    await bus.run(Command("rename", "U1", other, "key-1"), repo, rename("第三"), kit["out"])
    with pytest.raises(DomainError) as reused:
        await bus.run(Command("close", "U1", UNIT, "key-1"), repo, rename("x"), kit["out"])
    assert reused.value.code == "invalid_argument"
    with pytest.raises(DomainError):
        await bus.run(Command("rename", "U1", UNIT, ""), repo, rename("x"), kit["out"])
    assert isinstance(Invalid("x"), DomainError)
    assert await outbox.relay_once() == 3

    # an unchanged decision (a delivery again whose effect is already in the state) leaves no trace:
    # no audit entry, no stored answer, nothing staged, and the same again on every replay
    def unchanged(unit: events_pb2.Unit | None) -> Decision[events_pb2.Unit]:
        return Decision(None, unchanged=True)

    entries = len(await audit.query(db, "U1", "", 20))
    for _ in range(2):
        assert await bus.run(Command("rename", "U1", UNIT, "key-3"), repo, unchanged, kit["out"]) == \
            events_pb2.Unit(unit_id="U1", name="第三")
    assert len(await audit.query(db, "U1", "", 20)) == entries
    assert await outbox.relay_once() == 0
