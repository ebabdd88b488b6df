"""The SLA gauges' figures kept incrementally (issue 21): a refresh costs O(changes), not O(open).

Before, every ``sla.gauge_seconds`` the gauges read every open case (``find`` of the cases not
archived): at 1,000,000 open cases that pass costs about a minute of the single store's time
(bench/README.md, ``bench/timers.py``). Now supervision keeps a :class:`CaseLedger`:

* **reconcile**: one full read of the open cases when the service starts (and then every
  ``sla.gauge_reconcile_seconds``, an hour by default, to take in writes of other replicas);
* **note**: every write of a case document in this process hands the ledger the document it
  writes (``CaseStore.insert_new``, ``CaseRepository.save``/``write_ops``) or the level it sets
  (the 督办 store): idempotent, a case's contribution is replaced, so a replayed or retried write
  counts once;
* **figures(now)**: the counts as of ``now`` from sorted lists of deadlines (per unit type and
  category) and arrival times: a few binary searches per label, whatever the number of open cases.

Its figures equal :func:`sla_metrics.figures` over the same documents (tests/unit/test_gauge_ledger.py).
The ledger holds a small tuple per open case (about 200 bytes): 20 MB at 100,000 open cases.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right, insort
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hotline.clock import Clock
from hotline.mongo import Doc
from services.supervision.cases import sla_metrics as m

ARCHIVED = "CASE_STATE_ARCHIVED"


@dataclass(frozen=True, slots=True)
class Entry:
    unit_type: str
    category: str
    due: datetime | None
    received: datetime | None
    level: str


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _is_open(doc: Mapping[str, Any]) -> bool:
    return doc.get("state") != ARCHIVED


def entry_of(doc: Mapping[str, Any]) -> Entry:
    return Entry(m.unit_type(doc), str(doc.get("category") or ""), _aware(doc.get("next_deadline")),
                 _aware(doc.get("received_at")), str(int(doc.get("supervision_level") or 0)))


class CaseLedger:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.due: dict[tuple[str, str], list[datetime]] = {}  # sorted deadlines per (unit type, category)
        self.received: list[datetime] = []  # sorted arrival times of the open cases
        self.categories: Tally[str] = Tally()
        self.levels: Tally[str] = Tally()
        self.reconciled = False
        self.changes = 0  # notes since the last reconcile (the work a refresh no longer does by scanning)
        self._during: list[tuple[str, Any]] | None = None  # notes while a reconcile's read is under way

    # --- changes --------------------------------------------------------------------------------

    def begin_reconcile(self) -> None:
        """A full read starts: the notes from now on are applied again over what it returns (the
        read may have seen a case before a write noted meanwhile)."""
        self._during = []

    def reconcile(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Start again from a full read of the open cases (``_id`` and ``sla_metrics.FIELDS``)."""
        during = self._during or []
        self.__init__()  # type: ignore[misc]
        for doc in docs:
            self._add(str(doc["_id"]), entry_of(doc))
        for kind, change in during:
            self.note(change) if kind == "doc" else self.note_level(*change)
        self.changes = 0
        self.reconciled = True

    def note(self, doc: Mapping[str, Any]) -> None:
        """A case document as just written (the whole document, or at least ``_id``, ``state`` and
        the gauges' fields): replaces the case's contribution; an archived case leaves the counts."""
        ticket_id = str(doc["_id"])
        self.changes += 1
        if self._during is not None:
            self._during.append(("doc", doc))
        self._remove(ticket_id)
        if _is_open(doc):
            self._add(ticket_id, entry_of(doc))

    def note_level(self, ticket_id: str, level: int) -> None:
        """The 督办 level of a case set by an ``$set`` of that field alone."""
        old = self.entries.get(ticket_id)
        self.changes += 1
        if self._during is not None:
            self._during.append(("level", (ticket_id, level)))
        if old is not None:
            self._remove(ticket_id)
            self._add(ticket_id, Entry(old.unit_type, old.category, old.due, old.received, str(int(level or 0))))

    def _add(self, ticket_id: str, e: Entry) -> None:
        self.entries[ticket_id] = e
        self.categories[e.category] += 1
        self.levels[e.level] += 1
        if e.due is not None:
            insort(self.due.setdefault((e.unit_type, e.category), []), e.due)
        if e.received is not None:
            insort(self.received, e.received)

    def _remove(self, ticket_id: str) -> None:
        e = self.entries.pop(ticket_id, None)
        if e is None:
            return
        _drop(self.categories, e.category)
        _drop(self.levels, e.level)
        if e.due is not None:
            key = (e.unit_type, e.category)
            _discard(self.due[key], e.due)
            if not self.due[key]:
                del self.due[key]
        if e.received is not None:
            _discard(self.received, e.received)

    # --- figures --------------------------------------------------------------------------------

    def figures(self, now: datetime, horizon: timedelta = timedelta(hours=24),
                waiting_since: Iterable[datetime] = ()) -> m.Figures:
        """What :func:`sla_metrics.figures` counts over the open cases, from the counters."""
        kept = m.kept_categories(self.categories)
        out = m.Figures()
        for (kind, category), dues in self.due.items():
            key = (kind, category if category in kept else m.OTHER)
            overdue = bisect_right(dues, now)
            soon = bisect_right(dues, now + horizon) - overdue
            if overdue:
                out.overdue[key] += overdue
            if soon:
                out.due_soon[key] += soon
        younger = 0  # open cases younger than the previous band's bound
        for band, bound in m.AGE_BANDS:
            below = len(self.received) if bound is None else len(self.received) - bisect_right(self.received,
                                                                                                now - bound)
            out.backlog[band] = below - younger
            younger = below
        for level in m.LEVELS:
            out.supervised[level] = self.levels.get(level, 0)
        since = list(waiting_since)
        out.waiting = len(since)
        out.waiting_oldest_seconds = max(((now - at).total_seconds() for at in since), default=0.0)
        return out


