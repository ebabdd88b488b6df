"""The early warnings' recent facts in memory (issue #21): the detectors' history served from the
process instead of one store query per street x category of every batch.

The window holds every stored fact received at or after ``low`` (by ticket time), indexed by
place (street, category), caller and address. It is filled from the store the first time a batch
needs it (one ``find`` by time range) and extended downwards the same way when a late ticket
needs an older span; the process's own facts are added as it stores them; facts other processes
stored (another replica, a restart's predecessor still draining) are read once per batch by their
storage stamp (``stored_at``, ``by`` another process: one indexed ``find`` that returns nothing
when this process is the only writer). Facts older than the detectors' horizon behind the newest
are dropped, and their texts (only the mass-incident detector reads them, within hours) are
dropped past ``text_keep`` behind the newest and read again if a late ticket needs them.

``assess`` sees the same facts as when they were read from the store: every stored fact of the
places, callers and addresses of the batch within the span it asks for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta

from services.supervision.warnings import warnings as w

MARGIN = timedelta(days=1)  # kept beyond the horizon, so tickets a little late need no reload
PRUNE_EVERY = timedelta(hours=1)  # of the newest fact's advance


@dataclasses.dataclass
class FactWindow:
    facts: dict[str, w.Fact] = dataclasses.field(default_factory=dict)
    place: dict[tuple[str, str], dict[str, w.Fact]] = dataclasses.field(default_factory=dict)
    caller: dict[str, dict[str, w.Fact]] = dataclasses.field(default_factory=dict)
    address: dict[str, dict[str, w.Fact]] = dataclasses.field(default_factory=dict)
    low: datetime | None = None  # every stored fact at or after it is here
    text_low: datetime | None = None  # and with its text at or after this
    since: datetime | None = None  # the oldest fact stored (History.observed_since)
    newest: datetime | None = None
    pruned_at: datetime | None = None

    def add(self, facts: Iterable[w.Fact]) -> None:
        """Facts stored (by this process or read back from the store); those before ``low`` are
        not kept, those before ``text_low`` without their text."""
        for fact in facts:
            if self.since is None or fact.at < self.since:
                self.since = fact.at
            if self.low is not None and fact.at < self.low:
                continue
            if self.text_low is not None and fact.at < self.text_low and fact.text:
                fact = dataclasses.replace(fact, text="")
            self.facts[fact.ticket_id] = fact
            self.place.setdefault((fact.street, fact.category), {})[fact.ticket_id] = fact
            if fact.caller_key:
                self.caller.setdefault(fact.caller_key, {})[fact.ticket_id] = fact
            if fact.address:
                self.address.setdefault(fact.address, {})[fact.ticket_id] = fact
            if self.newest is None or fact.at > self.newest:
                self.newest = fact.at

    def missing(self, start: datetime, text_start: datetime) -> tuple[datetime, datetime | None] | None:
        """The span [from, to) to read from the store so that every fact from ``start`` and every
        text from ``text_start`` is here (``to`` None: up to now); None when nothing is missing."""
        if self.low is None:
            return (min(start, text_start), None)
        if start < self.low:
            return (min(start, text_start), self.text_low or self.low)
        if self.text_low is not None and text_start < self.text_low:
            return (text_start, self.text_low)
        return None

    def filled(self, start: datetime, facts: Iterable[w.Fact]) -> None:
        """The store's facts from ``start`` (a span ``missing`` asked for) read: every one from there."""
        self.low = start if self.low is None else min(self.low, start)
        self.text_low = start if self.text_low is None else min(self.text_low, start)
        self.add(facts)

    def history(self, fact: w.Fact) -> w.History:
        return w.History(list(self.place.get((fact.street, fact.category), {}).values()),
                         list(self.caller.get(fact.caller_key, {}).values()) if fact.caller_key else [],
                         list(self.address.get(fact.address, {}).values()) if fact.address else [], self.since)

    def prune(self, keep: timedelta, text_keep: timedelta) -> None:
        """Drop the facts older than ``keep`` (+ a day) behind the newest, and the texts older than
        ``text_keep`` (+ a day); at most once per hour of the newest fact's advance."""
        if self.newest is None or self.low is None or self.text_low is None:
            return
        if self.pruned_at is not None and self.newest - self.pruned_at < PRUNE_EVERY:
            return
        self.pruned_at = self.newest
        low = max(self.low, self.newest - keep - MARGIN)
        text_low = max(self.text_low, low, self.newest - text_keep - MARGIN)
        if low == self.low and text_low == self.text_low:
            return
        self.low, self.text_low = low, text_low
        kept = [f for f in self.facts.values() if f.at >= low]
        self.facts, self.place, self.caller, self.address = {}, {}, {}, {}
        self.add(kept)
