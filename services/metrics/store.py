"""Metrics' store: per-ticket stage flags (``facts``) and day roll-ups (``rollups``).

A batch is applied in one transaction: read the facts, count only stages not yet flagged,
set the flags and increment the roll-ups together. A replayed event finds its flag set
and counts nothing; a crash mid-batch leaves nothing half-counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline.mongo import Doc
from services.metrics.core import STAGES, StageReached

INDEXES = {"rollups": [IndexModel([("dim", ASCENDING), ("day", ASCENDING)])]}


class RollupStore:
    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]) -> None:
        self.client = client
        self.facts = db["facts"]
        self.rollups = db["rollups"]

    async def count(self, stages: Sequence[StageReached]) -> int:
        """Count each (ticket, stage) once; returns how many were new."""
        async with self.client.start_session() as session:
            result: int = await session.with_transaction(lambda s: self._count(stages, s))
            return result

    async def _count(self, stages: Sequence[StageReached], session: AsyncClientSession) -> int:
        ids = sorted({s.ticket_id for s in stages})
        flagged = {
            d["_id"]: d
            async for d in self.facts.find({"_id": {"$in": ids}}, {s: 1 for s in STAGES}, session=session)
        }
        increments: Counter[tuple[str, str, str, str]] = Counter()
        fact_updates: dict[str, dict[str, Any]] = {}
        for s in stages:
            if flagged.get(s.ticket_id, {}).get(s.stage) or s.stage in fact_updates.get(s.ticket_id, {}):
                continue
            fact_updates.setdefault(s.ticket_id, {})[s.stage] = True
            fact_updates[s.ticket_id]["day"] = s.day
            for dim, value in s.dims:
                increments[(s.day, dim, value, s.stage)] += 1
        if not fact_updates:
            return 0
        await self.facts.bulk_write(
            [UpdateOne({"_id": i}, {"$set": f}, upsert=True) for i, f in fact_updates.items()],
            ordered=False, session=session,
        )
        per_doc: dict[tuple[str, str, str], dict[str, int]] = {}
        for (day, dim, value, stage), n in increments.items():
            per_doc.setdefault((day, dim, value), {})[stage] = n
        await self.rollups.bulk_write(
            [
                UpdateOne({"_id": f"{day}|{dim}|{value}"},
                          {"$inc": inc, "$setOnInsert": {"day": day, "dim": dim, "value": value}}, upsert=True)
                for (day, dim, value), inc in per_doc.items()
            ],
            ordered=False, session=session,
        )
        return sum(len([k for k in f if k in STAGES]) for f in fact_updates.values())

    async def totals(self, from_day: str = "", to_day: str = "") -> dict[str, dict[str, dict[str, int]]]:
        """{dim: {value: {stage: count}}} summed over the days in range (inclusive)."""
        query: dict[str, Any] = {}
        if from_day or to_day:
            query["day"] = {k: v for k, v in (("$gte", from_day), ("$lte", to_day)) if v}
        out: dict[str, dict[str, dict[str, int]]] = {}
        async for doc in self.rollups.find(query):
            slot = out.setdefault(doc["dim"], {}).setdefault(doc["value"], dict.fromkeys(STAGES, 0))
            for stage in STAGES:
                slot[stage] += int(doc.get(stage, 0))
        return out

    async def daily(self, dim: str, from_day: str = "", to_day: str = "") -> list[Doc]:
        query: dict[str, Any] = {"dim": dim}
        if from_day or to_day:
            query["day"] = {k: v for k, v in (("$gte", from_day), ("$lte", to_day)) if v}
        return await self.rollups.find(query, {"_id": 0}).sort("day", ASCENDING).to_list()
