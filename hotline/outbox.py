"""Transactional outbox, for events that do not come from a consumed record.

A consumer needs no outbox: the offset it has not yet committed is its durable to-do list
(see hotline/kafka.py). An HTTP or gRPC command, or a timer, has no such cursor, so it
writes its state change and its events in one MongoDB transaction (``stage``), and the
relay publishes what is staged, in order, then deletes it. A crash between publishing and
deleting republishes the same event ids, which consumers drop as duplicates. The unit of work
stages a transaction's events as ONE document (:meth:`Outbox.batched`, ``events``: the events
in order); the relay publishes its events one by one and deletes the one document.

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
INDEXES = {COLLECTION: [IndexModel([("event_id", ASCENDING)], unique=True)]}


class Outbox:
    def __init__(self, db: AsyncDatabase[Doc], kafka: AIOKafkaProducer, service: str) -> None:
        self.collection = db[COLLECTION]
        self.kafka = kafka
        self.service = service
        self._wake = asyncio.Event()
        self.followers: list[Follower] = []

    def follow(self, follower: Follower) -> None:
        """Run ``follower`` on the staged events before they are published (module doc)."""
        self.followers.append(follower)

    def documents(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The outbox documents of ``events`` (for a caller that writes them in its own bulk write,
        hotline/commands.py; then call :meth:`staged`)."""
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

    def staged(self) -> None:
        """Events were written: the relay has work."""
        self._wake.set()

    async def stage(self, events: Sequence[Event], session: AsyncClientSession | None = None) -> None:
        """Write events to the outbox (inside the caller's transaction when given a session: the
        caller calls :meth:`staged` once it has committed; a wake-up before the commit finds nothing)."""
        # the same event staged twice: keep the first
        await insert_missing(self.collection, self.documents(events), session)
        if session is None:
            self._wake.set()

    async def relay_forever(self, poll_seconds: float = 1.0) -> None:
        """Relay until cancelled: at once while there is work, else when :meth:`staged` wakes it
        (at the latest after ``poll_seconds``). The wake-up is cleared BEFORE the read: a commit
        that lands while a read finds nothing sets it again, and the next read sees it. (Cleared
        after an empty read, that commit's events waited a whole poll: the tail of publish -> case
        opened, issue 21.)"""
        while True:
            self._wake.clear()
            try:
                published = await self.relay_once()
            except Exception as exc:  # store or broker away: try again after a poll
                log.warning("outbox relay failed", error=repr(exc))
                await asyncio.sleep(poll_seconds)
                continue
            if published == 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), poll_seconds)
                except TimeoutError:
                    pass

    async def relay_once(self, limit: int = 500) -> int:
        """Publish up to about ``limit`` staged events (whole documents), in order, then delete
        their documents; returns the number of events published."""
        found = await self.collection.find({}).sort("_id", ASCENDING).limit(limit).to_list()
        obs.OUTBOX_PENDING.labels(self.service).set(len(found))
        docs: list[Doc] = []
        events: list[Doc] = []
        for doc in found:  # a batch document is published whole
            if events and len(events) + len(doc.get("events") or [doc]) > limit:
                break
            docs.append(doc)
            events += unbatched([doc])
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
        await self.collection.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        for d in events:
            obs.PUBLISHED.labels(self.service, d["topic"]).inc()
        return len(events)


def _batch(docs: list[dict[str, Any]]) -> dict[str, Any]:
    # its own event id (the unique index): the first event's, marked, so it never collides with it
    return {"_id": ObjectId(), "event_id": f"batch/{docs[0]['event_id']}", "events": docs}


def unbatched(docs: Sequence[Doc]) -> list[Doc]:
    """The events of outbox documents: a batch document's, in order, each one's own otherwise."""
    return [e for d in docs for e in (d.get("events") or [d])]
