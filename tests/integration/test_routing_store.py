"""The responsibility list's versions in the real store: current version, history, conflicts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hotline import mongo
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


UNITS = Directory.from_file(DATA_DIR / "directory.json").units


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
