"""The unit of work: where the command path's one transaction happens (cosmicpython's UoW).

A :class:`Work` is what a command handler asks for (hotline/bus.py): the command's envelope
(name, target, actor, idempotency key, reason), the repository of its aggregate, the pure
``decide`` and the topic of its events. A unit of work applies a list of them, the steps of
hotline/commands.py once for both stores:

1. the states of the commands' targets, by repository kind and target; ``decide``; a refusal
   (:class:`DomainError`) is that command's result and the others go on;
2. stage the new states, the events (deterministic ids), the audit entries and the answers
   under the commands' idempotency keys (per actor);
3. commit.

A retried command gets the first answer back and changes and emits nothing. Its stored answer
is not looked up before every command (most commands are new): the answers are inserted FIRST
in the one bulk write, so a retried key fails that insert (duplicate key), the transaction is
aborted and the batch runs again reading the stored answers first (``answers_first``, the way
every command ran before). A command ``decide`` refused or found unchanged is looked up too (a
retry whose first attempt changed the state may be refused by it now), in one read for the batch.

:class:`MongoUnitOfWork` does that in ONE store transaction per batch: the states' find (one
per collection), one client bulk write (answers, states, outbox, audit) and the commit,
whatever the batch's size: a single command costs 3 round trips (4 when refused, 6 when it is a
retry that is not refused). :class:`InMemoryUnitOfWork` keeps everything in dicts and lists, for
the unit tests of the handlers (no Kafka, no store), and takes the same two paths.

A command marked ``by_state`` (idempotent on the state: a consumed ticket received, routed, a
round opened) has no stored answer: none is read or stored for it; its ``decide`` says "changes
nothing" when the state holds its effect. A transaction's events are ONE outbox document
(hotline/outbox.py ``Outbox.batched``).

A batch never holds the same target or the same idempotency key twice: such a command starts
the next transaction, so it sees what the one before it committed.

Group commit (``run_one``, what ``bus.handle`` and ``CommandBus.run`` use): a request's command
does not get a transaction of its own when the store is busy. At most ``groups_in_flight``
transactions of single commands run at once per unit of work; the commands that arrive meanwhile
wait and go together, up to ``group_max``, in the next one (``run``: same answers, same
refusals, one command per target and key per transaction). An idle service answers a lone
command at once (no timer, no added wait); a busy one sends the store fewer, larger transactions
(on SecantusDB every statement walks every open transaction: measured in
docs/notes/issue-21-cost.md). A batch that fails as a whole for another reason than the store
being away is run again command by command, so one command's fault answers that command only.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import hashlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from pymongo import AsyncMongoClient, DeleteMany, InsertOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ClientBulkWriteException, ConnectionFailure, DuplicateKeyError, PyMongoError

from hotline import audit
from hotline.clock import Clock, SystemClock
from hotline.commands import IDEMPOTENCY, Command, Decision, DomainError, Invalid, Repository, as_doc
from hotline.envelope import Event, event_id
from hotline.mongo import DUPLICATE_KEY, Doc, find_in, insert_missing
from hotline.observability import COMMAND_GROUP, COMMAND_GROUP_SECONDS, TRANSACTION_RUNS
from hotline.outbox import Outbox

S = TypeVar("S")
_MISSING = object()
_IN_GROUP: contextvars.ContextVar[bool] = contextvars.ContextVar("in_command_group", default=False)


@dataclass
class Work(Generic[S]):
    """One command as a unit of work applies it (a handler's answer, hotline/bus.py)."""

    command: Command
    repo: Repository[S]
    decide: Callable[[S | None], Decision[S] | Awaitable[Decision[S]]]
    topic: str
    # after the commit, with the answer, when this command changed something (not for a retried key)
    done: Callable[[Any], None] | None = None
    # the decision is idempotent on the state (a consumed record applied again finds its effect in
    # the state and changes nothing): no stored answer is read or written for it (the bus sets it
    # from the command type's ``by_state``; hotline/bus.py)
    by_state: bool = False


@dataclass
class _Applied:
    """What one command staged (the store-independent part)."""

    work: Work[Any]
    digest: str
    before: Any
    decision: Decision[Any]
    events: list[Event] = field(default_factory=list)
    audit: Doc = field(default_factory=dict)
    answer: Doc = field(default_factory=dict)
    result: Any = None


def digest_of(service: str, command: Command) -> str:
    if not command.idempotency_key or len(command.idempotency_key) > 200:
        raise Invalid("an idempotency key of 1-200 characters is required (header Idempotency-Key, "
                      "gRPC metadata idempotency-key)")
    return hashlib.sha256(
        f"{service}|{command.actor.subject}|{command.idempotency_key}".encode()).hexdigest()[:32]


def batches(works: Sequence[Work[Any]], service: str) -> list[list[Work[Any]]]:
    """Consecutive runs of ``works`` with no target and no idempotency key twice."""
    out: list[list[Work[Any]]] = []
    seen: set[Any] = set()
    for work in works:
        keys = {("target", work.repo.kind, work.command.target),
                ("key", work.command.actor.subject, work.command.idempotency_key)}
        if not out or keys & seen:
            out.append([])
            seen = set()
        out[-1].append(work)
        seen |= keys
    return out


class UnitOfWork(ABC):
    """Applies commands (see the module doc). ``run`` answers one result per work, in order:
    the answer, or the DomainError that refused it."""

    def __init__(self, service: str, clock: Clock | None = None, *, group_max: int = 64,
                 groups_in_flight: int = 2) -> None:
        self.service = service
        self.clock = clock or SystemClock()
        self.group_max = max(1, group_max)
        self.groups_in_flight = max(1, groups_in_flight)
        self._waiting: list[tuple[Work[Any], asyncio.Future[Any]]] = []
        # the running drainers (referenced while they run); each leaves in the same step as it sees
        # no command waiting, so a command queued after that step starts a new one
        self._drainers: set[asyncio.Task[None]] = set()
        self.groups = 0  # transactions run_one has started (a test's and a benchmark's count)

    async def run_one(self, work: Work[Any]) -> Any:
        """One command's result (its answer or the DomainError that refused it), applied together
        with the commands that wait while the store is busy (group commit: the module doc)."""
        if self.group_max == 1 or _IN_GROUP.get():  # a command a grouped command's step sends: at once,
            (result,) = await self.run([work])  # never behind the group that waits for it
            return result
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((work, waiter))
        if len(self._drainers) < self.groups_in_flight:
            self._drainers.add(asyncio.create_task(self._drain()))
        return await waiter

    async def _drain(self) -> None:
        """Run the waiting commands, ``group_max`` at a time, until none waits."""
        _IN_GROUP.set(True)  # this task's context only
        try:
            await self._drain_waiting()
        finally:
            self._drainers.discard(asyncio.current_task())

    async def _drain_waiting(self) -> None:
        while self._waiting:
            taken = [(w, f) for w, f in self._waiting[:self.group_max] if not f.done()]  # not given up
            del self._waiting[:self.group_max]
            if not taken:
                continue
            self.groups += 1
            COMMAND_GROUP.labels(self.service).observe(len(taken))
            try:
                with COMMAND_GROUP_SECONDS.labels(self.service).time():
                    outcomes = await self._grouped([w for w, _ in taken])
            except asyncio.CancelledError:  # shutting down: nobody waits forever
                for _, waiter in taken:
                    waiter.cancel()
                raise
            for (_, waiter), outcome in zip(taken, outcomes, strict=True):
                if waiter.done():
                    continue
                if isinstance(outcome, _Raised):
                    waiter.set_exception(outcome.error)
                else:
                    waiter.set_result(outcome)

    async def _grouped(self, works: list[Work[Any]]) -> list[Any]:
        try:
            return await self.run(works)
        except ConnectionFailure as exc:  # the store is away: the same for every command
            return [_Raised(exc)] * len(works)
        except Exception as exc:
            if len(works) == 1:
                return [_Raised(exc)]
            # one command's fault (a bug, a refused write) answers that command only: each on its own
            return [await self._alone(work) for work in works]

    async def _alone(self, work: Work[Any]) -> Any:
        try:
            (result,) = await self.run([work])
        except Exception as exc:
            return _Raised(exc)
        return result

    async def run(self, works: Sequence[Work[Any]]) -> list[Any]:
        results: list[Any] = []
        for batch in batches(works, self.service):
            digests: list[str | DomainError] = []
            for work in batch:
                try:
                    digests.append(digest_of(self.service, work.command))
                except DomainError as exc:
                    digests.append(exc)
            applied = await self._transaction(batch, digests)
            results += applied
        return results

    @abstractmethod
    async def _transaction(self, works: list[Work[Any]], digests: list[str | DomainError]) -> list[Any]:
        """One transaction: :meth:`_apply` then the commit (retried whole on a transient error)."""

    # the store's part -------------------------------------------------------------------------
    @abstractmethod
    async def answers(self, digests: list[str], tx: Any) -> dict[str, Doc]:
        """The stored answers of ``digests`` (``{"command", "answer_type", "answer", ...}``)."""

    @abstractmethod
    async def load(self, works: list[Work[Any]], tx: Any) -> list[Any]:
        """The current states of the works' targets (None: there is none)."""

    @abstractmethod
    async def stage(self, applied: list[_Applied], tx: Any, erase: Sequence[Any] = ()) -> list[Doc]:
        """Write the staged states, events, audit entries and answers (inside ``tx``); returns the
        outbox documents written (handed to the relay once committed). ``erase``: outbox documents
        the relay has published, deleted in the same write (hotline/outbox.py)."""

    # the one algorithm ------------------------------------------------------------------------
    async def _apply(self, works: list[Work[Any]], digests: list[str | DomainError], tx: Any,
                     answers_first: bool, erase: Sequence[Any] = ()) -> tuple[list[Any], list[_Applied], list[Doc]]:
        """Decide and stage ``works`` in ``tx``. ``answers_first``: read the stored answers before
        the states (a batch known to hold a retried key); otherwise they are read only for the
        commands refused or unchanged, and a retried key that changes the state fails its
        answer's insert (:meth:`stage`: duplicate key), which the caller answers by running the
        batch again with ``answers_first``."""
        keyed = {i: d for i, (d, w) in enumerate(zip(digests, works, strict=True))
                 if isinstance(d, str) and not w.by_state}  # the commands that store an answer
        results: list[Any] = [d if isinstance(d, DomainError) else _MISSING for d in digests]
        if answers_first and keyed:
            self._answered(works, keyed, results, await self.answers(list(keyed.values()), tx))
        todo = [i for i, r in enumerate(results) if r is _MISSING]
        states = await self.load([works[i] for i in todo], tx) if todo else []
        applied: list[_Applied] = []
        now = self.clock.now()
        for i, before in zip(todo, states, strict=True):
            work, digest = works[i], digests[i]
            assert isinstance(digest, str)
            try:
                decision = work.decide(before)
                if inspect.isawaitable(decision):
                    decision = await decision
            except DomainError as exc:
                results[i] = exc
                continue
            if decision.unchanged:
                if decision.state is not None or decision.events or decision.outbound:
                    raise TypeError("an unchanged decision saves and emits nothing")
                results[i] = decision.answer if decision.answer is not None else before
                continue
            command = work.command
            key = decision.key or command.target
            events = [
                Event(work.topic, key, message,
                      event_id(key, message.DESCRIPTOR.name, digest[:16], *([str(n)] if n else [])),
                      correlation_id=key, occurred_at=now)
                for n, message in enumerate(decision.events)
            ]
            answer = decision.answer if decision.answer is not None else decision.state
            entry = audit.entry(
                at=now, actor=command.actor.as_doc(), action=command.name, kind=work.repo.kind,
                target_id=command.target, ticket_id=key, reason=command.reason, before=as_doc(before),
                after=as_doc(decision.state)) | decision.audit
            stored_answer = {} if work.by_state else {
                "_id": digest, "command": command.name, "target": command.target, "at": now, **stored_form(answer)}
            applied.append(_Applied(work, digest, before, decision, events, entry, stored_answer, answer))
            results[i] = answer
        if not answers_first:  # refused or unchanged now: a retry of a command that changed the state?
            staged = {a.digest for a in applied}
            again = {i: d for i, d in keyed.items() if d not in staged}
            if again:
                self._answered(works, again, results, await self.answers(list(again.values()), tx))
        outboxed = await self.stage(applied, tx, erase) if applied else []
        return results, applied, outboxed

    @staticmethod
    def _answered(works: list[Work[Any]], among: dict[int, str], results: list[Any], stored: dict[str, Doc]) -> None:
        """Put the stored answers of the commands ``among`` (index: digest) into ``results`` (a
        key used for another command is refused)."""
        for i, digest in among.items():
            first = stored.get(digest)
            if first is None:
                continue
            command = works[i].command
            results[i] = answer_of(first) if first["command"] == command.name else Invalid(
                f"idempotency key {command.idempotency_key!r} was used for {first['command']}, not {command.name}")


def stored_form(answer: Any) -> Doc:
    if isinstance(answer, Message):
        return {"answer_type": answer.DESCRIPTOR.full_name, "answer": answer.SerializeToString()}
    if isinstance(answer, dict):
        return {"answer_type": "", "answer": answer}
    raise TypeError(f"a command's answer is a protobuf message or a document, not {type(answer).__name__}")


def answer_of(stored: Doc) -> Any:
    if not stored["answer_type"]:
        return stored["answer"]
    cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(stored["answer_type"]))
    message = cls()
    message.ParseFromString(stored["answer"])
    return message


