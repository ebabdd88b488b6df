"""A simulated week of deadlines with supervision restarted twice (SIGKILL, then SIGTERM):
no timer is lost or repeated, downtime is caught up, and every overdue case goes to system
supervision (level 1) exactly once.

Supervision runs as a process on the accelerated clock (HOTLINE_CLOCK__*: a simulated week
in about 50 real seconds); assignments are published straight to its topic, as routing would."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline import pb
from hotline.clock import SimulatedClock
from hotline.envelope import Event
from hotline.kafka import producer as kafka_producer
from hotline.kafka import publish
from hotline.settings import Settings
from hotline.v1 import deadlines_pb2, events_pb2, ticket_pb2
from hotline_dev.launcher import ServiceProcess
from tests.e2e.test_pipeline import cases_of as get_cases
from tests.support import accelerated_supervision, eventually, read_topic

pytestmark = pytest.mark.e2e

SPEED = 12_000  # simulated seconds per real second: 8 days in ~58 s
SIM_START = datetime(2026, 12, 6, 16, 0, tzinfo=UTC)  # Monday 2026-12-07 00:00 in Shanghai
CLOCKS = ("sign_off", "contact", "reply")


@pytest.fixture(scope="module")
def simulated(test_env: dict[str, str], topics: list[str], log_dir: Path,
              ) -> Iterator[tuple[ServiceProcess, SimulatedClock, Settings]]:
    """Supervision on the accelerated clock, with a database of its own: cases other modules
    opened on the real clock would all be overdue in simulated December (dropped with the session)."""
    with accelerated_supervision(test_env, log_dir, "sim", SIM_START, SPEED) as running:
        yield running


def assignment(ticket_id: str, at: datetime, urgency: int, tags: list[str]) -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(
            ticket_id=ticket_id, primary_unit=events_pb2.Unit(unit_id="ST05", name="瑞金路街道",
                                                              unit_type=events_pb2.UNIT_TYPE_STREET),
            category="物业管理", method="city_category", dispatch_round=1, assigned_at=pb.ts(at)),
        ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, urgency=urgency, received_at=pb.ts(at), tags=tags)


async def until(clock: SimulatedClock, when: datetime) -> None:
    await asyncio.sleep(max(0.0, clock.real_seconds(when - clock.now())))


async def pending_timers(settings: Settings, ids: list[str]) -> int:
    """Cases that still have a clock running (the clocks live in the case documents)."""
    from hotline import mongo

    client = mongo.client(settings)
    try:
        db = mongo.database(client, settings, "supervision")
        return await db["cases"].count_documents({"_id": {"$in": ids}, "timers": {"$exists": True}})
    finally:
        await client.close()


async def test_a_simulated_week_with_restarts_loses_and_repeats_no_timer(
    simulated: tuple[ServiceProcess, SimulatedClock, Settings],
) -> None:
    supervision, clock, settings = simulated
    tag = uuid.uuid4().hex[:6]
    assigned_at = clock.now() + timedelta(hours=12)  # ahead of the consumer's start-up, so every warning is due
    kinds = [("normal", ticket_pb2.URGENCY_NORMAL, []), ("urgent", ticket_pb2.URGENCY_URGENT, []),
             ("enterprise", ticket_pb2.URGENCY_NORMAL, ["涉企"])]
    tickets = {f"TR-{tag}-{kind}-{i}": assignment(f"TR-{tag}-{kind}-{i}", assigned_at, urgency, tags)
               for kind, urgency, tags in kinds for i in range(4)}
    ids = sorted(tickets)
    producer = kafka_producer(settings)
    await producer.start()
    try:
        await publish(producer, [Event(settings.topics.name("assignment_events"), tid, a, f"{tid}/assigned/1")
                                 for tid, a in tickets.items()], "test")
    finally:
        await producer.stop()
    opened = await eventually(lambda: get_cases(settings, ids), lambda found: len(found) == len(ids), timeout=60)
    last_due = max(pb.dt(c.reply_due) for c in opened.values())
    assert last_due - assigned_at > timedelta(days=4)  # the normal cases' reply runs through the simulated week

    # 20 simulated hours in: the urgent and enterprise sign-offs have fired, the normal ones are due soon
    await until(clock, assigned_at + timedelta(hours=20))
    supervision.kill()  # SIGKILL: no goodbye
    await asyncio.sleep(10)  # ~33 simulated hours of downtime: the normal sign-offs and contacts fall due
    supervision.start()
    await asyncio.to_thread(supervision.wait_ready, 90)
    await until(clock, assigned_at + timedelta(hours=80))
    supervision.stop()  # SIGTERM, and straight back
    supervision.start()
    await asyncio.to_thread(supervision.wait_ready, 90)

    if clock.now() < last_due - timedelta(hours=6):
        assert await pending_timers(settings, ids) > 0  # the normal cases' replies are still running
    await until(clock, last_due)
    await eventually(lambda: pending_timers(settings, ids), lambda n: n == 0, timeout=60)
    cases = await eventually(lambda: get_cases(settings, ids),
                             lambda found: all(c.supervision_level == 1 for c in found.values()), timeout=30)

    records = await read_topic(settings, settings.topics.name("case_events"), expect=None, timeout=5)
    stages: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    raised: dict[str, set[str]] = defaultdict(set)
    levels: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    messages: dict[str, Any] = {}
    for r in records:
        tid = r.key.decode()
        if tid not in tickets:
            continue
        headers = {k: v.decode() for k, v in r.headers}
        event_type, event_id = headers["event_type"], headers["event_id"]
        if event_type in ("hotline.v1.DeadlineDueSoon", "hotline.v1.DeadlineMissed"):
            message = (deadlines_pb2.DeadlineDueSoon if event_type.endswith("DueSoon")
                       else deadlines_pb2.DeadlineMissed).FromString(r.value)
            d = message.deadline
            clock_name = deadlines_pb2.DeadlineClock.Name(d.clock).removeprefix("DEADLINE_CLOCK_").lower()
            stage = "due_soon" if event_type.endswith("DueSoon") else "due"
            messages[event_id] = message
            if clock_name not in CLOCKS:  # the level-1 督办's own limit (issue #22): a clock of its own
                levels[(tid, clock_name, stage)].add(event_id)
                continue
            stages[(tid, clock_name, stage)].add(event_id)
        elif event_type == "hotline.v1.OverdueSupervisionRaised":
            raised[tid].add(event_id)
            messages[event_id] = deadlines_pb2.OverdueSupervisionRaised.FromString(r.value)

    expected = set()
    for tid, case in cases.items():
        for name in CLOCKS:
            due = pb.dt(getattr(case, f"{name}_due"))
            expected.add((tid, name, "due"))
            if due > pb.dt(case.opened_at):
                expected.add((tid, name, "due_soon"))
    assert set(stages) == expected, "every scheduled stage fired, none other"
    assert {clock for _, clock, _ in levels} <= {"supervision"}
    repeated = {k: v for k, v in {**stages, **levels}.items() if len(v) != 1}
    assert not repeated, f"stages fired more than once: {repeated}"
    lateness = []
    for (_, _, stage), (event_id,) in stages.items():
        d = messages[event_id].deadline
        if stage == "due":
            assert pb.dt(d.fired_at) >= pb.dt(d.due_at), "never before it is due"
            lateness.append(pb.dt(d.fired_at) - pb.dt(d.due_at))
    assert sum(1 for _, _, stage in stages if stage == "due_soon") >= 2 * len(ids)
    assert max(lateness) > timedelta(hours=8), "downtime was caught up (a deadline fired well after it was due)"
    assert {tid: len(v) for tid, v in raised.items()} == dict.fromkeys(ids, 1), "level 1 raised once per case"
    for event_ids in raised.values():
        (event_id,) = event_ids
        assert messages[event_id].level == 1
        assert messages[event_id].reason.startswith("deadline_missed:")
    assert all(c.supervision_level == 1 for c in cases.values())
