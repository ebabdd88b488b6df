"""Retention of personal data (个人信息保存期限): callers' names and phone numbers are
anonymised once a ticket is older than the period (setting ``privacy.retention_days``; 0 takes
the district's policy, ``hotline/data/retention.json``: 180 days from receipt). The ticket itself, its
case and every figure are kept; the repeat index already keys on an HMAC, never on a number.

A background job of intake, on the injected clock (``rt.clock``): every
``privacy.retention_interval_seconds`` it anonymises the tickets received before the cutoff, in
batches, each batch in one store transaction with one audit entry (留痕) naming the tickets.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from datetime import datetime, timedelta

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from hotline import audit, pb, privacy
from hotline.clock import Clock
from hotline.logging import get_logger
from hotline.mongo import Doc
from hotline.retention import POLICY_FILE as POLICY_FILE  # the district's period: the kit's, shared with deputy liaison
from hotline.retention import RetentionPolicy as RetentionPolicy
from hotline.retention import policy as policy
from hotline.v1 import ticket_pb2
from services.intake.store import TicketStore

log = get_logger(__name__)


def cutoff(now: datetime, days: int) -> datetime:
    """Tickets received before this instant are past the period."""
    return now - timedelta(days=days)


def anonymised(ticket: ticket_pb2.Ticket) -> ticket_pb2.Ticket:
    """The ticket without the caller's name and phone; phone numbers written in its text are
    masked too. Everything figures are made of (type, category, times, units, flags) stays."""
    out = ticket_pb2.Ticket()
    out.CopyFrom(ticket)
    out.caller.ClearField("name")
    out.caller.ClearField("phone")
    out.title = privacy.mask_text(ticket.title)
    out.content = privacy.mask_text(ticket.content)
    out.address = privacy.mask_text(ticket.address)
    return out


class Retention:
    def __init__(self, store: TicketStore, client: AsyncMongoClient[Doc], clock: Clock, rule: RetentionPolicy,
                 interval_seconds: float = 3600, batch: int = 500) -> None:
        self.store, self.client, self.clock, self.rule = store, client, clock, rule
        self.interval, self.batch = interval_seconds, batch

    async def run_once(self) -> int:
        """Anonymise every ticket past the period not anonymised yet; returns how many."""
        now = self.clock.now()
        before = cutoff(now, self.rule.days)
        done = 0
        while True:
            docs = await self.store.tickets.find(
                {"received_at": {"$lt": before}, "anonymised_at": {"$exists": False}}).limit(self.batch).to_list()
            if not docs:
                return done
            async with self.client.start_session() as session:
                await session.with_transaction(functools.partial(self._anonymise, docs, now, before))
            done += len(docs)
            log.info("personal data anonymised", tickets=len(docs), cutoff=before.isoformat(),
                     policy=self.rule.version)

    async def _anonymise(self, docs: list[Doc], now: datetime, before: datetime,
                         session: AsyncClientSession) -> None:
        updates = []
        for doc in docs:
            t = anonymised(pb.from_doc(doc, ticket_pb2.Ticket))
            fields = {k: v for k, v in pb.to_doc(t).items() if k in ("caller", "title", "content", "address")}
            updates.append(UpdateOne({"_id": doc["_id"]}, {
                "$set": {**fields, "anonymised_at": now},
                "$unset": {k: "" for k in ("caller", "title", "content", "address") if k not in fields}}))
        await self.store.tickets.bulk_write(updates, ordered=False, session=session)
        ids = sorted(str(d["_id"]) for d in docs)
        digest = hashlib.sha256("|".join(ids).encode()).hexdigest()[:24]
        await audit.record(self.store.db, [audit.entry(
            at=now, actor=audit.system_actor("intake"), action="anonymise", kind="ticket_batch",
            target_id=f"retention/{digest}", entry_id=f"retention/{digest}",
            reason=f"个人信息保存期限届满（{self.rule.days}日，{self.rule.version}）："
                   f"受理早于 {before.isoformat()} 的工单，诉求人姓名、电话已匿名化",
            after={"tickets": ids, "count": len(ids), "cutoff": before, "policy": self.rule.version},
        )], session)

    async def forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store away: the next round catches up
                log.warning("retention round failed", error=repr(exc))
            await asyncio.sleep(self.interval)