class MongoUnitOfWork(UnitOfWork):
    """The store's unit of work: one transaction per batch (see the module doc)."""

    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc], outbox: Outbox, service: str,
                 clock: Clock | None = None, **group: int) -> None:
        super().__init__(service, clock, **group)
        self.client = client
        self.db = db
        self.outbox = outbox
        self.answers_collection = db[IDEMPOTENCY]
        self.audit_namespace = db[audit.COLLECTION].full_name

    async def _transaction(self, works: list[Work[Any]], digests: list[str | DomainError]) -> list[Any]:
        done: list[_Applied] = []
        outboxed: list[Doc] = []  # the outbox documents of the run that committed
        answers_first = False

        runs = 0  # the transaction's runs (with_transaction retries it whole)

        async def transaction(session: AsyncClientSession) -> list[Any]:
            nonlocal done, outboxed, runs
            TRANSACTION_RUNS.labels(self.service, "again" if runs else "first").inc()
            runs += 1
            results, done, outboxed = await self._apply(works, digests, session, answers_first, erase)
            return results

        erase = self.outbox.take_published()  # deleted in this transaction's bulk write, if it writes
        committed = False
        try:
            async with self.client.start_session() as session:
                try:
                    results: list[Any] = await session.with_transaction(transaction)
                except _Answered:  # a retried key among them (aborted): again, the stored answers first
                    answers_first = True
                    results = await session.with_transaction(transaction)
            committed = bool(done)  # a run that applied nothing wrote nothing
        finally:
            self.outbox.erased(erase, committed)
        if outboxed:
            self.outbox.staged(outboxed)  # committed: the relay publishes them without reading them back
        for applied in done:
            if applied.work.done is not None:
                applied.work.done(applied.result)
        return results

    async def answers(self, digests: list[str], tx: Any) -> dict[str, Doc]:
        if len(digests) == 1:
            doc = await self.answers_collection.find_one({"_id": digests[0]}, session=tx)
            return {digests[0]: doc} if doc is not None else {}
        return {d["_id"]: d for d in await find_in(self.answers_collection, digests, session=tx)}

    async def load(self, works: list[Work[Any]], tx: Any) -> list[Any]:
        """Works whose repository names its document (``source``) by ``_id`` are read with one
        find per collection; the others through their repository's ``load``. A repository that
        also reads the documents of another collection that name its target (``side(target)`` ->
        (collection, field): the evaluations waiting in the inbox for a case) gets them in
        ``loaded(doc, tx, side=[...])``, read with one find per collection for the whole batch."""
        docs: dict[int, Doc | None] = {}
        by_collection: dict[str, list[tuple[int, Any]]] = {}
        sides: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        for i, work in enumerate(works):
            where = _source(work)
            if where is None:
                continue
            collection, query = where
            if len(works) > 1 and set(query) == {"_id"} and not isinstance(query["_id"], dict):
                by_collection.setdefault(collection, []).append((i, query["_id"]))
            else:
                docs[i] = await self.db[collection].find_one(query, session=tx)
            side = getattr(work.repo, "side", None)
            if side is not None and (named := side(work.command.target)) is not None:
                sides.setdefault(named, []).append((i, work.command.target))
        for collection, wanted in by_collection.items():
            found = {d["_id"]: d for d in await find_in(self.db[collection], [v for _, v in wanted], session=tx)}
            docs.update({i: found.get(v) for i, v in wanted})
        side_docs: dict[int, list[Doc]] = {}
        for (collection, field_name), wanted in sides.items():
            naming: dict[Any, list[Doc]] = {}
            for d in await find_in(self.db[collection], [v for _, v in wanted], field_name, session=tx):
                naming.setdefault(d.get(field_name), []).append(d)
            side_docs.update({i: naming.get(v, []) for i, v in wanted})
        states = []
        for i, work in enumerate(works):
            if i in side_docs:
                states.append(await work.repo.loaded(docs[i], tx, side=side_docs[i]))  # type: ignore[attr-defined]
            elif i in docs:
                states.append(await work.repo.loaded(docs[i], tx))  # type: ignore[attr-defined]
            else:
                states.append(await work.repo.load(work.command.target, tx))
        return states

    async def stage(self, applied: list[_Applied], tx: Any, erase: Sequence[Any] = ()) -> list[Doc]:
        # the answers first: a retried key fails here, before anything else is written (_Answered)
        answers = self.answers_collection.full_name
        writes: list[Any] = [InsertOne(a.answer, namespace=answers) for a in applied if a.answer]
        events: list[Event] = []
        outboxed: list[Doc] = []
        outbox = self.outbox.collection.full_name
        for a in applied:
            if a.decision.state is not None:
                write_ops = getattr(a.work.repo, "write_ops", None)
                if write_ops is not None:  # the save joins the one bulk write below
                    writes += await write_ops(a.decision.state, tx)
                else:
                    await a.work.repo.save(a.decision.state, tx)
            events += a.events
            if a.decision.outbound:  # ready-made event ids: one staged before is kept, not an error,
                # so they are documents of their own (the outbox's unique event id drops a second one);
                # publishing order is the outbox's _id order: the events decided so far come first
                batch = self.outbox.batched(events)
                writes += [InsertOne(d, namespace=outbox) for d in batch]
                outboxed += batch
                events = []
                outbound = self.outbox.documents(a.decision.outbound)
                kept = await insert_missing(self.outbox.collection, outbound, tx)
                outboxed += [d for d in outbound if d["_id"] not in kept]  # one staged before: published once
            writes.append(InsertOne(a.audit, namespace=self.audit_namespace))
        # the batch's events in as few outbox documents as possible (one, unless very large:
        # hotline/outbox.py ``batched``), in publishing order
        batch = self.outbox.batched(events)
        writes += [InsertOne(d, namespace=outbox) for d in batch]
        outboxed += batch
        if erase:  # what the relay published: deleted here, not in a round trip of its own
            writes.append(DeleteMany({"_id": {"$in": list(erase)}}, namespace=outbox))
        # states, events, audit entries and answers: ONE round trip (MongoDB 8's bulkWrite; SecantusDB has it)
        try:
            await self.client.bulk_write(writes, session=tx, ordered=True)
        except ClientBulkWriteException as exc:
            error = _unwrapped(exc)
            if isinstance(error, DuplicateKeyError) and _answers_failed(exc, sum(1 for a in applied if a.answer)):
                raise _Answered() from exc
            raise error from exc
        return outboxed


