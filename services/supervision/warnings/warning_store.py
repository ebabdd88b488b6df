"""Early warnings' store: the ticket facts the detectors look back on (``warning_facts``, one per
ticket, insert-if-missing so a replay adds nothing) and the warnings raised (``warnings``, keyed
by their deterministic id, so a replay never stores one twice).

Each fact carries who stored it and when (``by``: the storing process, ``stored_at``: its wall
clock): a process keeps the recent facts in memory (fact_window.py) and reads only what the
other live processes (``warning_writers``, a heartbeat each) stored since it last looked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import pb
from hotline.mongo import IN_CHUNK, Doc, insert_missing
from hotline.v1 import warnings_pb2
from services.supervision.warnings.warnings import Fact

INDEXES = {
    "warning_facts": [
        IndexModel([("street", ASCENDING), ("category", ASCENDING), ("at", ASCENDING)]),
        IndexModel([("caller_key", ASCENDING), ("at", ASCENDING)], sparse=True),
        IndexModel([("address", ASCENDING), ("at", ASCENDING)], sparse=True),
        IndexModel([("at", ASCENDING)]),
        IndexModel([("by", ASCENDING), ("stored_at", ASCENDING)], sparse=True),
    ],
    "warnings": [IndexModel([("raised_at", DESCENDING), ("_id", ASCENDING)]),
                 IndexModel([("kind", ASCENDING), ("raised_at", DESCENDING)])],
}


WRITERS = "warning_writers"
ALIVE = timedelta(seconds=60)  # a writer whose heartbeat is older is gone
HEARTBEAT = timedelta(seconds=10)
SLACK = timedelta(seconds=10)  # clocks of two processes and a write in flight: read this much again


def _doc(fact: Fact, by: str = "", stored_at: datetime | None = None) -> Doc:
    doc: Doc = {"_id": fact.ticket_id, "at": fact.at, "street": fact.street, "category": fact.category,
                "text": fact.text}
    if by:
        doc["by"], doc["stored_at"] = by, stored_at
    if fact.caller_key:
        doc["caller_key"] = fact.caller_key
    if fact.address:
        doc["address"] = fact.address
    return doc


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fact_of_doc(doc: Doc) -> Fact:
    return Fact(doc["_id"], _aware(doc["at"]), doc["street"], doc["category"], doc.get("address", ""),
                doc.get("caller_key", ""), doc["text"])


class WarningStore:
    def __init__(self, db: AsyncDatabase[Doc], process: str = "") -> None:
        self.facts = db["warning_facts"]
        self.warnings = db["warnings"]
        self.writers = db[WRITERS]
        self.process = process or uuid.uuid4().hex
        self.beat_at: datetime | None = None
        self.beat_every = HEARTBEAT
        self.others: dict[str, datetime] = {}  # live writers but this process -> read their facts since
        self.started: datetime | None = None

    async def remember(self, facts: Sequence[Fact]) -> set[Any]:
        """Store the facts; returns the ids of those stored before (a replay)."""
        now = datetime.now(UTC)
        await self.heartbeat(now)
        return await insert_missing(self.facts, [_doc(f, self.process, now) for f in facts])

    async def heartbeat(self, now: datetime) -> None:
        """Say this process is storing facts (every ``HEARTBEAT``), and learn who else is."""
        if self.beat_at is not None and now - self.beat_at < self.beat_every:
            return
        self.beat_at = now
        await self.writers.update_one({"_id": self.process}, {"$set": {"seen": now}}, upsert=True)
        alive = {d["_id"] async for d in self.writers.find({"seen": {"$gte": now - ALIVE}}, {"_id": 1})}
        alive.discard(self.process)
        for gone in set(self.others) - alive:
            del self.others[gone]
        for new in alive - set(self.others):  # what it stored since this process's memory was read
            self.others[new] = self.started or now

    def looking_from(self, when: datetime) -> None:
        """This process's memory was read from the store at ``when``: every fact stored before is in it."""
        if self.started is None:
            self.started = when

    async def by_others(self) -> list[Fact]:
        """The facts other live processes stored since this one last asked (and ``SLACK`` before)."""
        if not self.others:
            return []
        now = datetime.now(UTC)
        out: list[Fact] = []
        for other, since in list(self.others.items()):
            out += [fact_of_doc(d) async for d in self.facts.find({"by": other,
                                                                   "stored_at": {"$gte": since - SLACK}})]
            self.others[other] = now
        return out

    async def between(self, start: datetime, end: datetime | None) -> list[Fact]:
        """Every fact received from ``start`` (to ``end``, excluded)."""
        at: dict[str, Any] = {"$gte": start}
        if end is not None:
            at["$lt"] = end
        return [fact_of_doc(d) async for d in self.facts.find({"at": at})]

    async def since(self) -> datetime | None:
        first = await self.facts.find_one({}, sort=[("at", ASCENDING)])
        return _aware(first["at"]) if first else None

    async def around(self, field: dict[str, Any], start: datetime, end: datetime) -> list[Fact]:
        cursor = self.facts.find({**field, "at": {"$gte": start, "$lte": end}})
        return [fact_of_doc(d) async for d in cursor]

    async def around_many(self, field: str, values: Sequence[str], start: datetime, end: datetime,
                          ) -> dict[str, list[Fact]]:
        """The facts whose ``field`` is one of ``values`` between ``start`` and ``end``, by value
        (``$in`` in chunks, hotline.mongo.IN_CHUNK)."""
        out: dict[str, list[Fact]] = {}
        unique = list(dict.fromkeys(values))
        for first in range(0, len(unique), IN_CHUNK):
            cursor = self.facts.find({field: {"$in": unique[first:first + IN_CHUNK]},
                                      "at": {"$gte": start, "$lte": end}})
            async for doc in cursor:
                out.setdefault(doc[field], []).append(fact_of_doc(doc))
        return out

    async def save(self, warnings: Sequence[warnings_pb2.EarlyWarning]) -> None:
        await insert_missing(self.warnings, [
            {"_id": w.warning_id, "kind": w.kind, "level": w.level, "raised_at": pb.dt(w.raised_at),
             "warning": json_format.MessageToDict(w, preserving_proto_field_name=True)} for w in warnings])

    async def get(self, warning_id: str) -> warnings_pb2.EarlyWarning | None:
        doc = await self.warnings.find_one({"_id": warning_id})
        return json_format.ParseDict(doc["warning"], warnings_pb2.EarlyWarning()) if doc else None

    async def list(self, kind: str, limit: int) -> list[warnings_pb2.EarlyWarning]:
        query = {"kind": kind} if kind else {}
        cursor = self.warnings.find(query, sort=[("raised_at", DESCENDING), ("_id", ASCENDING)], limit=limit)
        return [json_format.ParseDict(d["warning"], warnings_pb2.EarlyWarning()) async for d in cursor]
