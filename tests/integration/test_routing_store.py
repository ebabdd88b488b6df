"""The responsibility list's versions in the real store: current version, history, conflicts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hotline import mongo
from hotline.directory import DIRECTORY_FILE
from hotline.settings import Settings
from services.routing.core import DATA_DIR, Directory
from services.routing.responsibility import Change, Listing, apply_change, load_listing
from services.routing.store import ListConflict, ResponsibilityStore

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@pytest.fixture
async def db(settings: Settings, topics: list[str]) -> AsyncIterator[AsyncDatabase[mongo.Doc]]:
    client = mongo.client(settings)
    yield client[f"{settings.mongo.database_prefix}_routing_{uuid.uuid4().hex[:6]}"]
    await client.close()


@pytest.fixture(scope="module")
def shipped() -> Listing:
    return load_listing(DATA_DIR / "responsibilities.json")


UNITS = Directory.from_file(DIRECTORY_FILE).units


async def test_versions_are_stored_with_who_when_and_why(db: AsyncDatabase[mongo.Doc], shipped: Listing) -> None:
    store = ResponsibilityStore(db)
    assert await store.load() is None
    first = await store.ensure(shipped, "system:routing", AT)
    assert first.listing == shipped and first.entry.op == "seed"
    assert (await store.ensure(shipped, "system:routing", AT + timedelta(hours=1))) == first  # seeded once

    item = replace(shipped.items[0], keywords=(*shipped.items[0].keywords, "美容卡"))
    second = apply_change(shipped, Change("upsert", "市民常说美容卡", item=item), "office:li", AT + timedelta(days=1),
                          UNITS)
    await store.save(second)
    loaded = await store.load()
    assert loaded == second
    assert loaded.listing.list_version == second.listing.list_version and loaded.entry.at == AT + timedelta(days=1)

    third = apply_change(second.listing, Change("remove", "并入", rule_id="消费维权-06"), "admin:wang",
                         AT + timedelta(days=2), UNITS)
    await store.save(third)
    history = await store.history()
    assert [(e.version, e.op, e.actor) for e in history] == [
        (3, "remove", "admin:wang"), (2, "upsert", "office:li"), (1, "seed", "system:routing")]
    assert history[1].reason == "市民常说美容卡" and history[1].after == item.to_doc()
    assert (await store.version(2)) == second
    assert (await store.version(9)) is None


async def test_a_change_made_from_an_old_version_is_refused(db: AsyncDatabase[mongo.Doc], shipped: Listing) -> None:
    store = ResponsibilityStore(db)
    await store.ensure(shipped, "system:routing", AT)
    a = apply_change(shipped, Change("remove", "a", rule_id="消费维权-06"), "office:a", AT, UNITS)
    b = apply_change(shipped, Change("remove", "b", rule_id="消费维权-07"), "office:b", AT, UNITS)
    await store.save(a)
    with pytest.raises(ListConflict) as conflict:
        await store.save(b)  # both were made from version 1; only the first lands
    assert conflict.value.code == "failed_precondition"
    assert (await store.load()) == a
    assert [e.actor for e in await store.history()] == ["office:a", "system:routing"]


async def test_a_newer_shipped_list_is_taken_an_older_one_is_not(
    db: AsyncDatabase[mongo.Doc], shipped: Listing
) -> None:
    store = ResponsibilityStore(db)
    await store.ensure(shipped, "system:routing", AT)
    edited = apply_change(shipped, Change("remove", "a", rule_id="消费维权-06"), "office:a", AT, UNITS)
    await store.save(edited)
    assert (await store.ensure(shipped, "system:routing", AT)) == edited  # the office's edit stays
    release = replace(shipped, version=5)
    taken = await store.ensure(release, "system:routing", AT)
    assert taken.listing == release
    assert (taken.entry.op, taken.entry.previous_version) == ("seed", edited.listing.list_version)
    assert [e.version for e in await store.history()] == [5, 2, 1]


async def test_joint_reviews_are_listed_by_state_oldest_first(db: AsyncDatabase[mongo.Doc], shipped: Listing) -> None:
    from hotline import pb
    from hotline.commands import DomainError
    from hotline.v1 import routing_pb2, ticket_pb2
    from services.routing.api import joint_reviews
    from services.routing.store import DeskStore

    store = DeskStore(db, ResponsibilityStore(db))
    await store.insert_new([ticket_pb2.Ticket(ticket_id=t) for t in ("R1", "R2", "R3", "R4")], [])
    reviews = {
        "R1": routing_pb2.JointReview(ticket_id="R1", unit_ids=["DP03", "DP06"], reason="争议",
                                      status=routing_pb2.REVIEW_STATUS_OPEN, opened_at=pb.ts(AT + timedelta(hours=2))),
        "R2": routing_pb2.JointReview(ticket_id="R2", unit_ids=["DP03", "DP07"], status=routing_pb2.REVIEW_STATUS_OPEN,
                                      opened_at=pb.ts(AT)),
        "R3": routing_pb2.JointReview(ticket_id="R3", unit_ids=["DP03", "DP07"], primary_unit_id="DP07",
                                      status=routing_pb2.REVIEW_STATUS_DECIDED, opened_at=pb.ts(AT)),
    }
    for tid, review in reviews.items():  # R4 has none
        await db["desk"].update_one({"_id": tid}, {"$set": {"review": pb.to_doc(review)}})

    async def listed(status: int, page_size: int = 0) -> list[str]:
        return [r.ticket_id for r in (await joint_reviews(store, status, page_size)).reviews]

    assert await listed(routing_pb2.REVIEW_STATUS_OPEN) == ["R2", "R1"]  # oldest opened first
    assert await listed(routing_pb2.REVIEW_STATUS_DECIDED) == ["R3"]
    assert await listed(routing_pb2.REVIEW_STATUS_UNSPECIFIED) == ["R2", "R3", "R1"]
    assert await listed(routing_pb2.REVIEW_STATUS_OPEN, 1) == ["R2"]
    first = (await joint_reviews(store, routing_pb2.REVIEW_STATUS_OPEN, 0)).reviews[1]
    assert first == reviews["R1"]  # the review as stored, every field
    for status, size in ((routing_pb2.REVIEW_STATUS_OPEN, 501), (routing_pb2.REVIEW_STATUS_OPEN, -1), (7, 0)):
        with pytest.raises(DomainError) as refused:
            await joint_reviews(store, status, size)
        assert refused.value.code == "invalid_argument"


async def test_queue_gauges_follow_the_desk_writes_and_equal_a_full_count(db: AsyncDatabase[mongo.Doc]) -> None:
    """Issue 21: the queue gauges come from a ledger the desk's writes keep (read in full once),
    not from a count and a sorted read per batch of tickets; they equal the store's own count."""
    from hotline import pb
    from hotline.v1 import events_pb2, routing_pb2, ticket_pb2
    from services.routing.desk import Desk
    from services.routing.store import DeskStore

    store = DeskStore(db, ResponsibilityStore(db))
    await db["desk"].insert_one({"_id": "OLD", "queue": pb.to_doc(routing_pb2.QueueEntry(
        ticket_id="OLD", arrived_at=pb.ts(AT - timedelta(days=1))))})  # queued before this process started
    assert await store.queue_gauges() == (1, AT - timedelta(days=1))  # the full read (reconcile)
    await db["desk"].delete_one({"_id": "OLD"})  # a write it does not see: until the next reconcile

    def entry(tid: str, hours: int) -> routing_pb2.QueueEntry:
        return routing_pb2.QueueEntry(ticket_id=tid, arrived_at=pb.ts(AT + timedelta(hours=hours)))

    tickets = [ticket_pb2.Ticket(ticket_id=f"Q{i}") for i in range(5)]
    await store.insert_new(tickets, [entry("Q1", 3), entry("Q2", 1), entry("Q3", 2)])
    await store.insert_new(tickets[:2], [entry("Q1", -9)])  # a replay inserts nothing: nothing changes
    assert await store.queue_gauges() == (4, AT - timedelta(days=1))
    assigned = events_pb2.TicketAssigned()
    await store.save(Desk(ticket=tickets[2], assigned=assigned))  # dispatched by the office: off the queue
    await store.save(Desk(ticket=tickets[4], assigned=assigned, queue=entry("Q4", 5)))  # recategorised to manual
    store.waiting.reconciled_at = None  # (an hour later) the next refresh reconciles from a full read
    length, oldest = await store.queue_gauges()
    assert (length, oldest) == (await db["desk"].count_documents({"queue": {"$exists": True}}), AT + timedelta(
        hours=2)) == (3, AT + timedelta(hours=2))
    await store.save(Desk(ticket=tickets[3], assigned=assigned, queue=entry("Q3", 2)))  # the same write again
    assert await store.queue_gauges() == await store.queue_stats() == (3, AT + timedelta(hours=2))


