"""Issue #19: retention covers every store that holds personal data (deputy submissions, audit
snapshots), and the topics the platform creates carry a bounded retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hotline import audit, kafka
from hotline.clock import ManualClock
from hotline.retention import Scrub, StoreRetention, audit_scrub
from hotline.settings import Settings
from hotline.topics import aensure_topics

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def test_submissions_and_audit_snapshots_lose_contact_past_the_period(scratch_db: Any) -> None:
    old, recent = NOW - timedelta(days=200), NOW - timedelta(days=10)
    citizen = {"name": "张三", "phone": "13812345678"}
    await scratch_db.submissions.insert_many([
        {"_id": "S-old", "submitted_at": old, "title": "路灯不亮", "citizen": citizen},
        {"_id": "S-new", "submitted_at": recent, "title": "噪音", "citizen": citizen}])
    await scratch_db[audit.COLLECTION].insert_many([
        {"_id": "A-old", "at": old, "action": "received", "before": None, "after": {"caller": citizen, "title": "x"}},
        {"_id": "A-new", "at": recent, "action": "received", "after": {"caller": citizen}}])
    job = StoreRetention("deputy_liaison", scratch_db, ManualClock(NOW), 180, "2026-01",
                         [Scrub("submissions", "submitted_at", ("citizen",)), audit_scrub()])
    assert await job.run_once() == {"submissions": 1, audit.COLLECTION: 1}
    assert "citizen" not in await scratch_db.submissions.find_one({"_id": "S-old"})
    assert (await scratch_db.submissions.find_one({"_id": "S-old"}))["title"] == "路灯不亮"  # the record stays
    assert (await scratch_db.submissions.find_one({"_id": "S-new"}))["citizen"] == citizen  # within the period
    assert (await scratch_db[audit.COLLECTION].find_one({"_id": "A-old"}))["after"] == {"title": "x"}
    assert (await scratch_db[audit.COLLECTION].find_one({"_id": "A-new"}))["after"]["caller"] == citizen
    trail = await scratch_db[audit.COLLECTION].find_one({"action": "erase_personal_data"})
    assert trail["after"]["counts"] == {"submissions": 1, audit.COLLECTION: 1}
    assert await job.run_once() == {}  # nothing left to erase


def test_new_audit_snapshots_keep_no_contact() -> None:
    entry = audit.entry(at=NOW, actor=audit.system_actor("t"), action="a", kind="k", target_id="T",
                        before={"caller": {"name": "张三", "phone": "13812345678"}, "state": "X"},
                        after={"citizen": {"phone": "13812345678"}, "nested": {"caller_phone": "1", "ok": 1}})
    assert entry["before"] == {"state": "X"} and entry["after"] == {"nested": {"ok": 1}}


async def test_topics_are_created_with_a_bounded_retention(settings: Settings) -> None:
    s = settings.model_copy(update={"topics": settings.topics.model_copy(
        update={"prefix": settings.topics.prefix + "ret."})})
    names = [s.topics.name("city_tickets"), s.topics.name("dead_letters")]
    await aensure_topics(s, names)
    admin = kafka.admin(s)
    await admin.start()
    try:
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        answer = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        found: dict[str, str] = {}
        for response in answer:
            for resource in response.resources:
                for config in resource[4]:
                    if config[0] == "retention.ms":
                        found[resource[3]] = config[1]
        assert found == {names[0]: str(168 * 3_600_000), names[1]: str(72 * 3_600_000)}
    finally:
        await admin.delete_topics(names)
        await admin.close()