def _source(work: Work[Any]) -> tuple[str, Doc] | None:
    source = getattr(work.repo, "source", None)
    return source(work.command.target) if source is not None else None


@dataclass
class _Raised:
    """An exception a grouped command's own run raised (:meth:`UnitOfWork.run_one` raises it)."""

    error: Exception


class _Answered(Exception):
    """A staged answer's insert met a stored one: the batch holds a retried idempotency key."""


def _answers_failed(exc: ClientBulkWriteException, answers: int) -> bool:
    """Did the failed write fall on one of the first ``answers`` writes (the answers')? When the
    store does not say which write failed, assume so: running again with the answers read first
    is always right (a duplicate elsewhere fails again there)."""
    errors: Any = exc.details.get("writeErrors") or []
    indexes = [int(i) for i in errors] if isinstance(errors, dict) else \
        [e.get("idx") for e in errors if isinstance(e, dict)]
    return not indexes or any(i is None or i < answers for i in indexes)


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


def _copied(state: Any) -> Any:
    if isinstance(state, Message):
        fresh = type(state)()
        fresh.CopyFrom(state)
        return fresh
    return copy.deepcopy(state)


class InMemoryUnitOfWork(UnitOfWork):
    """The fake for unit tests: states by (repository kind, target), and what was committed.

    ``states`` may be seeded (``uow.states["case", "T1"] = case``); after ``run`` it holds the
    committed states; ``events`` (the events and outbound events, in staging order), ``audit``
    (the audit entries) and ``answers`` (by digest) are what the Mongo unit of work would have
    written. A failing batch commits nothing. ``commits`` counts the transactions."""

    def __init__(self, service: str = "test", clock: Clock | None = None, **group: int) -> None:
        super().__init__(service, clock, **group)
        self.states: dict[tuple[str, str], Any] = {}
        self.events: list[Event] = []
        self.audit: list[Doc] = []
        self.stored: dict[str, Doc] = {}
        self.commits = 0

    def published(self, message_type: type[Message] | None = None) -> list[Message]:
        """The committed events' messages (of ``message_type`` when given)."""
        return [e.message for e in self.events if message_type is None or isinstance(e.message, message_type)]

    def state(self, kind: str, target: str) -> Any:
        return self.states.get((kind, target))

    async def _transaction(self, works: list[Work[Any]], digests: list[str | DomainError]) -> list[Any]:
        results, applied, _ = await self._apply(works, digests, None, answers_first=False)
        if any(a.answer and a.digest in self.stored for a in applied):  # the answers' insert fails: abort
            results, applied, _ = await self._apply(works, digests, None, answers_first=True)
        for a in applied:  # the commit
            if a.decision.state is not None:
                self.states[a.work.repo.kind, a.work.command.target] = _copied(a.decision.state)
            self.events += [*a.events, *a.decision.outbound]
            self.audit.append(a.audit)
            if a.answer:
                self.stored[a.digest] = a.answer
        self.commits += 1
        for a in applied:
            if a.work.done is not None:
                a.work.done(a.result)
        return results

    async def answers(self, digests: list[str], tx: Any) -> dict[str, Doc]:
        return {d: self.stored[d] for d in digests if d in self.stored}

    async def load(self, works: list[Work[Any]], tx: Any) -> list[Any]:
        return [_copied(self.states.get((w.repo.kind, w.command.target))) for w in works]

    async def stage(self, applied: list[_Applied], tx: Any, erase: Sequence[Any] = ()) -> list[Doc]:
        return []  # kept by _transaction, which commits them
