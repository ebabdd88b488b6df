"""Transactional outbox, for events that do not come from a consumed record.

A consumer needs no outbox: the offset it has not yet committed is its durable to-do list
(see hotline/kafka.py). An HTTP or gRPC command, or a timer, has no such cursor, so it
writes its state change and its events in one MongoDB transaction (``stage``), and the
relay publishes what is staged, in order, then deletes it. A crash between publishing and
deleting republishes the same event ids, which consumers drop as duplicates. The unit of work
stages a transaction's events as ONE document (:meth:`Outbox.batched`, ``events``: the events
in order); the relay publishes its events one by one and deletes the one document.

Once the transaction has committed, the unit of work hands its outbox documents to the relay in
memory (:meth:`Outbox.staged`): the relay publishes them without reading them back. It reads the
outbox only at start, after a failure, when a writer without documents to hand over asks (the
timers), and at least once per poll: what a crash, another replica or a process without a relay
left.

What the relay published from a hand-over is deleted by the next transaction of the service's unit
of work, in its own bulk write (:meth:`Outbox.take_published`; no round trip of its own), or by the
relay itself when no transaction came within :data:`ERASE_AFTER` seconds. A read of the outbox skips
the documents a transaction in flight is deleting, and deletes what is waiting first, so nothing
published is read and published again by its own process (a crash before the delete republishes, as
before).

Follow-ups inside the service (:meth:`Outbox.follow`): a service's own reaction to its staged
events (supervision: a case closed -> settle its 督办 and close the cases merged under it; a first
overdue -> level 1) runs in process from the outbox, before the events are published and
deleted, instead of reading its own events back from Kafka. A crash before the delete runs a
follower again on the same events (another replica's relay may too), so a follower's effect
must be idempotent: a command keyed by the event. A follower that raises stops the relay until
it succeeds (nothing is published past a follow-up not done).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline import observability as obs
from hotline.envelope import Event
from hotline.logging import get_logger
from hotline.mongo import Doc, insert_missing

log = get_logger(__name__)

COLLECTION = "outbox"
Follower = Callable[[Sequence[Doc]], Awaitable[None]]  # the staged documents, in order (see the module doc)
BATCH_BYTES = 4_000_000  # a batch document's events, at most (a store document holds 16 MB)
ERASE_AFTER = 0.2  # seconds a published document waits for a transaction to delete it (module doc)
INDEXES = {COLLECTION: [IndexModel([("event_id", ASCENDING)], unique=True)]}


class Outbox:
    def __init__(self, db: AsyncDatabase[Doc], kafka: AIOKafkaProducer, service: str) -> None:
        self.collection = db[COLLECTION]
        self.kafka = kafka
        self.service = service
        self._wake = asyncio.Event()
        self._handed: list[Doc] = []  # committed documents to publish, in order (staged)
        self._read = True  # the relay reads the outbox on its next pass
        self._published: list[ObjectId] = []  # published from a hand-over, not yet deleted (module doc)
        self._erasing: set[ObjectId] = set()  # of those, taken by a transaction in flight
        self.followers: list[Follower] = []

    def follow(self, follower: Follower) -> None:
        """Run ``follower`` on the staged events before they are published (module doc)."""
        self.followers.append(follower)

    def documents(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The outbox documents of ``events`` (for a caller that writes them in its own bulk write,
        hotline/uow.py; once committed, it hands them to :meth:`staged`)."""
        return [
            {
                "_id": ObjectId(),  # insertion order = publishing order
                "event_id": e.event_id,
                "topic": e.topic,
                "key": e.key,
                "value": e.value(),
                "headers": [[k, v] for k, v in e.headers(self.service)],
            }
            for e in events
        ]

    def batched(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The outbox documents of one transaction's ``events``: ONE document carrying them all
        (``events``: the documents :meth:`documents` would write, in order), split only past
        :data:`BATCH_BYTES`; a single event is a document of its own, as :meth:`documents` makes it.
        The relay publishes a batch document's events in order and deletes it once; a crash
        before the delete republishes all of them, with their ids (consumers drop duplicates)."""
        docs = self.documents(events)
        if len(docs) <= 1:
            return docs
        out: list[dict[str, Any]] = []
        chunk: list[dict[str, Any]] = []
        size = 0
        for d in docs:
            d.pop("_id")
            length = len(d["value"]) + len(d["key"]) + 200
            if chunk and size + length > BATCH_BYTES:
                out.append(_batch(chunk))
                chunk, size = [], 0
            chunk.append(d)
            size += length
        out.append(_batch(chunk))
        return out

    async def pending(self, limit: int = 0) -> list[Doc]:
        """The staged events (a batch document's one by one), in publishing order."""
        return unbatched(await self.collection.find({}).sort("_id", ASCENDING).limit(limit).to_list())

    def staged(self, documents: Sequence[Doc] | None = None) -> None:
        """Outbox documents were committed: the relay has work. With ``documents`` (the unit of
        work hands over what it wrote, in order) the relay publishes them without reading them
        back; without, it reads the outbox."""
        if documents is None:
            self._read = True
        else:
            self._handed += documents
        self._wake.set()

    def take_published(self) -> list[ObjectId]:
        """The ids of published documents not yet deleted, for a transaction to delete in its own
        bulk write; the caller then calls :meth:`erased` (committed or not)."""
        taken, self._published = self._published, []
        self._erasing.update(taken)
        return taken

    def erased(self, ids: Sequence[ObjectId], committed: bool) -> None:
        """A transaction that took ``ids`` ended: deleted when ``committed``, else deleted later."""
        self._erasing.difference_update(ids)
        if not committed:
            self._published += ids

    async def _erase(self) -> None:
        """Delete the published documents no transaction took (kept on failure, to delete later)."""
        if not self._published:
            return
        ids, self._published = self._published, []
        try:
            await self.collection.delete_many({"_id": {"$in": ids}})
        except BaseException:
            self._published = ids + self._published
            raise

    async def stage(self, events: Sequence[Event], session: AsyncClientSession | None = None) -> None:
        """Write events to the outbox (inside the caller's transaction when given a session: the
        caller calls :meth:`staged` once it has committed; a wake-up before the commit finds nothing)."""
        # the same event staged twice: keep the first
        await insert_missing(self.collection, self.documents(events), session)
        if session is None:
            self.staged()

    async def relay_forever(self, poll_seconds: float = 1.0, limit: int = 500,
                            erase_after: float = ERASE_AFTER) -> None:
        """Relay until cancelled: what the committers hand over (:meth:`staged`), as it comes; a
        read of the outbox at the start, when a committer asks for one, after a failure, and at
        least every ``poll_seconds`` however busy (what an earlier run, another replica or a
        process without a relay left).

        The wake-up is cleared BEFORE the work: a commit that lands meanwhile sets it again and is
        seen at once. (Cleared after an empty read, that commit's events waited a whole poll: the
        tail of publish -> case opened, issue 21.) Handed-over documents cost the relay no read, no
        empty read after it, and no delete of its own while the service's transactions come more
        often than every ``erase_after`` seconds: they delete them (issue 21)."""
        try:
            await self._relay(poll_seconds, limit, erase_after)
        finally:  # stopped: what was published is deleted now, not published again at the next start
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._erase(), 5)

    async def _relay(self, poll_seconds: float, limit: int, erase_after: float) -> None:
        self._read = True
        read_at = 0.0
        while True:
            self._wake.clear()
            try:
                if self._read or time.monotonic() - read_at >= poll_seconds:
                    self._read = False
                    read_at = time.monotonic()
                    self._handed.clear()  # committed before they were handed over: the read finds them
                    published = await self.relay_once(limit)
                    if published >= limit:  # a full page: read on
                        self._read = True
                else:
                    handed, self._handed = self._handed, []
                    published = await self._publish(handed, erase=False)
                if self._published and not (self._read or self._wake.is_set()):  # wait for a transaction
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), erase_after)
                    if not self._wake.is_set():
                        await self._erase()
            except Exception as exc:  # store or broker away: read again after a poll
                log.warning("outbox relay failed", error=repr(exc))
                self._read = True
                await asyncio.sleep(poll_seconds)
                continue
            if self._read or self._handed:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, read_at + poll_seconds - time.monotonic()))
            except TimeoutError:
                self._read = True

    async def relay_once(self, limit: int = 500) -> int:
        """Read the outbox and publish up to about ``limit`` staged events (whole documents), in
        order, then delete their documents; returns the number of events published. What was
        published and waits for its delete is deleted first, and what a transaction in flight
        deletes is skipped: neither is published again."""
        await self._erase()
        found = await self.collection.find({}).sort("_id", ASCENDING).limit(limit).to_list()
        docs: list[Doc] = []
        events = 0
        for doc in found:  # a batch document is published whole
            if doc["_id"] in self._erasing:
                continue
            size = len(doc.get("events") or [doc])
            if docs and events + size > limit:
                break
            docs.append(doc)
            events += size
        return await self._publish(docs)

    async def _publish(self, docs: Sequence[Doc], erase: bool = True) -> int:
        """Run the followers on the documents' events, publish them in order, wait for the acks,
        delete the documents (``erase``; else a transaction or the relay deletes them later: the
        module doc); returns the number of events published."""
        obs.OUTBOX_PENDING.labels(self.service).set(len(docs))
        events = unbatched(docs)
        if not events:
            return 0
        for follower in self.followers:
            await follower(events)
        futures = [
            await self.kafka.send(
                d["topic"], value=d["value"], key=d["key"].encode(), headers=[(k, bytes(v)) for k, v in d["headers"]]
            )
            for d in events
        ]
        await asyncio.gather(*futures)
        if erase:
            await self.collection.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        else:
            self._published += [d["_id"] for d in docs]
        for d in events:
            obs.PUBLISHED.labels(self.service, d["topic"]).inc()
        return len(events)


def _batch(docs: list[dict[str, Any]]) -> dict[str, Any]:
    # its own event id (the unique index): the first event's, marked, so it never collides with it
    return {"_id": ObjectId(), "event_id": f"batch/{docs[0]['event_id']}", "events": docs}


def unbatched(docs: Sequence[Doc]) -> list[Doc]:
    """The events of outbox documents: a batch document's, in order, each one's own otherwise."""
    return [e for d in docs for e in (d.get("events") or [d])]
