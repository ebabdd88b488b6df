"""The command path against the real store: one transaction, idempotent, audited."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ReplaceOne, monitoring
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


class CountingUnits(Units):
    """The same aggregate, saying where its state lives: the command path's three round trips."""

    def __init__(self, db: Any) -> None:
        self.collection = db["units_counted"]

    def source(self, target: str) -> tuple[str, dict[str, Any]]:
        return self.collection.name, {"_id": target}

    async def loaded(self, doc: dict[str, Any] | None, session: AsyncClientSession | None) -> events_pb2.Unit | None:
        return events_pb2.Unit(unit_id=doc["_id"], name=doc["name"]) if doc else None

    async def write_ops(self, state: events_pb2.Unit, session: AsyncClientSession | None) -> list[Any]:
        return [ReplaceOne({"_id": state.unit_id}, {"name": state.name}, upsert=True,
                           namespace=self.collection.full_name)]


class Sent(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("hello", "isMaster", "ismaster", "ping", "endSessions"):
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_command_costs_three_store_round_trips(settings: Settings, kit: dict) -> None:  # noqa: F811
    """The state's read, one bulk write (answer, state, events, audit entry), the commit. A retried
    key fails the answer's insert and runs again with the stored answer read first; a refused
    command reads the stored answer once; a repository with only load/save four round trips."""
    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    try:
        db = client[kit["db"].name]
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
        bus = CommandBus(client, db, Outbox(db, kit["producer"], "kit"), "kit", SystemClock())
        repo = CountingUnits(db)
        await bus.run(Command("rename", "U1", UNIT, "warm-up"), repo, rename("一"), kit["out"])  # connects
        staged, trail = await db["outbox"].count_documents({}), len(await audit.query(db, "U1", "", 100))

        sent.names.clear()
        await bus.run(Command("rename", "U1", UNIT, "rt-1", reason="r"), repo, rename("二"), kit["out"])
        assert sent.names == ["find", "bulkWrite", "commitTransaction"]
        assert (await repo.load("U1", None)).name == "二"
        assert await db["outbox"].count_documents({}) == staged + 1
        entries = await audit.query(db, "U1", "", 100)
        assert len(entries) == trail + 1 and (entries[0]["action"], entries[0]["reason"]) == ("rename", "r")
        assert entries[0]["before"] == {"unit_id": "U1", "name": "一"}

        sent.names.clear()  # a retried key the state would take again: the answer's insert fails, the
        # transaction is aborted, and the second run reads the stored answer first; nothing written
        again = await bus.run(Command("rename", "U1", UNIT, "rt-1"), repo, rename("三"), kit["out"])
        assert again == events_pb2.Unit(unit_id="U1", name="二")
        assert sent.names == ["find", "bulkWrite", "abortTransaction", "find", "commitTransaction"]
        assert (await repo.load("U1", None)).name == "二"
        assert await db["outbox"].count_documents({}) == staged + 1
        assert len(await audit.query(db, "U1", "", 100)) == trail + 1

        sent.names.clear()  # a retried key the state now refuses: the refusal looks up the answer
        again = await bus.run(Command("rename", "U1", UNIT, "rt-1"), repo, rename("二"), kit["out"])
        assert again == events_pb2.Unit(unit_id="U1", name="二")
        assert sent.names == ["find", "find", "commitTransaction"]

        sent.names.clear()  # a new command refused: the same read, and the refusal
        with pytest.raises(DomainError):
            await bus.run(Command("rename", "U1", UNIT, "rt-x"), repo, rename("二"), kit["out"])
        assert sent.names == ["find", "find", "commitTransaction"]

        sent.names.clear()  # only load and save: the save is a round trip of its own
        plain = Units(db)
        plain.collection = repo.collection
        await bus.run(Command("rename", "U1", UNIT, "rt-2"), plain, rename("四"), kit["out"])
        assert sent.names == ["find", "update", "bulkWrite", "commitTransaction"]
        assert (await repo.load("U1", None)).name == "四"
    finally:
        await client.close()


async def test_commands_racing_on_one_state_all_apply(settings: Settings, kit: dict) -> None:  # noqa: F811
    """Concurrent commands on one target conflict in the store; the conflicting transaction is
    retried (the bulk write's WriteConflict keeps its TransientTransactionError label), so each
    applies once. (Group commit off: every command a transaction of its own, racing.)"""
    import asyncio

    db = kit["db"]
    await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
    bus = CommandBus(kit["client"], db, Outbox(db, kit["producer"], "kit"), "kit", SystemClock(), group_max=1)
    repo = CountingUnits(db)
    trail = len(await audit.query(db, "U1", "", 1000))

    def append(suffix: str) -> Any:
        def decide(unit: events_pb2.Unit | None) -> Decision[events_pb2.Unit]:
            renamed = events_pb2.Unit(unit_id="U1", name=(unit.name if unit else "") + suffix)
            return Decision(renamed, events=[renamed])
        return decide

    await asyncio.gather(*(bus.run(Command("append", "U1", UNIT, f"race-{i}"), CountingUnits(db), append(str(i)),
                                   kit["out"]) for i in range(8)))
    name = (await repo.load("U1", None)).name
    assert sorted(name[-8:]) == [str(i) for i in range(8)]  # every command applied once, none lost
    assert len(await audit.query(db, "U1", "", 1000)) == trail + 8


async def test_concurrent_commands_share_a_transaction(settings: Settings, kit: dict) -> None:  # noqa: F811
    """Group commit (hotline/uow.py ``run_one``): commands arriving while the store is busy go
    together: 30 commands on 30 targets arriving at once, one of them a retried key, one refused,
    cost the store one transaction (not 30); each command gets its own answer, audit entry and
    events, the retried one its first answer and nothing twice."""
    import asyncio

    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    try:
        db = client[kit["db"].name]
        await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES})
        bus = CommandBus(client, db, Outbox(db, kit["producer"], "kit"), "kit", SystemClock(), groups_in_flight=1)
        repo = CountingUnits(db)

        def named(target: str, to: str) -> Any:
            def decide(unit: events_pb2.Unit | None) -> Decision[events_pb2.Unit]:
                if to == "!":
                    raise Illegal("refused")
                renamed = events_pb2.Unit(unit_id=target, name=to)
                return Decision(renamed, events=[renamed])
            return decide

        first = await bus.run(Command("name", "G-retried", UNIT, "g-retried"), repo, named("G-retried", "一"),
                              kit["out"])
        staged = await db["outbox"].count_documents({})
        sent.names.clear()
        runs = [bus.run(Command("name", f"G{n}", UNIT, f"g-{n}"), repo, named(f"G{n}", f"n{n}"), kit["out"])
                for n in range(28)]
        runs.append(bus.run(Command("name", "G-retried", UNIT, "g-retried"), repo, named("G-retried", "二"),
                            kit["out"]))
        runs.append(bus.run(Command("name", "G-refused", UNIT, "g-refused"), repo, named("G-refused", "!"),
                            kit["out"]))
        results = await asyncio.gather(*runs, return_exceptions=True)
        assert results[:28] == [events_pb2.Unit(unit_id=f"G{n}", name=f"n{n}") for n in range(28)]
        assert results[28] == first and isinstance(results[29], DomainError)
        assert sent.names.count("commitTransaction") == 1, sent.names  # not 30
        # the group's bulk write fails on the retried key's answer, is aborted and runs again answers first
        assert sent.names.count("bulkWrite") == 2 and sent.names.count("abortTransaction") == 1
        names = {d["_id"]: d["name"] for d in await repo.collection.find({}).to_list(None)}
        assert names["G-retried"] == "一" and "G-refused" not in names
        assert all(names[f"G{n}"] == f"n{n}" for n in range(28))
        assert await db["outbox"].count_documents({}) == staged + 1  # one outbox document per transaction
        assert len(await db[audit.COLLECTION].find({"action": "name"}).to_list(None)) == 29
    finally:
        await client.close()
