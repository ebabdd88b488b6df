"""The knowledge base's collections in metrics' database: ``kb_articles`` (the current version of each
article), ``kb_article_versions`` (every version, ``<id>/<version>``) and ``kb_cases`` (the case read
model, knowledge/cases.py). ``updated_at`` on both lets the search index follow them incrementally."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hotline.commands import Illegal
from hotline.mongo import Doc, find_in, write_batch
from services.metrics.knowledge.cases import Update

INDEXES = {
    "kb_cases": [IndexModel([("updated_at", ASCENDING)])],
    "kb_articles": [IndexModel([("updated_at", ASCENDING)])],
    "kb_article_versions": [IndexModel([("article_id", ASCENDING), ("version", DESCENDING)])],
}


class KnowledgeStore:
    kind = "article"  # a Repository of articles for the command path

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.cases = db["kb_cases"]
        self.articles = db["kb_articles"]
        self.versions = db["kb_article_versions"]

    # ---------------------------------------------------------------- articles (Repository)

    async def load(self, target: str, session: AsyncClientSession | None = None) -> Doc | None:
        return await self.articles.find_one({"_id": target}, session=session)

    async def save(self, state: Doc, session: AsyncClientSession | None = None) -> None:
        version = {k: v for k, v in state.items() if k not in ("_id", "flags", "flag_history", "answered", "flagged")}
        try:
            await self.versions.insert_one({"_id": f"{state['_id']}/{state['version']}", **version}, session=session)
        except DuplicateKeyError as exc:
            raise Illegal(f"version {state['version']} of {state['_id']} was saved meanwhile; reload") from exc
        await self.articles.replace_one({"_id": state["_id"]}, state, upsert=True, session=session)

    async def article_versions(self, article_id: str) -> list[Doc]:
        return await self.versions.find({"article_id": article_id}).sort("version", DESCENDING).to_list()

    async def article_version(self, article_id: str, version: int) -> Doc | None:
        return await self.versions.find_one({"_id": f"{article_id}/{version}"})

    async def all_articles(self) -> list[Doc]:
        return await self.articles.find({}).sort("_id", ASCENDING).to_list()

    async def articles_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        return {d["_id"]: d for d in await find_in(self.articles, list(ids))}

    # ---------------------------------------------------------------- cases (from the consumer)

    async def apply(self, updates: Sequence[Update]) -> None:
        """The consumer's updates, one bulk write per collection (``updated_at``: when last changed).

        An update that changes nothing (a replayed event) is not written, so a replay leaves every
        document as it was, ``updated_at`` included: one read of the batch's documents per collection."""
        now = datetime.now(UTC)
        updates = _folded(updates)
        known: dict[str, dict[str, Doc]] = {}
        for name in {u.collection for u in updates}:
            coll = self.cases if name == "kb_cases" else self.articles
            known[name] = {d["_id"]: d for d in await find_in(coll, sorted({u.key for u in updates
                                                                             if u.collection == name}))}
        by: dict[str, list[UpdateOne]] = {}
        for u in updates:
            seen = known[u.collection].get(u.key)
            if seen is not None and _unchanged(seen, u):
                continue
            if seen is not None and all(seen.get(k) == v for k, v in u.match.items()):
                seen.update(u.set)  # later updates of the batch compare with this one's result
                for k, v in u.add.items():
                    seen[k] = [*seen.get(k, []), v]
            elif seen is None and u.upsert:
                known[u.collection][u.key] = {**u.set}
            # ``updated_at`` (the indexer's tail) only on what the index may hold: articles, and cases
            # once resolved (``resolved`` set; a sent-back case is then removed). Every ticket's receipt
            # and assignment write a case the index never reads until it is resolved.
            case = known[u.collection].get(u.key) or {}
            stamp = u.collection != "kb_cases" or "resolved" in u.set or "resolved" in case
            op: dict[str, Any] = {"$set": {**u.set, **({"updated_at": now} if stamp else {})}}
            if u.add:
                op["$addToSet"] = u.add
            by.setdefault(u.collection, []).append(UpdateOne({"_id": u.key, **u.match}, op, upsert=u.upsert))
        for name, ops in by.items():
            await write_batch(self.cases if name == "kb_cases" else self.articles, ops, ordered=True)

    async def case(self, ticket_id: str) -> Doc | None:
        return await self.cases.find_one({"_id": ticket_id})

    async def cases_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        return {d["_id"]: d for d in await find_in(self.cases, list(ids))}

    async def changed_since(self, collection: str, since: datetime | None, limit: int = 5000,
                            ever_resolved: bool = False) -> list[Doc]:
        """Documents written at or after ``since`` (all when None), oldest first: the indexer's tail.
        ``ever_resolved``: only cases with ``resolved`` set (resolved now or sent back since)."""
        query: dict[str, Any] = {"updated_at": {"$gte": since}} if since is not None else {}
        if ever_resolved:
            query["resolved"] = {"$exists": True}
        coll = self.cases if collection == "kb_cases" else self.articles
        return await coll.find(query).sort("updated_at", ASCENDING).limit(limit).to_list()


def _folded(updates: Sequence[Update]) -> list[Update]:
    """Consecutive plain ``$set`` upserts of one case merged (a ticket's receipt and assignment in one
    batch: one write): the later value of a field wins, as it did write after write."""
    out: list[Update] = []
    last: dict[tuple[str, str], int] = {}  # (collection, key) -> index in out of its mergeable update
    for u in updates:
        plain = u.upsert and not u.add and not u.match
        slot = (u.collection, u.key)
        if plain and slot in last:
            before = out[last[slot]]
            out[last[slot]] = Update(u.collection, u.key, {**before.set, **u.set})
            continue
        if plain:
            last[slot] = len(out)
        else:
            last.pop(slot, None)  # an update with conditions or sets in between: keep the order
        out.append(u)
    return out


def _unchanged(doc: Doc, u: Update) -> bool:
    """True when ``u`` would leave ``doc`` as it is (its fields already set, its values already added)."""
    return all(doc.get(k) == v for k, v in u.set.items()) and all(v in doc.get(k, []) for k, v in u.add.items())
