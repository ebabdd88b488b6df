"""The command path: how every write API of every service changes state.

A request becomes a typed :class:`Command` (name, target, actor, idempotency key, reason).
The service's pure ``decide(state) -> Decision`` (in its ``core``) returns the new state, the
typed events and the answer, or raises a :class:`DomainError`. :meth:`CommandBus.run` applies
it in ONE store transaction:

1. look up the idempotency key (per actor): a retried request gets the first answer back and
   changes and emits nothing;
2. load the state through the service's :class:`Repository`, decide, save;
3. stage the events in the outbox (deterministic ids; the relay publishes them);
4. write the audit entry (actor, time, action, reason, before, after) and the stored answer.

Round trips to the store: the save, the events, the audit entry and the answer are one client
bulk write when the repository says where its state lives (``source``/``loaded``/``write_ops``,
see :class:`Repository`): the answer's find, the state's find, the write and the commit = 4
(3 with ``combined_read``: 1 and the load in one aggregation); 5 for a repository that only
has ``load`` and ``save``; 7 before.

HTTP and gRPC adapters stay thin: build the command, call ``run``, return the answer. Domain
errors map to status codes once, here (:data:`HTTP_STATUS`, :data:`GRPC_STATUS`).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from pymongo import AsyncMongoClient, InsertOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ClientBulkWriteException, DuplicateKeyError, PyMongoError

from hotline import audit, pb
from hotline.auth import Principal
from hotline.clock import Clock, SystemClock
from hotline.envelope import Event, event_id
from hotline.mongo import DUPLICATE_KEY, Doc, insert_missing
from hotline.outbox import Outbox

S = TypeVar("S")
IDEMPOTENCY = "commands"  # collection of answers by (actor, idempotency key)
_OF = "_hotline_of"  # marks which document of the combined read is which

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
    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], outbox: Outbox, service: str,
                 clock: Clock | None = None, combined_read: bool = False) -> None:
        self.client = client
        self.db = db
        self.outbox = outbox
        self.service = service
        self.clock = clock or SystemClock()
        self.answers = db[IDEMPOTENCY]
        # the answer and the state in ONE aggregation ($unionWith): 3 round trips instead of 4, but
        # the development store (SecantusDB) spends ~3 ms more CPU on that aggregation than on the
        # two finds (bench/README.md), so it is off by default; on MongoDB it is the cheaper one
        self.combined_read = combined_read
        self.audit_namespace = db[audit.COLLECTION].full_name

    async def _answer_and_state(self, digest: str, where: tuple[str, Doc], session: AsyncClientSession,
                                ) -> tuple[Doc | None, Doc | None]:
        """The stored answer of ``digest`` and the state document ``where`` names (collection,
        filter), in one aggregation (``$unionWith``)."""
        collection, query = where
        cursor = await self.answers.aggregate([
            {"$match": {"_id": digest}}, {"$addFields": {_OF: "answer"}},
            {"$unionWith": {"coll": collection, "pipeline": [{"$match": query}, {"$limit": 1},
                                                               {"$addFields": {_OF: "state"}}]}},
        ], session=session)
        found: dict[str, Doc] = {}
        async for doc in cursor:
            found.setdefault(doc.pop(_OF, ""), doc)
        return found.get("answer"), found.get("state")

    async def run(self, command: Command, repo: Repository[S],
                  decide: Callable[[S | None], Decision[S] | Awaitable[Decision[S]]], topic: str) -> Any:
        """Apply ``command`` once: see the module doc. Returns the answer (the first one again
        for a retried idempotency key). Raises DomainError when ``decide`` refuses."""
        if not command.idempotency_key or len(command.idempotency_key) > 200:
            raise Invalid("an idempotency key of 1-200 characters is required (header Idempotency-Key, "
                          "gRPC metadata idempotency-key)")
        digest = hashlib.sha256(
            f"{self.service}|{command.actor.subject}|{command.idempotency_key}".encode()).hexdigest()[:32]

        async def transaction(session: AsyncClientSession) -> Any:
            source = getattr(repo, "source", None)
            where = source(command.target) if source is not None else None
            doc: Doc | None = None
            if where is not None and self.combined_read:  # one round trip: the stored answer and the state
                stored, doc = await self._answer_and_state(digest, where, session)
            else:
                stored = await self.answers.find_one({"_id": digest}, session=session)
                if stored is None and where is not None:
                    doc = await self.db[where[0]].find_one(where[1], session=session)
            if stored is not None:
                if stored["command"] != command.name:
                    raise Invalid(f"idempotency key {command.idempotency_key!r} was used for "
                                  f"{stored['command']}, not {command.name}")
                return _answer(stored)
            if where is not None:
                before = await repo.loaded(doc, session)  # type: ignore[attr-defined]
            else:
                before = await repo.load(command.target, session)
            decision = decide(before)
            if inspect.isawaitable(decision):
                decision = await decision
            if decision.unchanged:
                if decision.state is not None or decision.events or decision.outbound:
                    raise TypeError("an unchanged decision saves and emits nothing")
                return decision.answer if decision.answer is not None else before
            writes: list[Any] = []
            if decision.state is not None:
                write_ops = getattr(repo, "write_ops", None)
                if write_ops is not None:  # the save joins the one bulk write below
                    writes += await write_ops(decision.state, session)
                else:
                    await repo.save(decision.state, session)
            key = decision.key or command.target
            now = self.clock.now()
            events = [
                Event(topic, key, message,
                      event_id(key, message.DESCRIPTOR.name, digest[:16], *([str(i)] if i else [])),
                      correlation_id=key, occurred_at=now)
                for i, message in enumerate(decision.events)
            ]
            staged = self.outbox.documents([*events, *decision.outbound])  # ids in publishing order
            if decision.outbound:  # ready-made event ids: one staged before is kept, not an error
                await insert_missing(self.outbox.collection, staged[len(events):], session)
            outbox = self.outbox.collection.full_name
            writes += [InsertOne(d, namespace=outbox) for d in staged[:len(events)]]
            answer = decision.answer if decision.answer is not None else decision.state
            writes.append(InsertOne(audit.entry(
                at=now, actor=command.actor.as_doc(), action=command.name, kind=repo.kind, target_id=command.target,
                ticket_id=key, reason=command.reason, before=as_doc(before), after=as_doc(decision.state),
            ) | decision.audit, namespace=self.audit_namespace))
            writes.append(InsertOne({
                "_id": digest, "command": command.name, "target": command.target, "at": now, **_stored(answer),
            }, namespace=self.answers.full_name))
            # state, events, audit entry and answer: ONE round trip (MongoDB 8's bulkWrite; SecantusDB has it)
            try:
                await self.client.bulk_write(writes, session=session, ordered=True)
            except ClientBulkWriteException as exc:
                raise _unwrapped(exc) from exc
            if staged:
                self.outbox.staged()
            return answer

        async with self.client.start_session() as session:
            return await session.with_transaction(transaction)


def _unwrapped(exc: ClientBulkWriteException) -> PyMongoError:
    """The error a client bulk write wraps, as the single write would have raised it: a write
    conflict keeps its TransientTransactionError label (``with_transaction`` retries it), a
    duplicate key is a DuplicateKeyError."""
    if isinstance(exc.error, PyMongoError):
        return exc.error
    errors: Any = exc.details.get("writeErrors") or []  # documents, whatever the annotation says
    for error in errors:
        if isinstance(error, dict) and error.get("code") == DUPLICATE_KEY:
            return DuplicateKeyError(error.get("errmsg", "duplicate key"), DUPLICATE_KEY, error)
    return exc


def _stored(answer: Any) -> Doc:
    if isinstance(answer, Message):
        return {"answer_type": answer.DESCRIPTOR.full_name, "answer": answer.SerializeToString()}
    if isinstance(answer, dict):
        return {"answer_type": "", "answer": answer}
    raise TypeError(f"a command's answer is a protobuf message or a document, not {type(answer).__name__}")


def _answer(stored: Doc) -> Any:
    if not stored["answer_type"]:
        return stored["answer"]
    cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(stored["answer_type"]))
    message = cls()
    message.ParseFromString(stored["answer"])
    return message
