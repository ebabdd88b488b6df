"""Retention of personal data in every store (issue #19), beyond intake's tickets
(services/intake/retention.py): each service names the collections of its own database that
hold a caller's or citizen's contact, and this job erases those fields once past the period
(the district's policy, hotline/data/retention.json: 180 days; setting
``privacy.retention_days`` overrides it). The records themselves, and every figure, are kept.

| store                                   | personal fields erased            | after        |
|-----------------------------------------|-----------------------------------|--------------|
| intake ``tickets``                      | caller name, phone (+ masks text) | intake's job |
| deputy_liaison ``submissions``          | ``citizen`` (name, phone)         | this job     |
| every service's ``audit``               | contact in before/after snapshots | this job     |
|                                         | (none written since issue #19)    |              |
| Kafka topics (tickets, submissions,     | whole records                     | topic        |
| dead letters, notifications...)         |                                   | retention.ms |
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from hotline import audit
from hotline.clock import Clock
from hotline.logging import get_logger
from hotline.mongo import Doc

log = get_logger(__name__)
POLICY_FILE = Path(__file__).resolve().parent / "data" / "retention.json"  # the district's period, every service's


@dataclass(frozen=True)
class RetentionPolicy:
    version: str
    days: int


def policy(days_setting: int = 0, path: Path = POLICY_FILE) -> RetentionPolicy:
    """The period in force: the setting when given (> 0), else the district's policy file (shared by intake's
    tickets and the other stores' personal fields, so one period holds everywhere)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if days_setting > 0:
        return RetentionPolicy(f"setting:{days_setting}d", days_setting)
    return RetentionPolicy(str(data["version"]), int(data["caller_contact_days"]))
AUDIT_CONTACT = tuple(f"{side}.{key}" for side in ("before", "after")
                      for key in ("caller", "citizen", "caller_name", "caller_phone", "phone"))


@dataclass(frozen=True)
class Scrub:
    collection: str
    time_field: str  # when the record was made: the period runs from it
    fields: Sequence[str]  # dotted paths erased once past the period


def audit_scrub() -> Scrub:
    return Scrub(audit.COLLECTION, "at", AUDIT_CONTACT)


class StoreRetention:
    def __init__(self, service: str, db: AsyncDatabase[Doc], clock: Clock, days: int, version: str,
                 scrubs: Sequence[Scrub], interval_seconds: float = 3600) -> None:
        self.service, self.db, self.clock, self.days, self.version = service, db, clock, days, version
        self.scrubs, self.interval = scrubs, interval_seconds

    async def run_once(self) -> dict[str, int]:
        """Erase the personal fields of every record past the period; returns counts by collection."""
        now = self.clock.now()
        before = now - timedelta(days=self.days)
        counts: dict[str, int] = {}
        for scrub in self.scrubs:
            wanted: dict[str, Any] = {scrub.time_field: {"$lt": before},
                                      "$or": [{f: {"$exists": True}} for f in scrub.fields]}
            result = await self.db[scrub.collection].update_many(
                wanted, {"$unset": {f: "" for f in scrub.fields}, "$set": {"personal_data_erased_at": now}})
            if result.modified_count:
                counts[scrub.collection] = result.modified_count
        if counts:
            await audit.record(self.db, [audit.entry(
                at=now, actor=audit.system_actor(self.service), action="erase_personal_data", kind="retention",
                target_id=f"retention/{now.isoformat()}",
                reason=f"个人信息保存期限届满（{self.days}日，{self.version}）：早于 {before.isoformat()} 的记录，"
                       "群众姓名、电话已删除",
                after={"counts": counts, "cutoff": before, "policy": self.version})])
            log.info("personal data erased", counts=counts, cutoff=before.isoformat(), policy=self.version)
        return counts

    async def forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store away: the next round catches up
                log.warning("retention round failed", error=repr(exc))
            await asyncio.sleep(self.interval)
