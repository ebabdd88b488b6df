"""The command path: how every write API of every service changes state.

A request becomes a typed :class:`Command` (name, target, actor, idempotency key, reason).
The service's pure ``decide(state) -> Decision`` (in its ``core``) returns the new state, the
typed events and the answer, or raises a :class:`DomainError`. The unit of work
(hotline/uow.py; :meth:`CommandBus.run` for one command, hotline/bus.py's ``MessageBus`` for
typed commands and a consumer's batch) applies it in ONE store transaction:

1. look up the idempotency key (per actor): a retried request gets the first answer back and
   changes and emits nothing;
2. load the state through the service's :class:`Repository`, decide, save;
3. stage the events in the outbox (deterministic ids; the relay publishes them);
4. write the audit entry (actor, time, action, reason, before, after) and the stored answer.

Round trips to the store: the answer, the save, the events and the audit entry are one client
bulk write when the repository says where its state lives (``source``/``loaded``/``write_ops``,
see :class:`Repository`): the state's find, the write and the commit = 3 (the answer is not
looked up first: a retried key fails the answer's insert and runs again reading it, see
hotline/uow.py); 4 for a repository that only has ``load`` and ``save``; 7 before.

HTTP and gRPC adapters stay thin: build the command, call ``run``, return the answer. Domain
errors map to status codes once, here (:data:`HTTP_STATUS`, :data:`GRPC_STATUS`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc
from google.protobuf.message import Message
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.auth import Principal
from hotline.clock import Clock
from hotline.envelope import Event
from hotline.mongo import Doc
from hotline.outbox import Outbox

S = TypeVar("S")
IDEMPOTENCY = "commands"  # collection of answers by (actor, idempotency key)

HTTP_STATUS = {
    "invalid_argument": 400, "not_found": 404, "failed_precondition": 409, "already_exists": 409,
    "permission_denied": 403,
}
GRPC_STATUS = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT, "not_found": grpc.StatusCode.NOT_FOUND,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION, "already_exists": grpc.StatusCode.ALREADY_EXISTS,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
}


class DomainError(Exception):
    """A refused command. ``code`` picks the HTTP / gRPC status; ``message`` says precisely why
    (for an illegal transition: the state it is in and the states that allow the action)."""

    def __init__(self, code: str, message: str) -> None:
        if code not in HTTP_STATUS:
            raise ValueError(f"unknown domain error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


def Invalid(message: str) -> DomainError:  # noqa: N802 (reads as a kind of error)
    return DomainError("invalid_argument", message)


def NotFound(what: str, key: str) -> DomainError:  # noqa: N802
    return DomainError("not_found", f"{what} {key!r} not found")


def Illegal(message: str) -> DomainError:  # noqa: N802
    return DomainError("failed_precondition", message)


def Exists(message: str) -> DomainError:  # noqa: N802
    return DomainError("already_exists", message)


def grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """How the gRPC interceptor answers an exception a servicer raised (None: not ours)."""
    if isinstance(exc, DomainError):
        return GRPC_STATUS[exc.code], exc.message
    return None


@dataclass(frozen=True)
class Command:
    """The envelope every command carries."""

    name: str  # e.g. "sign_off"
    target: str  # the aggregate's id, e.g. the ticket id
    actor: Principal
    idempotency_key: str
    reason: str = ""


@dataclass(frozen=True)
class Decision(Generic[S]):
    """What a pure ``decide`` returns."""

    state: S | None  # the new state to save (None: nothing to save)
    events: Sequence[Message] = ()  # typed events, published keyed by ``key`` (default: the target)
    answer: Message | Doc | None = None  # returned to the caller; defaults to ``state``
    key: str = ""  # Kafka key of the events (the ticket id) when it is not the command's target
    audit: Doc = field(default_factory=dict)  # extra fields for the audit entry
    outbound: Sequence[Event] = ()  # ready-made events for other topics (e.g. JSON results to the city)
    # nothing happened: a message delivered again whose effect is already in the state (e.g. an evaluation
    # kept in the inbox before its case existed, replayed). No audit entry and no stored answer, so a
    # replay leaves no trace either. Only with state None, no events and no outbound.
    unchanged: bool = False


class Repository(Protocol[S]):
    """The store of one kind of aggregate, as the command path needs it.

    A repository may also offer, to bring a command to three store round trips (one read, one
    bulk write, the commit) instead of seven:

    * ``source(target) -> (collection, filter) | None`` and ``async loaded(doc, session) -> S | None``:
      the one document the state is made of, read together with the stored answer (``None``: use ``load``);
    * ``async write_ops(state, session) -> list`` of client bulk-write models (``ReplaceOne(...,
      namespace=collection.full_name)``): the save, written in the same bulk write as the
      events, the audit entry and the answer (without it: ``save``).
    """

    kind: str  # "case", "assignment", "list_item", "deputy", ...

    async def load(self, target: str, session: AsyncClientSession | None) -> S | None: ...

    async def save(self, state: S, session: AsyncClientSession | None) -> None: ...


def as_doc(state: Any) -> Doc | None:
    """A state as the audit trail keeps it."""
    if state is None:
        return None
    if isinstance(state, Message):
        return pb.to_doc(state)
    if callable(getattr(state, "to_doc", None)):  # a state holding messages says how it reads
        doc: Doc = state.to_doc()
        return doc
    if is_dataclass(state) and not isinstance(state, type):
        return asdict(state)
    if isinstance(state, dict):
        return {k: v for k, v in state.items() if k != "_id"}
    return {"value": repr(state)}


class CommandBus:
    """``run(command, repo, decide, topic)``: one command through the service's unit of work
    (hotline/uow.py, :class:`~hotline.uow.MongoUnitOfWork`). Typed commands go through the
    message bus (hotline/bus.py), which uses the same unit of work (``uow``)."""

    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], outbox: Outbox, service: str,
                 clock: Clock | None = None, **group: int) -> None:
        from hotline.uow import MongoUnitOfWork  # the unit of work builds on this module's types

        self.uow = MongoUnitOfWork(client, db, outbox, service, clock, **group)
        self.client = client
        self.db = db
        self.outbox = outbox
        self.service = service
        self.clock = self.uow.clock

    async def run(self, command: Command, repo: Repository[S],
                  decide: Callable[[S | None], Decision[S] | Awaitable[Decision[S]]], topic: str) -> Any:
        """Apply ``command`` once: see the module doc. Returns the answer (the first one again
        for a retried idempotency key). Raises DomainError when ``decide`` refuses."""
        from hotline.uow import Work

        result = await self.uow.run_one(Work(command, repo, decide, topic))
        if isinstance(result, DomainError):
            raise result
        return result
