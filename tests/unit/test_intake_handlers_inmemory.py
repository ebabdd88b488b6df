"""Intake's ReceiveTicket handler (services/intake/commands.py) and its consumer's batch
(handlers.py TicketIntake.apply, one ``bus.handle_many``) through the kit's message bus with the
in-memory unit of work (hotline/uow.py): no Kafka, no store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pytest

from hotline.bus import MessageBus
from hotline.clock import ManualClock
from hotline.envelope import Record
from hotline.uow import InMemoryUnitOfWork
from hotline.v1 import events_pb2, ticket_pb2
from services.intake import commands as ic
from services.intake import handlers as ih
from services.intake.store import MAX_REPEAT_LINKS, TicketStore
from tests.unit.test_intake_core import NOW

SECRET = "hash-key"


class Repeats:
    """The repeat index as the in-memory unit of work committed it: each key's tickets in
    commit order (the store keeps the latest MAX_REPEAT_LINKS), read newest first."""

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self.uow = uow
        self.reads = 0

    async def earlier_by_keys(self, keys: Sequence[str]) -> dict[str, list[str]]:
        self.reads += 1
        found: dict[str, list[str]] = {}
        for (kind, tid), state in self.uow.states.items():
            for key in state.remembered if kind == "ticket" else []:
                found.setdefault(key, []).append(tid)
        return {k: ids[-MAX_REPEAT_LINKS:][::-1] for k, ids in found.items() if k in keys}


class Repo:
    kind = "ticket"


def env() -> tuple[MessageBus, InMemoryUnitOfWork, Repeats, ih.TicketIntake]:
    uow = InMemoryUnitOfWork("intake", ManualClock(NOW))
    bus = MessageBus(uow)
    repeats = Repeats(uow)
    consumer = ih.TicketIntake(cast(TicketStore, None), "city", "deputy", "ticket_events", SECRET,
                               ManualClock(NOW), bus=bus)
    ic.register(bus, ic.IntakeHandlers(Repo(), repeats, "ticket_events", SECRET, consumer.counted))
    return bus, uow, repeats, consumer


def ticket(tid: str, phone: str = "", address: str = "", source: str = "city") -> ticket_pb2.Ticket:
    t = ticket_pb2.Ticket(ticket_id=tid, source=source, title="噪音", address=address,
                          ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT)
    t.caller.name, t.caller.phone = "王五", phone
    t.ingested_at.FromDatetime(NOW)
    return t


def items(*tickets: ticket_pb2.Ticket) -> list[tuple[Record, ticket_pb2.Ticket]]:
    return [(Record("city", 0, n, t.ticket_id, b"", {}, -1), t) for n, t in enumerate(tickets)]


def received(uow: InMemoryUnitOfWork) -> list[events_pb2.TicketReceived]:
    return cast(list[events_pb2.TicketReceived], uow.published(events_pb2.TicketReceived))


async def test_a_batch_is_one_transaction_storing_announcing_and_auditing_each_ticket() -> None:
    bus, uow, repeats, consumer = env()
    assert await consumer.apply(items(ticket("C1", "13800000001"), ticket("C2"), ticket("C3"))) == []
    assert uow.commits == 1 and repeats.reads == 1  # the repeat keys of the batch read once
    assert not uow.stored  # ReceiveTicket is idempotent on the state (by_state): no stored answers
    assert [e.ticket.ticket_id for e in received(uow)] == ["C1", "C2", "C3"]
    assert all(e.topic == "ticket_events" and e.key == cast(events_pb2.TicketReceived, e.message).ticket.ticket_id
               for e in uow.events)
    first = received(uow)[0].ticket
    assert not first.caller.phone and not first.caller.name and first.caller_key  # no contact leaves intake
    assert uow.state("ticket", "C1").ticket.caller.phone == "13800000001"  # intake keeps it
    assert [(a["action"], a["target_id"], a["reason"]) for a in uow.audit] == [
        ("receive", "C1", "source city"), ("receive", "C2", "source city"), ("receive", "C3", "source city")]
    assert all("13800000001" not in str(a) and "王五" not in str(a) for a in uow.audit)  # the trail: no contact


async def test_a_replayed_batch_changes_and_emits_nothing() -> None:
    bus, uow, _, consumer = env()
    await consumer.apply(items(ticket("C1", "13800000001"), ticket("C2", "13800000001")))
    before = (len(uow.events), len(uow.audit), {k: s.ticket.SerializeToString() for k, s in uow.states.items()})
    await consumer.apply(items(ticket("C1", "13800000001"), ticket("C2", "13800000001")))
    assert (len(uow.events), len(uow.audit), {k: s.ticket.SerializeToString() for k, s in uow.states.items()}) \
        == before
    assert uow.state("ticket", "C2").remembered  # and the repeat index is not added to again
    again = await bus.handle(ic.receive(ticket("C1", "13800000001")))
    assert isinstance(again, events_pb2.TicketReceived) and again.ticket.ticket_id == "C1"  # the first answer


async def test_the_same_id_twice_in_a_batch_is_stored_once() -> None:
    _, uow, _, consumer = env()
    await consumer.apply(items(ticket("C1", address="幸福路1号"), ticket("C1", address="别处")))
    assert uow.state("ticket", "C1").ticket.address == "幸福路1号" and len(received(uow)) == 1


async def test_a_ticket_stored_without_an_answer_is_left_as_it_is() -> None:
    bus, uow, _, _ = env()
    uow.states["ticket", "C1"] = ic.Received(ticket("C1", address="幸福路1号"))  # another replica stored it
    await bus.handle(ic.receive(ticket("C1", address="别处")))
    assert uow.state("ticket", "C1").ticket.address == "幸福路1号" and not uow.events and not uow.audit


async def test_repeats_link_to_earlier_tickets_in_the_store_and_in_the_same_batch() -> None:
    _, uow, repeats, consumer = env()
    await consumer.apply(items(ticket("C1", "13800000001"), ticket("C2", address="幸福路1号")))
    assert list(uow.state("ticket", "C1").ticket.repeat_of) == []
    await consumer.apply(items(ticket("C3", "13800000001", "幸福路1号"), ticket("C4", "13800000001"),
                               ticket("C5", address="别处")))
    assert list(uow.state("ticket", "C3").ticket.repeat_of) == ["C1", "C2"]
    assert list(uow.state("ticket", "C4").ticket.repeat_of) == ["C3", "C1"]  # newest first, C3 of this batch
    assert list(uow.state("ticket", "C5").ticket.repeat_of) == []
    by_id = {e.ticket.ticket_id: list(e.ticket.repeat_of) for e in received(uow)}
    assert by_id["C4"] == ["C3", "C1"]  # the event carries the links
    assert repeats.reads == 2  # one read per batch


async def test_links_are_capped_and_anonymous_callers_are_not_linked() -> None:
    _, uow, _, consumer = env()
    await consumer.apply(items(*[ticket(f"C{n}", "13800000001") for n in range(MAX_REPEAT_LINKS + 2)]))
    last = uow.state("ticket", f"C{MAX_REPEAT_LINKS + 1}").ticket
    assert len(last.repeat_of) == MAX_REPEAT_LINKS and last.repeat_of[0] == f"C{MAX_REPEAT_LINKS}"
    anonymous = ticket("A1", "13800000001")
    anonymous.caller.anonymous = True
    await consumer.apply(items(anonymous))
    assert list(uow.state("ticket", "A1").ticket.repeat_of) == [] and not uow.state("ticket", "A1").remembered


async def test_a_command_carries_a_ticket() -> None:
    with pytest.raises(TypeError):
        ic.ReceiveTicket(events_pb2.TicketReceived(), ic.INTAKE, "x/received")  # type: ignore[arg-type]
