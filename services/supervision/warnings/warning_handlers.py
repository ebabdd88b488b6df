"""Supervision's early-warning consumer: intake's TicketReceived events -> facts -> the pure
detectors (services/supervision/warnings/warnings.py) with the history kept in memory
(fact_window.py: read from the store once, then this process's facts and the other live
processes' as they store them) -> stored warnings and WarningRaised events on
hotline.warnings.v1 (keyed by warning id; the ids are deterministic, so a replay stores nothing
twice and republishes the same event ids)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from hotline import observability as obs
from hotline.envelope import Event, EventTypes, Record
from hotline.v1 import events_pb2, warnings_pb2
from services.supervision.warnings import warnings as w
from services.supervision.warnings.fact_window import FactWindow
from services.supervision.warnings.warning_store import WarningStore

RAISED = Counter("hotline_warnings_raised_total", "Early warnings (预警) raised, by kind and level.",
                 ["kind", "level"])


class WarningInbox:
    def __init__(self, store: WarningStore, rules: w.Rules, street_of: Callable[[str], str], out_topic: str,
                 newest: Callable[[], Awaitable[w.Rules]] | None = None) -> None:
        self.store = store
        self.rules = rules
        self.newest = newest  # the newest stored version of the rules (warning_policy.live), read per batch
        self.street_of = street_of
        self.out_topic = out_topic
        self.types = EventTypes(events_pb2.TicketReceived)
        self.window = FactWindow()
        obs.at_zero(RAISED, w.KINDS, w.LEVELS)

    def decode(self, record: Record) -> events_pb2.TicketReceived:
        message = self.types.decode(record)
        assert isinstance(message, events_pb2.TicketReceived)
        return message

    async def apply(self, items: list[tuple[Record, events_pb2.TicketReceived]]) -> list[Event]:
        if self.newest is not None:
            self.rules = await self.newest()
        facts = [w.fact_of(m.ticket, self.rules, self.street_of) for _, m in items]
        seen_before = await self.store.remember(facts)
        fresh = [f for f in facts if f.ticket_id not in seen_before]
        histories = await self._histories(fresh)
        events: list[Event] = []
        raised: list[warnings_pb2.EarlyWarning] = []
        for (record, _), fact in zip(items, facts, strict=True):
            if fact.ticket_id in seen_before:
                # assessed when first consumed: later tickets now in the store must not change a
                # replay's outcome (a replay raises nothing new)
                continue
            found = w.assess(fact, histories[fact.ticket_id], self.rules)
            raised += found
            for warning in found:
                RAISED.labels(warning.kind, warning.level).inc()
                events.append(Event(topic=self.out_topic, key=warning.warning_id,
                                    message=warnings_pb2.WarningRaised(warning=warning),
                                    event_id=f"warning/{warning.warning_id}", correlation_id=record.correlation_id))
        await self.store.save(raised)  # the batch's warnings in one insert
        return events

    async def _histories(self, facts: list[w.Fact]) -> dict[str, w.History]:
        """Each fact's history from the window in memory: what other processes stored since the
        last batch read first (one query each, none when this process is the only writer), the
        span the batch looks back on read from the store when the window does not cover it (the
        first batch, a late ticket), the batch's own facts added (the store held them too when
        the history was read from it). ``assess`` keeps of a history only the facts before its
        own within each detector's window."""
        window = self.window
        window.add(await self.store.by_others())
        if not facts:
            return {}
        first = min(f.at for f in facts)
        gap = window.missing(first - w.horizon(self.rules), first - timedelta(hours=self.rules.mass["window_hours"]))
        if gap is not None:
            began = datetime.now(UTC)
            loaded = await self.store.between(*gap)
            if window.low is None:  # the first read: the oldest fact ever stored is the baseline's start
                oldest = await self.store.since()
                if oldest is not None:
                    window.since = oldest if window.since is None else min(window.since, oldest)
            window.filled(gap[0], loaded)
            self.store.looking_from(began)
        window.add(facts)
        found = {f.ticket_id: window.history(f) for f in facts}
        window.prune(w.horizon(self.rules), timedelta(hours=self.rules.mass["window_hours"]))
        return found
