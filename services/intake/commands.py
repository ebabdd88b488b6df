"""Intake's one command: a ticket received (受理), from the city platform or a deputy submission.

The consumer (handlers.py TicketIntake) sends its batch as :class:`ReceiveTicket` commands through
the service's message bus (hotline/bus.py ``handle_many``): one transaction per batch, in which the
tickets, the repeat index's additions (重复诉求), the batch's TicketReceived events (ONE outbox
document) and the audit entries are one bulk write. ReceiveTicket is idempotent on the state
(``by_state``): no answer is stored; a replayed record (key ``<ticket_id>/received``) finds its
ticket stored and changes and emits nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.auth import Principal
from hotline.bus import MessageBus, Request
from hotline.commands import Command, Decision
from hotline.mongo import Doc, find_in
from hotline.uow import Work
from hotline.v1 import events_pb2, ticket_pb2
from services.intake import core
from services.intake.store import MAX_REPEAT_LINKS

INTAKE = Principal.system("intake")


class ReceiveTicket(Request[ticket_pb2.Ticket], message=ticket_pb2.Ticket, name="receive"):
    """A parsed ticket (handlers.py ``decode``), to store and announce once. Idempotent on the
    state (a ticket stored already changes nothing): no stored answer (hotline/bus.py ``by_state``)."""

    by_state = True


def receive(ticket: ticket_pb2.Ticket) -> ReceiveTicket:
    return ReceiveTicket(ticket, INTAKE, f"{ticket.ticket_id}/received")


@dataclass
class Received:
    """A stored ticket, and the repeat keys its receipt adds it under (the repeat index's write)."""

    ticket: ticket_pb2.Ticket
    remembered: list[str] = field(default_factory=list)

    def to_doc(self) -> Doc:
        return pb.to_doc(self.ticket)


class RepeatIndex(Protocol):
    async def earlier_by_keys(self, keys: Sequence[str]) -> dict[str, list[str]]:
        """For each repeat key, the latest tickets that named it, newest first."""


class _Batch:
    """The repeat keys of the commands of one batch, read once (at the first decision) and
    updated in memory as the batch's tickets are linked, so a ticket links to an earlier one of
    the same batch. A transaction retried whole decides again: each ticket's links are kept."""

    def __init__(self, index: RepeatIndex) -> None:
        self.index = index
        self.wanted: set[str] = set()
        self.known: dict[str, list[str]] | None = None
        self.linked: dict[str, tuple[list[str], list[str]]] = {}

    async def link(self, ticket_id: str, keys: list[str]) -> tuple[list[str], list[str]]:
        """The ticket's links (newest first) and the keys to remember it under."""
        if ticket_id in self.linked:
            return self.linked[ticket_id]
        if self.known is None:
            self.known = await self.index.earlier_by_keys(sorted(self.wanted))
        links: list[str] = []
        added: list[str] = []
        for key in keys:
            earlier = self.known.setdefault(key, [])
            links += [i for i in earlier if i != ticket_id and i not in links]
            if ticket_id not in earlier:
                earlier.insert(0, ticket_id)
                added.append(key)
        self.linked[ticket_id] = (links[:MAX_REPEAT_LINKS], added)
        return self.linked[ticket_id]


class TicketRepository:
    """``tickets`` (and the repeat index's additions, written with the ticket)."""

    kind = "ticket"

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.tickets = db["tickets"]
        self.repeat_keys = db["repeat_keys"]

    def source(self, target: str) -> tuple[str, Doc]:
        return self.tickets.name, {"_id": target}

    async def loaded(self, doc: Doc | None, session: AsyncClientSession | None) -> Received | None:
        return Received(pb.from_doc(doc, ticket_pb2.Ticket)) if doc else None

    async def load(self, target: str, session: AsyncClientSession | None) -> Received | None:
        return await self.loaded(await self.tickets.find_one({"_id": target}, session=session), session)

    async def write_ops(self, state: Received, session: AsyncClientSession | None) -> list[Any]:
        t = state.ticket
        return [InsertOne({"_id": t.ticket_id, **pb.to_doc(t)}, namespace=self.tickets.full_name)] + [
            UpdateOne({"_id": key}, {"$push": {"ids": {"$each": [t.ticket_id], "$slice": -MAX_REPEAT_LINKS}}},
                      upsert=True, namespace=self.repeat_keys.full_name)
            for key in state.remembered]

    async def save(self, state: Received, session: AsyncClientSession | None) -> None:
        t = state.ticket
        await self.tickets.insert_one({"_id": t.ticket_id, **pb.to_doc(t)}, session=session)
        for key in state.remembered:
            await self.repeat_keys.update_one(
                {"_id": key}, {"$push": {"ids": {"$each": [t.ticket_id], "$slice": -MAX_REPEAT_LINKS}}},
                upsert=True, session=session)


class StoredRepeats:
    """The repeat index as the store keeps it (``repeat_keys``)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.repeat_keys = db["repeat_keys"]

    async def earlier_by_keys(self, keys: Sequence[str]) -> dict[str, list[str]]:
        return {d["_id"]: d["ids"][::-1] for d in await find_in(self.repeat_keys, keys)} if keys else {}


class IntakeHandlers:
    """The handler of :class:`ReceiveTicket`: the ticket, linked to the latest earlier ones with
    the same caller phone or address (重复诉求), stored with TicketReceived (no contact)."""

    def __init__(self, repo: Any, repeats: RepeatIndex, out_topic: str, hash_secret: str,
                 received: Callable[[ticket_pb2.Ticket], None] | None = None) -> None:
        self.repo = repo
        self.repeats = repeats
        self.out_topic = out_topic
        self.hash_secret = hash_secret
        self.received = received  # after the commit of a ticket stored (the counters)
        self._batch: _Batch | None = None

    def _joined(self, keys: list[str]) -> _Batch:
        if self._batch is None or self._batch.known is not None:  # a new batch once the last one read
            self._batch = _Batch(self.repeats)
        self._batch.wanted.update(keys)
        return self._batch

    async def receive(self, command: ReceiveTicket) -> Work[Received]:
        ticket = ticket_pb2.Ticket()
        ticket.CopyFrom(command.body)
        keys = core.repeat_keys(ticket, self.hash_secret)
        batch = self._joined(keys)

        async def decide(before: Received | None) -> Decision[Received]:
            if before is not None:  # stored already (a replay, or another replica): the first answer again
                return Decision(None, answer=events_pb2.TicketReceived(
                    ticket=core.without_contact(before.ticket, self.hash_secret)), unchanged=True)
            links, added = await batch.link(ticket.ticket_id, keys)
            ticket.repeat_of[:] = links
            announced = events_pb2.TicketReceived(ticket=core.without_contact(ticket, self.hash_secret))
            return Decision(Received(ticket, added), [announced], answer=announced)

        received = self.received
        done = (lambda _answer: received(ticket)) if received is not None else None
        return Work(Command(command.name, ticket.ticket_id, command.actor, command.idempotency_key,
                            f"source {ticket.source}"),
                    self.repo, decide, self.out_topic, done)


def register(bus: MessageBus, handlers: IntakeHandlers) -> None:
    bus.register(ReceiveTicket, handlers.receive)
