"""Durable timers: alarms stored with the state they guard, fired once, caught up after downtime.

A timer is one clock of a subject (an aggregate, e.g. a ticket's case): a deadline with an
optional early warning::

    Timer(subject="T1", kind="sign_off", due_at=..., warn_at=..., data={...})   # key "T1/sign_off"

It fires twice at most: stage ``due_soon`` at ``warn_at`` (skipped when none, or when the timer
is scheduled already past ``due_at``), then stage ``due`` at ``due_at``; after that it is gone.
A service gives :class:`Timers` a handler that turns fired stages into events; the stages are
claimed and their events staged in the outbox in ONE store transaction, so each stage is
published exactly once even when several replicas scan at the same time (the second claim
meets a write conflict, is retried and finds nothing) and nothing is lost when a process dies
(an unclaimed timer is still due at the next scan, however late: downtime is caught up).

API (all writes take the caller's session, so a timer changes with the state it guards)::

    timers = Timers(db, outbox, clock, on_fire)          # on_fire(fired, session) -> events
    await timers.schedule([timer, ...], session)         # start clocks; a subject's clock of the same
                                                         # kind is replaced (how a clock is moved)
    await timers.cancel("T1", ["sign_off"], session)     # clocks stopped (signed off, replied...)
    doc |= timers.replacing(doc.get("timers"), [...])    # a caller rewriting its whole document: exactly
                                                         # these clocks (unchanged ones keep their stage)
    await timers.get("T1", "sign_off")                   # what is pending, if anything
    await timers.fire_due(limit)                         # one scan: claim <= limit due subjects
    await timers.run_forever(interval_seconds)           # the service's background task

Storage: a subject's clocks live in one sub-document ``timers: {v, fire_at, [warned,] clocks: {kind: ...}}``
where ``fire_at`` is the earliest pending stage of any clock, indexed (:func:`indexes`). The scan
reads that index up to now, so it costs O(due), not O(pending) (bench/timers.py measures it over
1,000,000 pending subjects). The sub-document lives either in a collection of its own (default
``timers``, one document per subject, deleted when its last clock stops) or, with
``embedded=True``, inside the documents of the aggregate itself (e.g. supervision's ``cases``):
then a new aggregate is inserted with its clocks in the same single-document write
(``doc | timers.fields(new_timers)``), which costs one index entry and no transaction.

Event ids must be deterministic in (subject, kind, stage, due_at) so a republished outbox entry
is dropped downstream as a duplicate.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pymongo import ASCENDING, DeleteOne, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.results import BulkWriteResult

from hotline.clock import Clock
from hotline.envelope import Event
from hotline.logging import get_logger
from hotline.mongo import Doc, find_in
from hotline.outbox import Outbox
from hotline.pb import millis

log = get_logger(__name__)

COLLECTION = "timers"
FIELD = "timers"  # the sub-document holding a subject's clocks
CLAIM_ATTEMPTS = 10  # writes in a row that lost a race to another writer before giving up
KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # a field name in the store and a metric label value


def indexes(collection: str = COLLECTION) -> dict[str, list[IndexModel]]:
    """The scan's index, for the collection the timers live in."""
    return {collection: [IndexModel([(f"{FIELD}.fire_at", ASCENDING)])]}


INDEXES = indexes()

FIRED = Counter("hotline_timers_fired_total", "Timer stages fired, by kind and stage (due_soon, due).",
                ["service", "kind", "stage"])
