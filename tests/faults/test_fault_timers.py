"""Timers under faults: the platform on an accelerated clock (a simulated day in ~36 real
seconds), tickets flowing, half of them played through straight lifecycles and half left
unsigned (no unit signs for them, so their sign-off clocks go overdue), while the store and then
supervision (the timers' owner) are SIGKILLed and restarted (``make faults`` kills the broker
first too). A separate scenario from tests/faults/test_faults.py, whose exact case-event counts
assume the real clock.

Afterwards, on the case topic: every deadline event (DeadlineDueSoon, DeadlineMissed,
OverdueSupervisionRaised) appears at most once per (ticket, clock, dispatch round, kind) — counted
by distinct event ids, so a record republished by an outbox (same id) is one event and a timer
fired twice (two ids) is a duplicate — and each event id names one logical key. Every unsigned
ticket's sign-off was missed, and every case with a missed deadline has exactly one level-1
OverdueSupervisionRaised and exactly one level-1 record in its supervision (EscalationService
GetSupervision): also a played case closed before supervision's follow-ups (in process, from its
outbox) applied its OverdueSupervisionRaised (the record of an automatic raise is written on a
closed case too).
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from datetime import UTC, datetime

import pytest

from hotline.clock import from_settings
from hotline.settings import Settings
from hotline.v1 import deadlines_pb2, supervision_pb2, supervision_pb2_grpc
from hotline_dev.launcher import ServiceProcess
from hotline_dev.lifecycle_sim import Path, Player
from hotline_dev.simulator import generate
from tests.e2e.test_pipeline import drained
from tests.faults.test_faults import _restart
from tests.support import channel, eventually, publish_tickets, read_topic

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

FULL = os.environ.get("HOTLINE_FAULTS", "") == "all"
SPEED = 2400  # simulated seconds per real second: the 24-hour sign-off limit in 36 s
KILLS = ((("infra", "kafka"),) if FULL else ()) + (("infra", "store"), ("service", "supervision"))
N = int(os.environ.get("HOTLINE_FAULTS_TIMER_TICKETS", "40" if FULL else "16"))
DEADLINE_TYPES = {"hotline.v1.DeadlineDueSoon": deadlines_pb2.DeadlineDueSoon,
                  "hotline.v1.DeadlineMissed": deadlines_pb2.DeadlineMissed}
RAISED = "hotline.v1.OverdueSupervisionRaised"


@pytest.fixture(scope="module")
def platform_env() -> dict[str, str]:
    """Every service on one accelerated timeline, starting now (restarted ones rejoin it). The
    tickets are stamped in simulated time, ahead of their real Kafka timestamps: intake's
    clock-skew tolerance covers the simulated run (a week)."""
    now = datetime.now(UTC).isoformat()
    return {"HOTLINE_CLOCK__START": now, "HOTLINE_CLOCK__REAL_START": now, "HOTLINE_CLOCK__SPEED": str(SPEED),
            "HOTLINE_SLA__SCAN_SECONDS": "0.5", "HOTLINE_INTAKE__FUTURE_TOLERANCE_SECONDS": str(7 * 86400)}


async def supervision_levels(settings: Settings, ids: list[str]) -> dict[str, supervision_pb2.CaseSupervision]:
    async with channel(settings, "supervision") as chan:
        stub = supervision_pb2_grpc.EscalationServiceStub(chan)
        return {tid: await stub.GetSupervision(supervision_pb2.GetSupervisionRequest(ticket_id=tid)) for tid in ids}


async def test_timers_fire_once_through_sigkills(fault_platform: dict[str, ServiceProcess],
                                                 fault_settings: Settings) -> None:
    settings = fault_settings
    clock = from_settings(settings.clock)
    await drained(settings)
    seed = 4900 + (0 if FULL else 100)
    tickets = list(generate(N, seed=seed))
    now = clock.now()
    for i, t in enumerate(tickets):  # received now on the simulated clock
        t.city_ticket_id = f"FT{seed}-{i:05d}"
        t.received_at.FromDatetime(now)
        t.dispatched_at.FromDatetime(now)
    ids = [t.city_ticket_id for t in tickets]
    played = {tid: Path.STRAIGHT for tid in ids[::2]}
    unsigned = [tid for tid in ids if tid not in played]  # nobody signs for these: their sign-off goes overdue
    player = Player(settings, played, delay=0.05, seed=seed, strict=True)
    playing = asyncio.create_task(player.run(timeout=240))
    await asyncio.wait_for(player.ready.wait(), 60)
    await publish_tickets(settings, tickets)

    started = time.monotonic()
    downtimes = []
    for i, (kind, name) in enumerate(KILLS):  # 12 s (8 simulated hours) apart; supervision just before the
        # 24-hour sign-offs fall due, and away for 4 s (~3 simulated hours) while they do
        await asyncio.sleep(max(0.0, started + 34 - 12 * (len(KILLS) - 1 - i) - time.monotonic()))
        killed = time.monotonic()
        await _restart(kind, name, settings, fault_platform, lambda: asyncio.sleep(4))
        downtimes.append(f"{name} {time.monotonic() - killed:.1f} s")
    stats = await playing
    assert not stats.refused and not stats.errors, (stats.refused + stats.errors)[:5]
    supervised = await eventually(lambda: supervision_levels(settings, unsigned),
                                  lambda s: all(c.level >= 1 for c in s.values()), timeout=180)
    await drained(settings, timeout=180)
    ran_s = time.monotonic() - started

    # the case topic: deadline events per logical key, by distinct event id
    records = await read_topic(settings, settings.topics.name("case_events"), expect=None, timeout=5)
    by_key: dict[tuple[str, str, int, str], set[str]] = collections.defaultdict(set)
    key_of: dict[str, set[tuple[str, str, int, str]]] = collections.defaultdict(set)
    republished = 0
    seen: set[str] = set()
    closed: set[str] = set()
    after_close: list[str] = []
    for r in records:
        tid = r.key.decode() if r.key else ""
        if tid not in ids:
            continue
        headers = {k: v.decode() for k, v in r.headers}
        event_type, event_id = headers.get("event_type", ""), headers.get("event_id", "")
        if event_type == "hotline.v1.CaseClosed":  # a ticket's events are in order on its partition
            closed.add(tid)
            continue
        if event_type in DEADLINE_TYPES:
            d = DEADLINE_TYPES[event_type].FromString(r.value).deadline
            unit = f"/{d.unit.unit_id}" if d.unit.unit_id else ""  # assisting units' clocks: one per unit
            clock = deadlines_pb2.DeadlineClock.Name(d.clock) + unit
            key = (d.ticket_id, clock, d.dispatch_round, event_type.removeprefix("hotline.v1."))
        elif event_type == RAISED:
            raised = deadlines_pb2.OverdueSupervisionRaised.FromString(r.value)
            key = (raised.ticket_id, f"level {raised.level}", 0, "OverdueSupervisionRaised")  # once per level
        else:
            continue
        assert key[0] == tid, f"{event_id} keyed by {tid}, about {key[0]}"
        if tid in closed and event_id not in seen:
            after_close.append(event_id)  # a timer fired on a closed case
        republished += event_id in seen
        seen.add(event_id)
        by_key[key].add(event_id)
        key_of[event_id].add(key)

    doubled = {k: sorted(v) for k, v in by_key.items() if len(v) > 1}
    ambiguous = {e: sorted(k) for e, k in key_of.items() if len(k) > 1}
    missed = {k[0] for k in by_key if k[3] == "DeadlineMissed"}
    raised_once = collections.Counter(k[0] for k in by_key if k[3] == "OverdueSupervisionRaised" and k[1] == "level 1")
    kinds = collections.Counter(k[3] for k in by_key)
    lost_sign_off = [t for t in unsigned if (t, "DEADLINE_CLOCK_SIGN_OFF", 1, "DeadlineMissed") not in by_key]
    supervised.update(await eventually(lambda: supervision_levels(settings, sorted(missed - set(unsigned))),
                                       lambda s: all(any(r.level == 1 for r in c.records) for c in s.values()),
                                       timeout=60))
    level_1 = {t: [r for r in s.records if r.level == 1] for t, s in supervised.items()}
    # every overdue case has its one level-1 record, also one the player closed before supervision's follow-ups
    # applied its OverdueSupervisionRaised (escalation.py records an automatic raise on a closed case; the
    # trigger came first, so the record closed with the case)
    settled = {t for t in missed - set(unsigned) if any(r.state != supervision_pb2.SUPERVISION_STATE_OPEN
                                                         for r in level_1[t])}
    wrong_level_1 = {t: [r.record_id for r in rs] for t, rs in level_1.items() if len(rs) != 1}
    print(f"\ntimers through SIGKILLs ({', '.join(downtimes)}): {N} tickets ({len(unsigned)} unsigned), "
          f"{ran_s:.0f} s real = {ran_s * SPEED / 3600:.0f} simulated hours; deadline events by kind "
          f"{dict(kinds)}, {republished} republished records (same id), {len(missed)} overdue cases "
          f"({len(missed - set(unsigned))} of them played, {len(settled)} with the record closed with the case), "
          f"doubled {len(doubled)}, lost sign-off misses {len(lost_sign_off)}, "
          f"level-1 records not exactly one {len(wrong_level_1)}")
    assert not doubled, f"a timer fired more than once: {dict(list(doubled.items())[:5])}"
    assert not after_close, f"deadline events after the case closed: {after_close[:5]}"
    assert not ambiguous, f"one event id for different timers: {dict(list(ambiguous.items())[:5])}"
    assert not lost_sign_off, f"unsigned tickets whose sign-off miss was lost: {lost_sign_off[:5]}"
    assert set(unsigned) <= missed
    assert dict(raised_once) == dict.fromkeys(missed, 1), \
        "every overdue case raised to level 1 once, and only overdue ones"
    assert not wrong_level_1, f"cases without exactly one level-1 record: {dict(list(wrong_level_1.items())[:5])}"
    assert set(unsigned).isdisjoint(settled)
    for tid in sorted(missed):
        (record,) = level_1[tid]
        assert record.raised_by.role == "system" and record.reason.startswith("超期"), (tid, record)  # 超期：签收
