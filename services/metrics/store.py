"""Metrics' store: per-ticket stage flags (``facts``) and day roll-ups (``rollups``); the KPI
projection's facts and the reports (:class:`KpiStore`).

A batch is applied in one transaction: look up the facts ``<ticket_id>|<stage>|<round>``, insert the
missing ones and increment the roll-ups for those only. A replayed or republished event
finds its fact and counts nothing; a crash mid-batch leaves nothing half-counted. (Facts
are insert-only: an insert costs half an upsert in the development store.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bson import Binary
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from hotline.mongo import Doc, find_in, insert_missing, write_batch
from services.metrics import kpi_items
from services.metrics.core import STAGES, StageReached
from services.metrics.kpi import CaseFacts, KpiPolicy, Period, period_label, within
from services.metrics.kpi_items import RecurringFacts, SupervisionFacts, WhistleFacts
from services.metrics.projection import FactUpdate, assemble, fold

# The KPI facts' anchor months (see KpiStore.facts_within): a multikey index per level.
MONTHS = "months"
ANCHORS = {"ticket": ("received_at",), "dispatch": ("assigned_at", "sign_off_due", "contact_due"),
           "handling": ("replied_at", "closed_at", "evaluated_at")}  # every measure's anchor (kpi.MEASURES)
INDEXES = {"rollups": [IndexModel([("dim", ASCENDING), ("day", ASCENDING)])],
           "reports": [IndexModel([("kind", ASCENDING)])],
           "kpi_tickets": [IndexModel([(MONTHS, ASCENDING)])],
           "kpi_dispatches": [IndexModel([(MONTHS, ASCENDING)])],
           "kpi_handlings": [IndexModel([(MONTHS, ASCENDING)])]}
DISTRICT_TZ = ZoneInfo("Asia/Shanghai")  # settings.timezone's default; main.py passes the setting


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
        fact_ids = {s.fact_id: s for s in stages}  # one fact per (ticket, stage, round)
        seen = {d["_id"] for d in await find_in(self.facts, list(fact_ids), projection={"_id": 1}, session=session)}
        new = {fid: s for fid, s in fact_ids.items() if fid not in seen}
        if not new:
            return 0
        await self.facts.insert_many([{"_id": fid} for fid in new], ordered=False, session=session)
        increments: Counter[tuple[str, str, str, str]] = Counter()
        for s in new.values():
            for dim, value in s.dims:
                increments[(s.day, dim, value, s.stage)] += 1
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
        return len(new)

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


class KpiStore:
    """The KPI projection's facts (``kpi_tickets``, ``kpi_dispatches``, ``kpi_handlings``; see
    services/metrics/projection.py) and the generated reports (``reports``)."""

    COLLECTIONS = {"ticket": "kpi_tickets", "dispatch": "kpi_dispatches", "handling": "kpi_handlings",
                   "whistle": "kpi_whistles", "recurring": "kpi_recurring",  # these: kpi_items.py
                   "supervision": "kpi_supervision"}

    def __init__(self, db: AsyncDatabase[Doc], tz: ZoneInfo = DISTRICT_TZ) -> None:
        self.db = db
        self.reports = db["reports"]
        self.tz = tz  # the months of the anchors (``months``) are the district's
        self._backfilled = False

    def months_of(self, level: str, fields: Mapping[str, Any]) -> list[str]:
        """The months (district time, ``YYYY-MM``) of the anchor times among ``fields``: a KPI row
        counts in a month only when one of its documents has an anchor in it (kpi.MEASURES)."""
        out = set()
        for name in ANCHORS.get(level, ()):
            at = fields.get(name)
            if isinstance(at, datetime):
                try:
                    out.add(period_label("month", at if at.tzinfo else at.replace(tzinfo=UTC), self.tz))
                except OverflowError:  # a time past year 9999 in district time (a bad record): in no month
                    continue
        return sorted(out)

    async def apply(self, batch: Sequence[FactUpdate]) -> int:
        """Write the batch's updates, merged per document ($set then $max, upserting). A document
        not stored yet is inserted instead (an insert costs the store half an upsert; most
        documents are new when their first event comes); one another writer inserted meanwhile
        gets the update."""
        by_collection: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for u in fold(batch).values():
            op: dict[str, Any] = {}
            if u.set:
                op["$set"] = dict(u.set)
            if u.max:
                op["$max"] = dict(u.max)
            if op and u.level in ANCHORS:  # the anchors' months, for the month query (facts_within);
                months = self.months_of(u.level, {**u.set, **u.max})  # an insert stores [] when none
                op["$addToSet"] = {MONTHS: {"$each": months}}
            if op:
                by_collection.setdefault(self.COLLECTIONS[u.level], []).append((u.key, op))
        for collection, ops in by_collection.items():
            docs = self.db[collection]
            stored = {d["_id"] for d in await find_in(docs, [key for key, _ in ops], projection={"_id": 1})}
            fresh = [(key, op) for key, op in ops if key not in stored and _plain(op)]
            raced = await insert_missing(docs, [_inserted(key, op) for key, op in fresh])
            inserted = {key for key, _ in fresh} - raced
            updates = [UpdateOne({"_id": key}, _without_no_months(op), upsert=True)
                       for key, op in ops if key not in inserted]
            await write_batch(docs, updates)
        return sum(len(ops) for ops in by_collection.values())

    async def documents(self) -> dict[str, dict[str, Doc]]:
        """The facts' documents by level and key (without ``months``: an index of the anchors)."""
        out: dict[str, dict[str, Doc]] = {}
        for level in ("ticket", "dispatch", "handling"):
            collection = self.COLLECTIONS[level]
            out[level] = {d.pop("_id"): d async for d in self.db[collection].find({}, {MONTHS: 0})}
        return out

    async def facts(self, policy: KpiPolicy) -> list[CaseFacts]:
        docs = await self.documents()
        return assemble(docs["ticket"], docs["dispatch"], docs["handling"], policy)

    async def facts_within(self, policy: KpiPolicy, start: datetime, end: datetime) -> list[CaseFacts]:
        """``kpi.within(facts(policy), start, end)`` (the rows with an anchor in [start, end)) read
        from the documents of those months only: O(the window's rows), not O(every ticket ever).

        Each document carries the months of its anchors (``months``, indexed). A row (ticket,
        dispatch, redo round) has an anchor in the window only if its ticket document (received_at:
        the row ``<ticket>|1|0``), its dispatch document (assigned_at, the response limits: redo round
        0) or its handling document (replied_at, closed_at, evaluated_at) has; the other documents
        of those rows are read by ``_id``."""
        await self._backfill()
        labels = self._labels(start, end)
        query = {MONTHS: labels[0]} if len(labels) == 1 else {MONTHS: {"$in": labels}}
        found = {level: {d.pop("_id"): d async for d in self.db[self.COLLECTIONS[level]].find(query, {MONTHS: 0})}
                 for level in ANCHORS}
        tickets, dispatches, handlings = (set(found["ticket"]), {f"{t}|1" for t in found["ticket"]},
                                          {f"{t}|1|0" for t in found["ticket"]})
        for dkey in found["dispatch"]:
            tickets.add(dkey.rpartition("|")[0])
            handlings.add(f"{dkey}|0")
        for hkey in found["handling"]:
            dkey = hkey.rpartition("|")[0]
            dispatches.add(dkey)
            tickets.add(dkey.rpartition("|")[0])
        for level, keys in (("ticket", tickets), ("dispatch", dispatches), ("handling", handlings)):
            have = found[level]
            missing = sorted(keys - set(have))
            for d in await find_in(self.db[self.COLLECTIONS[level]], missing, projection={MONTHS: 0}):
                have[d.pop("_id")] = d
        return within(assemble(found["ticket"], found["dispatch"], found["handling"], policy), start, end)

    def _labels(self, start: datetime, end: datetime) -> list[str]:
        """The months (district time) that [start, end) overlaps."""
        labels, month = [], Period.parse(period_label("month", start, self.tz), self.tz)
        while month.start < end:
            labels.append(month.label)
            month = month.shifted(1)
        return labels

    async def _backfill(self) -> None:
        """Facts stored before they carried ``months`` get theirs (once per process; later writes
        always set it). ``$addToSet``: a concurrent write of the projection loses nothing."""
        if self._backfilled:
            return
        for level, fields in ANCHORS.items():
            docs = self.db[self.COLLECTIONS[level]]
            old = await docs.find({MONTHS: {"$exists": False}}, dict.fromkeys(fields, 1)).to_list()
            updates = [UpdateOne({"_id": d["_id"]}, {"$addToSet": {MONTHS: {"$each": self.months_of(level, d)}}})
                       for d in old]
            for start in range(0, len(updates), 1000):
                await docs.bulk_write(updates[start:start + 1000], ordered=False)
        self._backfilled = True

    async def items(self) -> tuple[list[WhistleFacts], list[RecurringFacts]]:
        """Whistles and 屡办不成 items (services/metrics/kpi_items.py)."""
        docs = {level: {d.pop("_id"): d async for d in self.db[self.COLLECTIONS[level]].find({})}
                for level in ("whistle", "recurring")}
        return kpi_items.assemble(docs["whistle"], docs["recurring"])

    async def records(self) -> list[SupervisionFacts]:
        """督办 records, one per level raised on a case (services/metrics/kpi_items.py)."""
        docs = {d.pop("_id"): d async for d in self.db[self.COLLECTIONS["supervision"]].find({})}
        return kpi_items.assemble_records(docs)

    async def save_report(self, meta: Doc, files: Mapping[str, bytes]) -> None:
        doc = {**meta, "files": {fmt: Binary(data) for fmt, data in files.items()}}
        await self.reports.replace_one({"_id": meta["_id"]}, doc, upsert=True)

    async def list_reports(self, kind: str = "") -> list[Doc]:
        query = {"kind": kind} if kind else {}
        return await self.reports.find(query, {"files": 0}).sort("_id", ASCENDING).to_list()

    async def report_file(self, report_id: str, fmt: str) -> bytes | None:
        doc = await self.reports.find_one({"_id": report_id}, {f"files.{fmt}": 1})
        data = (doc or {}).get("files", {}).get(fmt)
        return bytes(data) if data is not None else None


def _inserted(key: str, op: Mapping[str, Any]) -> Doc:
    """The document an update of a key not stored yet makes (``$addToSet`` of ``$each``: a list)."""
    added = {name: list(spec["$each"]) for name, spec in op.get("$addToSet", {}).items()}
    return {"_id": key, **op.get("$set", {}), **op.get("$max", {}), **added}


def _without_no_months(op: dict[str, Any]) -> dict[str, Any]:
    """An update of a stored document adds no empty list of months (the write costs less)."""
    if op.get("$addToSet", {}).get(MONTHS, {}).get("$each") == []:
        return {k: v for k, v in op.items() if k != "$addToSet"}
    return op


def _plain(op: Mapping[str, Any]) -> bool:
    """An update whose fields can be inserted as they are (no dotted path, no operator name)."""
    return all("." not in name and not name.startswith("$") for part in op.values() for name in part)