SCAN_SECONDS = Histogram("hotline_timer_scan_seconds", "One timer scan: claim the due stages, stage their events.",
                         ["service"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
LATENESS = Gauge("hotline_timer_lateness_seconds",
                 "How late (platform clock) the oldest stage fired by the last scan was: backlog after downtime.",
                 ["service"])


class Stage(StrEnum):
    DUE_SOON = "due_soon"
    DUE = "due"


@dataclass(frozen=True)
class Timer:
    subject: str  # the aggregate it is about (events are keyed by it), e.g. a ticket id
    kind: str  # which clock: lower_snake_case, bounded (a metric label), e.g. "sign_off"
    due_at: datetime
    warn_at: datetime | None = None  # due-soon alarm, if any
    data: Mapping[str, Any] = field(default_factory=dict)  # handed back when it fires (store-safe values)

    @property
    def key(self) -> str:
        return f"{self.subject}/{self.kind}"


@dataclass(frozen=True)
class Fired:
    timer: Timer
    stage: Stage
    fired_at: datetime


OnFire = Callable[[Sequence[Fired], AsyncClientSession], Awaitable[Sequence[Event]]]
# who executes the timers' own writes (conditional updates of the timer sub-document): by default the
# collection; an aggregate with one writer of its documents (supervision's cases/store.py) passes its own
Writer = Callable[[list[UpdateOne | DeleteOne], AsyncClientSession | None], Awaitable[BulkWriteResult]]


class Lost(Exception):
    """Another writer changed a timer document between our read and our write: read again."""


class Timers:
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox, clock: Clock, on_fire: OnFire,
                 collection: str = COLLECTION, batch: int = 500, embedded: bool = False,
                 writer: Writer | None = None) -> None:
        self.client = db.client
        self.collection = db[collection]
        self.outbox = outbox
        self.clock = clock
        self.on_fire = on_fire
        self.batch = batch
        self.embedded = embedded  # clocks inside the aggregate's own documents (never delete those)
        self.service = outbox.service
        self._bulk_write: Writer = writer or (
            lambda ops, session: self.collection.bulk_write(ops, ordered=False, session=session))

    # -- the state side: inside the caller's transaction ------------------------------------------

    def fields(self, timers: Sequence[Timer]) -> Doc:
        """The fields that give a document the clocks of ``timers`` (all of one subject): for a
        document the caller inserts itself (a new aggregate with its clocks, one write)."""
        clocks = self._clocks(timers)
        if len({t.subject for t in timers}) > 1:
            raise ValueError("fields() takes the timers of one subject")
        return {FIELD: _sub_doc(clocks, 1)} if clocks else {}  # version 0 = no clocks

    def replacing(self, stored: Doc | None, timers: Sequence[Timer]) -> Doc:
        """The fields that leave a document whose timer sub-document is ``stored`` with exactly
        the clocks of ``timers`` (one subject), for a caller that rewrites the whole document in
        its transaction: a clock whose due time is unchanged keeps its stage (a due-soon alarm
        that fired does not fire again), a moved one starts afresh, a missing one stops.
        ``{}`` when no clock runs (the field is left out)."""
        if len({t.subject for t in timers}) > 1:
            raise ValueError("replacing() takes the timers of one subject")
        before: Mapping[str, Doc] = (stored or {}).get("clocks", {})
        fresh = self._clocks(timers)
        clocks = {kind: before[kind] if kind in before and millis(before[kind]["due"]) == clock["due"] else clock
                  for kind, clock in fresh.items()}
        version = int((stored or {}).get("v", 0)) + 1
        return {FIELD: _sub_doc(clocks, version)} if clocks else {}

    async def schedule(self, timers: Sequence[Timer], session: AsyncClientSession | None = None) -> None:
        """Start the timers, replacing a subject's clock of the same kind."""
        by_subject: dict[str, list[Timer]] = {}
        for t in timers:
            by_subject.setdefault(t.subject, []).append(t)
        new = {subject: self._clocks(ts) for subject, ts in by_subject.items()}
        if new:
            await self._rewrite(list(new), lambda subject, clocks: {**clocks, **new[subject]}, session)

    async def cancel(self, subject: str, kinds: Sequence[str], session: AsyncClientSession | None = None) -> int:
        """Stop the subject's clocks of these kinds; returns how many were pending."""
        stopped = 0

        def without(_: str, clocks: dict[str, Doc]) -> dict[str, Doc]:
            nonlocal stopped
            stopped = sum(1 for k in kinds if k in clocks)
            return {k: c for k, c in clocks.items() if k not in kinds}

        await self._rewrite([subject], without, session)
        return stopped

    async def get(self, subject: str, kind: str, session: AsyncClientSession | None = None,
                  ) -> tuple[Timer, Stage] | None:
        doc = await self.collection.find_one({"_id": subject}, {FIELD: 1}, session=session)
        clock = ((doc or {}).get(FIELD) or {}).get("clocks", {}).get(kind)
        return (_timer(subject, kind, clock), Stage(clock["stage"])) if clock else None

    def _clocks(self, timers: Sequence[Timer]) -> dict[str, Doc]:
        now = self.clock.now()
        for t in timers:
            if not KIND.match(t.kind):
                raise ValueError(f"timer kind {t.kind!r} is not lower_snake_case")
        return {t.kind: _clock(t, now) for t in timers}

    def _write(self, subject: str, version: int, clocks: Mapping[str, Doc], exists: bool,
               ) -> UpdateOne | DeleteOne:
        """The conditional write that leaves ``subject`` with ``clocks`` if its timers are still
        at ``version`` (0: none yet)."""
        claim: Doc = {"_id": subject, f"{FIELD}.v": version} if version else \
            {"_id": subject, FIELD: {"$exists": False}}
        if clocks:
            return UpdateOne(claim, {"$set": {FIELD: _sub_doc(clocks, version + 1)}}, upsert=not exists)
        if self.embedded:
            return UpdateOne(claim, {"$unset": {FIELD: ""}})
        return DeleteOne(claim)

    async def _rewrite(self, subjects: list[str], change: Callable[[str, dict[str, Doc]], dict[str, Doc]],
                       session: AsyncClientSession | None) -> None:
        """Read the subjects' clocks, change them, write them back if nobody else did meanwhile
        (version check; inside a transaction a conflict aborts it instead)."""
        for _ in range(CLAIM_ATTEMPTS):
            stored = {d["_id"]: d for d in await find_in(self.collection, subjects, projection={FIELD: 1},
                                                         session=session)}
            ops: list[UpdateOne | DeleteOne] = []
            for subject in subjects:
                doc = stored.get(subject)
                if doc is None and self.embedded:
                    raise LookupError(f"no document {subject!r} in {self.collection.name} to hold its timers")
                sub = (doc or {}).get(FIELD)
                version = int(sub["v"]) if sub else 0
                before = dict(sub["clocks"]) if sub else {}
                clocks = change(subject, before)
                if clocks or before:
                    ops.append(self._write(subject, version, clocks, exists=doc is not None))
            if not ops:
                return
            result = await self._bulk_write(ops, session)
            if result.deleted_count + result.modified_count + result.upserted_count == len(ops):
                return
            if session is not None and session.in_transaction:
                raise Lost("a timer document changed during the transaction")
        raise Lost(f"timers of {subjects[:3]} keep changing under us")

    # -- the alarm side: the background scan ------------------------------------------------------

    async def fire_due(self, limit: int | None = None) -> int:
        """Claim up to ``limit`` subjects with due stages (oldest first), fire their stages and
        stage the events, in one transaction. Returns how many subjects it claimed."""
        limit = limit or self.batch
        started = time.perf_counter()
        fired: list[Fired] = []
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                async with self.client.start_session() as session:
                    fired = await session.with_transaction(lambda s: self._fire(s, limit))
                break
            except Lost:
                if attempt == CLAIM_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        SCAN_SECONDS.labels(self.service).observe(time.perf_counter() - started)
        if fired:
            self.outbox.staged()  # committed: the relay may publish them now
        for f in fired:  # counted once committed (a transaction may run its callback again)
            FIRED.labels(self.service, f.timer.kind, f.stage.value).inc()
        if fired:
            oldest = min(f.timer.warn_at if f.stage == Stage.DUE_SOON and f.timer.warn_at else f.timer.due_at
                         for f in fired)
            LATENESS.labels(self.service).set(max(0.0, (fired[0].fired_at - oldest).total_seconds()))
        return len({f.timer.subject for f in fired})

    async def _fire(self, session: AsyncClientSession, limit: int) -> list[Fired]:
        now = self.clock.now()
        docs = await self.collection.find({f"{FIELD}.fire_at": {"$lte": now}}, {FIELD: 1}, session=session) \
            .sort(f"{FIELD}.fire_at", ASCENDING).limit(limit).to_list()
        if not docs:
            return []
        fired: list[tuple[datetime, Fired]] = []
        ops: list[UpdateOne | DeleteOne] = []
        for doc in docs:
            subject, version, clocks = doc["_id"], int(doc[FIELD]["v"]), dict(doc[FIELD]["clocks"])
            for kind, clock in list(clocks.items()):
                if _next(clock) > now:
                    continue
                timer = _timer(subject, kind, clock)
                if clock["stage"] == Stage.DUE_SOON:
                    fired.append((_next(clock), Fired(timer, Stage.DUE_SOON, now)))
                if clock["stage"] == Stage.DUE or timer.due_at <= now:
                    fired.append((timer.due_at, Fired(timer, Stage.DUE, now)))
                    del clocks[kind]
                else:
                    clocks[kind] = {**clock, "stage": Stage.DUE.value}
            ops.append(self._write(subject, version, clocks, exists=True))
        result = await self._bulk_write(ops, session)
        if result.deleted_count + result.modified_count != len(ops):
            raise Lost("another scanner claimed some of these timers")
        in_order = [f for _, f in sorted(fired, key=lambda pair: pair[0])]
        events = await self.on_fire(in_order, session)
        await self.outbox.stage(events, session)
        return in_order

    async def run_forever(self, interval_seconds: float) -> None:
        """Scan every ``interval_seconds``; at once again while scans come back full (catch-up)."""
        while True:
            try:
                claimed = await self.fire_due()
            except Exception as exc:  # store away: try again at the next interval
                log.warning("timer scan failed", error=repr(exc))
                claimed = 0
            if claimed < self.batch:
                await asyncio.sleep(interval_seconds)


def _clock(timer: Timer, now: datetime) -> Doc:
    """One clock as stored (kept small: it is written with every case that opens)."""
    warn = timer.warn_at is not None and timer.warn_at < timer.due_at and timer.due_at > now
    clock: Doc = {"due": millis(timer.due_at), "stage": (Stage.DUE_SOON if warn else Stage.DUE).value}
    if warn and timer.warn_at is not None:
        clock["warn"] = millis(timer.warn_at)
    if timer.data:
        clock["data"] = dict(timer.data)
    return clock


def _next(clock: Doc) -> datetime:
    """When the clock's pending stage fires."""
    at: datetime = clock["warn"] if clock["stage"] == Stage.DUE_SOON else clock["due"]
    return at


def _sub_doc(clocks: Mapping[str, Doc], version: int) -> Doc:
    doc: Doc = {"v": version, "fire_at": min(_next(c) for c in clocks.values()), "clocks": dict(clocks)}
    # the due times of the clocks whose due-soon stage fired (warned, not due yet): a query finds the
    # subjects with a running warning ({"timers.warned": {"$gt": now}}) without reading every subject
    warned = sorted(c["due"] for c in clocks.values() if c["stage"] == Stage.DUE.value and "warn" in c)
    if warned:
        doc["warned"] = warned
    return doc


def _timer(subject: str, kind: str, clock: Doc) -> Timer:
    return Timer(subject, kind, clock["due"], clock.get("warn"), clock.get("data") or {})
