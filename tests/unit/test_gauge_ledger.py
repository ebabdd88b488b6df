"""The SLA gauges' ledger (issue 21): counters kept from the case writes equal a full recount of
the open cases after any sequence of changes, and a reconcile from a full read starts it again."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from services.supervision.cases import gauge_ledger
from services.supervision.cases.gauge_ledger import CaseLedger
from services.supervision.cases.sla_metrics import MAX_CATEGORIES, figures

NOW = datetime(2026, 12, 7, 2, tzinfo=UTC)
STATES = ["CASE_STATE_AWAITING_SIGN_OFF", "CASE_STATE_IN_PROGRESS", "CASE_STATE_PARKED", "CASE_STATE_ARCHIVED"]
UNIT_TYPES = ["UNIT_TYPE_STREET", "UNIT_TYPE_DEPARTMENT", "UNIT_TYPE_ENTERPRISE", None]


def random_doc(rng: random.Random, ticket_id: str) -> dict[str, Any]:
    state = rng.choice(STATES)
    doc: dict[str, Any] = {"_id": ticket_id, "state": state,
                           "category": f"类{rng.randrange(MAX_CATEGORIES + 15)}" if rng.random() < 0.95 else "",
                           "supervision_level": rng.choice([0, 0, 0, 1, 2, 3, 4, None]),
                           "received_at": NOW - timedelta(hours=rng.randrange(-5, 24 * 40))}
    unit = rng.choice(UNIT_TYPES)
    if unit:
        doc["primary_unit"] = {"unit_type": unit, "unit_id": "U"}
    if state != "CASE_STATE_PARKED":  # a parked case runs no clock
        doc["next_deadline"] = NOW + timedelta(minutes=rng.randrange(-3 * 1440, 3 * 1440, 30))
    return doc


def recount(stored: dict[str, dict[str, Any]], now: datetime) -> Any:
    return figures([d for d in stored.values() if d["state"] != "CASE_STATE_ARCHIVED"], now)


def same(a: Any, b: Any) -> bool:
    return (dict(a.overdue), dict(a.due_soon), a.backlog, a.supervised) == \
        (dict(b.overdue), dict(b.due_soon), b.backlog, b.supervised)


def test_the_counters_equal_a_full_recount_after_any_sequence_of_changes() -> None:
    for seed in range(5):
        rng = random.Random(seed)
        ledger, stored = CaseLedger(), {}
        ids = [f"T{i}" for i in range(300)]
        for step in range(3000):
            ticket = rng.choice(ids)
            roll = rng.random()
            if roll < 0.8 or ticket not in stored:  # opened, moved on, archived: the document written
                stored[ticket] = random_doc(rng, ticket)
                ledger.note(stored[ticket])
            elif roll < 0.9:  # the 督办 level set alone ($set of that field)
                level = rng.randrange(5)
                stored[ticket]["supervision_level"] = level
                ledger.note_level(ticket, level)
            else:  # the same write again (a retried command, a replayed opening): counted once
                ledger.note(dict(stored[ticket]))
            if step % 500 == 0:
                assert same(ledger.figures(NOW), recount(stored, NOW)), (seed, step)
        for later in (NOW, NOW + timedelta(hours=7), NOW + timedelta(days=2), NOW - timedelta(days=1)):
            assert same(ledger.figures(later), recount(stored, later))
        open_cases = sum(1 for d in stored.values() if d["state"] != "CASE_STATE_ARCHIVED")
        assert sum(ledger.figures(NOW).backlog.values()) == open_cases == len(ledger.entries)


def test_a_reconcile_from_a_full_read_starts_again_and_keeps_the_writes_made_meanwhile() -> None:
    rng = random.Random(7)
    stored = {f"T{i}": random_doc(rng, f"T{i}") for i in range(200)}
    ledger = CaseLedger()
    ledger.note({**stored["T1"], "category": "drifted"})  # a write of another replica it never saw...
    ledger.note({"_id": "GONE", "state": "CASE_STATE_IN_PROGRESS", "next_deadline": NOW})
    ledger.begin_reconcile()
    read = [dict(d) for d in stored.values() if d["state"] != "CASE_STATE_ARCHIVED"]  # what the full read returns
    stored["T2"] = {**random_doc(rng, "T2"), "state": "CASE_STATE_IN_PROGRESS"}  # a write while it reads
    ledger.note(stored["T2"])
    ledger.reconcile(read)
    assert ledger.reconciled and "GONE" not in ledger.entries
    assert same(ledger.figures(NOW), recount(stored, NOW))


def test_writers_note_only_into_the_ledger_of_their_database() -> None:
    try:
        ledger = gauge_ledger.ledger_for("db-a")
        gauge_ledger.note("db-b", [{"_id": "T1", "state": "CASE_STATE_IN_PROGRESS"}])  # no gauges there: nothing
        gauge_ledger.note("db-a", [{"_id": "T1", "state": "CASE_STATE_IN_PROGRESS", "supervision_level": 1}])
        gauge_ledger.note_level("db-a", "T1", 3)
        assert list(ledger.entries) == ["T1"] and ledger.figures(NOW).supervised["3"] == 1
    finally:
        gauge_ledger.forget("db-a")