async def test_the_list_lives_in_the_kits_policy_store_and_an_old_store_is_adopted(
    db: AsyncDatabase[mongo.Doc], shipped: Listing
) -> None:
    """Issue #20: the list's versions are the kit's versioned policy ``responsibility_list``
    (hotline/policies.py); a store written before (``responsibility_versions``) is copied in with its history."""
    from hotline.policies import PolicyStore
    from services.routing.responsibility import seed
    from services.routing.store import LEGACY_VERSIONS, _to_doc

    first = seed(shipped, "system:routing", AT)
    edited = apply_change(shipped, Change("remove", "并入", rule_id="消费维权-06"), "office:li", AT, UNITS)
    await db[LEGACY_VERSIONS].insert_many([{"_id": v.listing.version, **_to_doc(v)} for v in (first, edited)])
    store = ResponsibilityStore(db)
    assert await store.ensure(shipped, "system:routing", AT + timedelta(days=1)) == edited  # not re-seeded
    assert [(e.version, e.actor) for e in await store.history()] == [(2, "office:li"), (1, "system:routing")]
    stored = await PolicyStore(db, "responsibility_list").load()
    assert stored is not None and (stored.version, stored.actor, stored.reason) == (2, "office:li", "并入")
    assert (await ResponsibilityStore(db).ensure(shipped, "system:routing", AT)) == edited  # copied once
