"""Group commit (hotline/uow.py ``run_one``): requests' commands handled at the same moment share
a transaction, with the answers, refusals and retries each would have had alone. In memory: no
Kafka, no store (tests/integration/test_commands.py runs it against the store)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from hotline.auth import Principal
from hotline.bus import MessageBus, Request
from hotline.commands import Command, Decision, DomainError, Illegal
from hotline.policy import Role
from hotline.uow import InMemoryUnitOfWork, Work
from hotline.v1 import events_pb2 as S

UNIT = Principal("unit:ST01", Role.UNIT, "ST01")


@dataclass(frozen=True)
class Append(Request[S.Unit], message=S.Unit):
    """Appends ``body.name`` to unit ``body.unit_id``'s name; "!" is refused, "boom" is a bug."""


class Units:
    kind = "unit"


def bus_with(uow: InMemoryUnitOfWork, nested: MessageBus | None = None) -> MessageBus:
    bus = MessageBus(uow)

    async def append(command: Append) -> Work[Any]:
        async def decide(unit: S.Unit | None) -> Decision[S.Unit]:
            if command.body.name == "!":
                raise Illegal("refused")
            if command.body.name == "boom":
                raise RuntimeError("a bug in one command")
            if command.body.name == "nested" and nested is not None:  # a step that sends a command itself
                await nested.handle(Append(S.Unit(unit_id=command.body.unit_id + "-child", name="c"), UNIT,
                                           command.idempotency_key + "/child"))
            now = S.Unit(unit_id=command.body.unit_id, name=(unit.name if unit else "") + command.body.name)
            return Decision(now, events=[now])
        return Work(Command(Append.name, command.body.unit_id, command.actor, command.idempotency_key), Units(),
                    decide, "t.units")

    bus.register(Append, append)
    return bus


def cmd(target: str, name: str, key: str) -> Append:
    return Append(S.Unit(unit_id=target, name=name), UNIT, key)


async def test_concurrent_commands_share_transactions_and_each_gets_its_own_answer() -> None:
    uow = InMemoryUnitOfWork("kit")
    bus = bus_with(uow)
    answers = await asyncio.gather(*(bus.handle(cmd(f"U{n}", str(n), f"k{n}")) for n in range(100)))
    assert [a.name for a in answers] == [str(n) for n in range(100)]
    assert [uow.state("unit", f"U{n}").name for n in range(100)] == [str(n) for n in range(100)]
    assert len(uow.audit) == len(uow.events) == len(uow.stored) == 100
    assert uow.commits == uow.groups == 2  # 64 + 36: group_max per transaction, not 100 transactions


async def test_a_lone_command_is_one_transaction_at_once() -> None:
    uow = InMemoryUnitOfWork("kit")
    bus = bus_with(uow)
    for n in range(3):
        assert (await bus.handle(cmd("U", str(n), f"k{n}"))).name == "012"[: n + 1]
    assert uow.commits == uow.groups == 3


async def test_the_same_target_in_a_group_sees_the_commands_before_it() -> None:
    uow = InMemoryUnitOfWork("kit")
    bus = bus_with(uow)
    answers = await asyncio.gather(*(bus.handle(cmd("U", c, f"k{c}")) for c in "abcde"))
    assert [a.name for a in answers] == ["a", "ab", "abc", "abcd", "abcde"]
    assert uow.groups == 1 and uow.commits == 5  # one group, one transaction per command on the same target


async def test_refusals_and_retries_in_a_group_answer_as_they_would_alone() -> None:
    uow = InMemoryUnitOfWork("kit")
    bus = bus_with(uow)
    first = await bus.handle(cmd("A", "a", "k-a"))
    results = await asyncio.gather(
        bus.handle(cmd("A", "a", "k-a")),  # retried: the first answer, applied once
        bus.handle(cmd("B", "!", "k-b")),  # refused: this caller's error only
        bus.handle(cmd("C", "c", "k-c")),
        return_exceptions=True)
    assert results[0] == first and results[2] == S.Unit(unit_id="C", name="c")
    assert isinstance(results[1], DomainError) and results[1].code == "failed_precondition"
    assert uow.state("unit", "A").name == "a" and uow.state("unit", "B") is None
    assert uow.groups == 2 and [e["target_id"] for e in uow.audit] == ["A", "C"]


async def test_one_commands_fault_answers_that_command_only() -> None:
    uow = InMemoryUnitOfWork("kit")
    bus = bus_with(uow)
    results = await asyncio.gather(*(bus.handle(cmd(f"U{n}", "boom" if n == 2 else "x", f"k{n}")) for n in range(5)),
                                   return_exceptions=True)
    assert isinstance(results[2], RuntimeError)
    assert [r.name for i, r in enumerate(results) if i != 2] == ["x"] * 4
    assert uow.state("unit", "U2") is None and len(uow.audit) == 4  # the group ran again, one by one


async def test_a_caller_that_gave_up_before_its_group_ran_changes_nothing() -> None:
    uow = InMemoryUnitOfWork("kit", groups_in_flight=1)
    bus = bus_with(uow)
    first = asyncio.ensure_future(bus.handle(cmd("A", "a", "k-a")))
    await asyncio.sleep(0)  # the first group is running: the next ones wait
    gone = asyncio.ensure_future(bus.handle(cmd("B", "b", "k-b")))
    kept = asyncio.ensure_future(bus.handle(cmd("C", "c", "k-c")))
    await asyncio.sleep(0)
    gone.cancel()
    assert (await first).name == "a" and (await kept).name == "c"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert uow.state("unit", "B") is None and [e["target_id"] for e in uow.audit] == ["A", "C"]


async def test_a_command_sent_from_inside_a_group_does_not_wait_behind_it() -> None:
    uow = InMemoryUnitOfWork("kit", groups_in_flight=1)
    bus = bus_with(uow)
    nesting = bus_with(uow, nested=bus)
    answers = await asyncio.wait_for(asyncio.gather(*(nesting.handle(cmd(f"N{n}", "nested", f"n{n}"))
                                                      for n in range(3))), timeout=5)
    assert [a.name for a in answers] == ["nested"] * 3
    assert [uow.state("unit", f"N{n}-child").name for n in range(3)] == ["c"] * 3


async def test_group_max_one_keeps_every_command_alone() -> None:
    uow = InMemoryUnitOfWork("kit", group_max=1)
    bus = bus_with(uow)
    await asyncio.gather(*(bus.handle(cmd(f"U{n}", "x", f"k{n}")) for n in range(5)))
    assert uow.commits == 5 and uow.groups == 0
