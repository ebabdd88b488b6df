"""Transactional outbox, for events that do not come from a consumed record.

A consumer needs no outbox: the offset it has not yet committed is its durable to-do list
(see hotline/kafka.py). An HTTP or gRPC command, or a timer, has no such cursor, so it
writes its state change and its events in one MongoDB transaction (``stage``), and the
relay publishes what is staged, in order, then deletes it. A crash between publishing and
deleting republishes the same event ids, which consumers drop as duplicates.

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

    def staged(self) -> None:
        """Events were written: the relay has work."""
        self._wake.set()

    async def stage(self, events: Sequence[Event], session: AsyncClientSession | None = None) -> None:
        """Write events to the outbox (inside the caller's transaction when given a session)."""
        # the same event staged twice: keep the first
        await insert_missing(self.collection, self.documents(events), session)
        self._wake.set()

    async def relay_forever(self, poll_seconds: float = 1.0) -> None:
        while True:
            try:
                published = await self.relay_once()
            except Exception as exc:  # store or broker away: try again later
                log.warning("outbox relay failed", error=repr(exc))
                published = 0
            if published == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), poll_seconds)
                except TimeoutError:
                    pass

    async def relay_once(self, limit: int = 500) -> int:
        docs = await self.collection.find({}).sort("_id", ASCENDING).limit(limit).to_list()
        obs.OUTBOX_PENDING.labels(self.service).set(len(docs))
        if not docs:
            return 0
        for follower in self.followers:
            await follower(docs)
        futures = [
            await self.kafka.send(
                d["topic"], value=d["value"], key=d["key"].encode(), headers=[(k, bytes(v)) for k, v in d["headers"]]
            )
            for d in docs
        ]
        await asyncio.gather(*futures)
        await self.collection.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        for d in docs:
            obs.PUBLISHED.labels(self.service, d["topic"]).inc()
        return len(docs)