def _drop(tally: Tally[str], key: str) -> None:
    tally[key] -= 1
    if tally[key] <= 0:
        del tally[key]


def _discard(values: list[datetime], value: datetime) -> None:
    i = bisect_right(values, value) - 1
    if i >= 0 and values[i] == value:
        del values[i]


# --- the ledger of each database this process writes cases to -----------------------------------

_LEDGERS: dict[str, CaseLedger] = {}


def ledger_for(db_name: str) -> CaseLedger:
    """The ledger of a database's cases (created by the SLA gauges; the writers note into it)."""
    return _LEDGERS.setdefault(db_name, CaseLedger())


def note(db_name: str, docs: Iterable[Mapping[str, Any]]) -> None:
    """Hand the written case documents to the database's ledger, if its gauges keep one."""
    ledger = _LEDGERS.get(db_name)
    if ledger is not None:
        for doc in docs:
            ledger.note(doc)


def note_level(db_name: str, ticket_id: str, level: int) -> None:
    ledger = _LEDGERS.get(db_name)
    if ledger is not None:
        ledger.note_level(ticket_id, level)


def forget(db_name: str) -> None:
    _LEDGERS.pop(db_name, None)


class SlaGauges:
    def __init__(self, cases: Any, inbox: Any, clock: Clock, reconcile_seconds: float | None = 3600.0) -> None:
        """``cases`` and ``inbox``: the AsyncCollections. With ``reconcile_seconds`` (None: scan at
        every refresh, as before issue 21) the figures come from the database's ledger, which the
        case writers of this process keep current, read in full at the first refresh and then
        every ``reconcile_seconds``."""
        self.cases = cases
        self.inbox = inbox
        self.clock = clock
        self.reconcile_seconds = reconcile_seconds
        self.ledger = ledger_for(cases.database.name) if reconcile_seconds is not None else None
        self.reconciled_at: datetime | None = None
        self.scans = 0  # full reads of the open cases
        m.publish(m.Figures())  # every band and level at zero from the start

    async def refresh(self) -> m.Figures:
        now = self.clock.now()
        waiting: list[Doc] = await self.inbox.find({}, {"_id": 0, "evaluated_at": 1}).to_list()
        since = [d["evaluated_at"] for d in waiting if isinstance(d.get("evaluated_at"), datetime)]  # (tz-aware)
        if self.ledger is None:
            self.scans += 1
            result = m.figures(await self.cases.find(m.OPEN, m.FIELDS).to_list(), now, waiting_since=since)
        else:
            assert self.reconcile_seconds is not None
            if self.reconciled_at is None or now - self.reconciled_at >= timedelta(seconds=self.reconcile_seconds):
                await self.reconcile()
                self.reconciled_at = now
            result = self.ledger.figures(now, waiting_since=since)
        m.publish(result)
        return result

    async def reconcile(self) -> None:
        """The ledger from one pass over the open cases (start, then every ``reconcile_seconds``)."""
        assert self.ledger is not None
        self.scans += 1
        self.ledger.begin_reconcile()
        self.ledger.reconcile(await self.cases.find(m.OPEN, {**m.FIELDS, "_id": 1}).to_list())

    async def run_forever(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # store away: try again at the next interval
                m.log.warning("SLA gauges not refreshed", error=repr(exc))
            await asyncio.sleep(interval_seconds)
