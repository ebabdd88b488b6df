"""A consumer batch's plain writes (hotline/mongo.py ``insert_missing``, ``write_batch``) against the
real store: one transaction of their own, the same results as the unordered writes they replace
(a replayed document skipped and reported, a refused write raised), concurrent batches included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from hotline import mongo
from hotline.settings import Settings
from tests.integration.test_commands import Sent
from tests.integration.test_kit import kit  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
async def listened(settings: Settings, kit: dict) -> AsyncIterator[tuple[Any, Sent]]:  # noqa: F811
    """The kit's database through a client whose commands are listed (``Sent.names``)."""
    sent = Sent()
    client = mongo.client(settings, event_listeners=[sent])
    yield client[kit["db"].name], sent
    await client.close()


async def test_a_batch_is_inserted_in_one_transaction_and_a_replay_skips_what_is_stored(
        listened: tuple[Any, Sent]) -> None:
    db, sent = listened
    facts = db["facts"]
    await facts.insert_one({"_id": "warm-up"})
    sent.names.clear()
    assert await mongo.insert_missing(facts, [{"_id": f"F{i}", "n": i} for i in range(5)]) == set()
    assert sent.names == ["insert", "commitTransaction"]
    assert await facts.count_documents({}) == 6

    sent.names.clear()  # a replay holding two stored documents: each on its own, the stored ones kept
    there = await mongo.insert_missing(facts, [{"_id": "F1", "n": -1}, {"_id": "F9", "n": 9}, {"_id": "F3", "n": -3}])
    assert there == {"F1", "F3"}
    assert sent.names[0] == "insert" and "abortTransaction" in sent.names and sent.names[-1] == "insert"
    assert {d["_id"]: d["n"] async for d in facts.find({"_id": {"$in": ["F1", "F3", "F9"]}})} == \
        {"F1": 1, "F3": 3, "F9": 9}

    sent.names.clear()  # one document: no transaction of its own
    assert await mongo.insert_missing(facts, [{"_id": "F10"}]) == set()
    assert sent.names == ["insert"]


async def test_concurrent_overlapping_batches_store_each_document_once(settings: Settings, kit: dict) -> None:  # noqa: F811
    facts = kit["db"]["facts_raced"]
    await facts.insert_one({"_id": "warm-up"})
    batches = [[{"_id": f"R{i}", "by": k} for i in range(k * 10, k * 10 + 30)] for k in range(6)]  # overlap by 20
    results = await asyncio.gather(*(mongo.insert_missing(facts, b) for b in batches))
    assert await facts.count_documents({"_id": {"$regex": "^R"}}) == 80
    inserted = [{d["_id"] for d in b} - there for b, there in zip(batches, results, strict=True)]
    assert sorted(i for ids in inserted for i in ids) == sorted(f"R{i}" for i in range(80))  # each once
    for ids in inserted:  # a batch's "already there" is exactly what another batch stored
        for doc_id in ids:
            assert (await facts.find_one({"_id": doc_id}))["by"] in range(6)


async def test_write_batch_applies_in_one_transaction_or_raises_as_the_plain_write(
        listened: tuple[Any, Sent]) -> None:
    db, sent = listened
    items = db["items"]
    await items.create_index("code", unique=True, sparse=True)
    await items.insert_one({"_id": "taken", "code": "X"})
    sent.names.clear()
    ops: list[Any] = [UpdateOne({"_id": f"T{i}"}, {"$set": {"rule": f"r{i}"}}, upsert=True) for i in range(4)]
    await mongo.write_batch(items, ops)
    assert sent.names == ["update", "commitTransaction"]
    assert await items.count_documents({"rule": {"$exists": True}}) == 4
    await mongo.write_batch(items, ops)  # idempotent: again, the same documents
    assert await items.count_documents({"rule": {"$exists": True}}) == 4

    sent.names.clear()  # a refused write: the transaction writes nothing, the plain write raises it
    refused = [UpdateOne({"_id": "T0"}, {"$set": {"rule": "new"}}),
               UpdateOne({"_id": "T1"}, {"$set": {"code": "X"}}),  # duplicate of "taken"'s code
               UpdateOne({"_id": "T2"}, {"$set": {"rule": "new"}})]
    with pytest.raises(BulkWriteError):
        await mongo.write_batch(items, refused, ordered=True)
    assert sent.names == ["update", "abortTransaction", "update"]
    # as the ordered plain write leaves it: the write before the refused one applied, the one after not
    assert [d["rule"] async for d in items.find({"_id": {"$in": ["T0", "T2"]}}).sort("_id", 1)] == ["new", "r2"]
