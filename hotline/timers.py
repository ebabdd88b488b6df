"""Durable timers: alarms stored with the state they guard, fired once, caught up after downtime.

A timer is a deadline with an optional early warning::

    Timer(key="T1/sign_off", subject="T1", kind="sign_off", due_at=..., warn_at=..., data={...})

It fires twice at most: stage ``due_soon`` at ``warn_at`` (skipped when none, or when the timer
is scheduled already past ``due_at``), then stage ``due`` at ``due_at``; after that it is gone.
A service gives :class:`Timers` a handler that turns fired stages into events; the stages are
claimed and their events staged in the outbox in ONE store transaction, so each stage is
published exactly once even when several replicas scan at the same time (the second claim
meets a write conflict, is retried and finds nothing) and nothing is lost when a process dies
(an unclaimed timer is still due at the next scan, however late: downtime is caught up).

API (all writes take the caller's session, so a timer changes with the state it guards)::

    timers = Timers(db, outbox, clock, on_fire)       # on_fire(fired, session) -> events
    await timers.schedule([timer, ...], session)      # insert, or replace the timer with the same key
                                                      # (that is how a clock is moved or restarted)
    await timers.schedule(new, session, replace=False)  # keys that cannot exist yet (a new case's clocks):
                                                      # a plain insert, 3x cheaper in the development store
    await timers.cancel(["T1/sign_off"], session)     # the clock stopped (signed off, replied...)
    await timers.get("T1/sign_off")                   # what is pending, if anything
    await timers.fire_due(limit)                      # one scan: claim <= limit due stages, stage events
    await timers.run_forever(interval_seconds)        # the service's background task

The scan costs O(due), not O(pending): every pending timer has one ``fire_at`` (its next stage)
and the scan reads the ``fire_at`` index up to now (bench/timers.py measures it over 1,000,000).
Event ids must be deterministic in (key, stage, due_at) so a republished outbox entry is
dropped downstream as a duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pymongo import ASCENDING, DeleteOne, IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline.clock import Clock
from hotline.envelope import Event
from hotline.logging import get_logger
from hotline.mongo import Doc
from hotline.outbox import Outbox
from hotline.pb import millis

log = get_logger(__name__)

COLLECTION = "timers"
CLAIM_ATTEMPTS = 10  # scans in a row that lost a claim to another replica before giving up until the next interval
INDEXES = {COLLECTION: [IndexModel([("fire_at", ASCENDING)])]}

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
    key: str  # unique, e.g. "<ticket_id>/sign_off"
    subject: str  # the aggregate it is about: events are keyed by it
    kind: str  # bounded vocabulary (a metric label), e.g. "sign_off"
    due_at: datetime
    warn_at: datetime | None = None  # due-soon alarm, if any
    data: Mapping[str, Any] = field(default_factory=dict)  # handed back when it fires (store-safe values)


@dataclass(frozen=True)
class Fired:
    timer: Timer
    stage: Stage
    fired_at: datetime


OnFire = Callable[[Sequence[Fired], AsyncClientSession], Awaitable[Sequence[Event]]]


class ClaimLost(Exception):
    """Another scanner claimed some of the timers this scan read: abort and scan again."""


class Timers:
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox, clock: Clock, on_fire: OnFire,
                 collection: str = COLLECTION, batch: int = 500) -> None:
        self.client = db.client
        self.collection = db[collection]
        self.outbox = outbox
        self.clock = clock
        self.on_fire = on_fire
        self.batch = batch
        self.service = outbox.service

    async def schedule(self, timers: Sequence[Timer], session: AsyncClientSession | None = None,
                       replace: bool = True) -> None:
        """Insert the timers, replacing any with the same key (``replace=False``: the keys are new,
        and an existing one is an error: DuplicateKeyError)."""
        if not timers:
            return
        now = self.clock.now()
        if replace:
            await self.collection.bulk_write([ReplaceOne({"_id": t.key}, _doc(t, now), upsert=True) for t in timers],
                                             ordered=False, session=session)
        else:
            await self.collection.insert_many([_doc(t, now) for t in timers], ordered=False, session=session)

    async def cancel(self, keys: Sequence[str], session: AsyncClientSession | None = None) -> int:
        if not keys:
            return 0
        result = await self.collection.delete_many({"_id": {"$in": list(keys)}}, session=session)
        return int(result.deleted_count)

    async def get(self, key: str, session: AsyncClientSession | None = None) -> tuple[Timer, Stage] | None:
        doc = await self.collection.find_one({"_id": key}, session=session)
        return (_timer(doc), Stage(doc["stage"])) if doc else None

    async def fire_due(self, limit: int | None = None) -> int:
        """Claim up to ``limit`` due timers (oldest first), fire their stages, stage the events:
        one transaction. Returns how many timers it claimed."""
        limit = limit or self.batch
        started = time.perf_counter()
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                async with self.client.start_session() as session:
                    fired: list[Fired] = await session.with_transaction(lambda s: self._fire(s, limit))
                break
            except ClaimLost:
                if attempt == CLAIM_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        SCAN_SECONDS.labels(self.service).observe(time.perf_counter() - started)
        for f in fired:  # counted once committed (a transaction may run its callback again)
            FIRED.labels(self.service, f.timer.kind, f.stage.value).inc()
        if fired:
            oldest = min(f.timer.warn_at if f.stage == Stage.DUE_SOON and f.timer.warn_at else f.timer.due_at
                         for f in fired)
            LATENESS.labels(self.service).set(max(0.0, (fired[0].fired_at - oldest).total_seconds()))
        return len({f.timer.key for f in fired})

    async def _fire(self, session: AsyncClientSession, limit: int) -> list[Fired]:
        now = self.clock.now()
        docs = await self.collection.find({"fire_at": {"$lte": now}}, session=session) \
            .sort("fire_at", ASCENDING).limit(limit).to_list()
        if not docs:
            return []
        fired: list[Fired] = []
        ops: list[DeleteOne | UpdateOne] = []
        for doc in docs:
            timer = _timer(doc)
            claim = {"_id": doc["_id"], "fire_at": doc["fire_at"], "stage": doc["stage"]}
            if doc["stage"] == Stage.DUE_SOON:
                fired.append(Fired(timer, Stage.DUE_SOON, now))
            if doc["stage"] == Stage.DUE or timer.due_at <= now:
                fired.append(Fired(timer, Stage.DUE, now))
                ops.append(DeleteOne(claim))
            else:
                ops.append(UpdateOne(claim, {"$set": {"stage": Stage.DUE.value, "fire_at": timer.due_at}}))
        result = await self.collection.bulk_write(ops, ordered=False, session=session)
        if result.deleted_count + result.modified_count != len(ops):
            raise ClaimLost
        events = await self.on_fire(fired, session)
        await self.outbox.stage(events, session)
        return fired

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


def _doc(timer: Timer, now: datetime) -> Doc:
    warn = timer.warn_at is not None and timer.warn_at < timer.due_at and timer.due_at > now
    return {
        "_id": timer.key,
        "subject": timer.subject,
        "kind": timer.kind,
        "due_at": millis(timer.due_at),
        "warn_at": millis(timer.warn_at) if timer.warn_at else None,
        "data": dict(timer.data),
        "stage": (Stage.DUE_SOON if warn else Stage.DUE).value,
        "fire_at": millis(timer.warn_at if warn and timer.warn_at else timer.due_at),
    }


def _timer(doc: Doc) -> Timer:
    return Timer(doc["_id"], doc["subject"], doc["kind"], doc["due_at"], doc.get("warn_at"), doc.get("data") or {})
