"""The clocks issue #22 added, on the accelerated clock and through supervision restarts (SIGKILL,
then SIGTERM): an unsigned assisting unit, an overdue 加派, an unreported 挂账 month and an overdue
level-2 督办 each fire due-soon and overdue exactly once (counted per clock as DeadlineDueSoon /
DeadlineMissed on the case topic); so do a summoned department that never reports in (吹哨报到) and
the office's callback clock of a deputy's reported ticket the deputy never rates (回访, which by the
SLA policy's overdue_levels raises no 督办).

Follows tests/e2e/test_timers_restart.py: supervision alone as a process on the accelerated clock
with topics and a database of its own; assignments and the 加派 are published straight to its
assignments topic, as routing would; the unit's and the office's steps go through its HTTP API."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline import pb
from hotline.clock import SimulatedClock
from hotline.envelope import Event
from hotline.kafka import producer as kafka_producer
from hotline.kafka import publish
from hotline.settings import Settings
from hotline.v1 import deadlines_pb2, events_pb2, routing_pb2, ticket_pb2
from hotline_dev.launcher import ServiceProcess
from tests.e2e.test_pipeline import cases_of as get_cases
from tests.support import accelerated_supervision, eventually, http, read_topic

pytestmark = pytest.mark.e2e

SPEED = 40_000  # simulated seconds per real second: a simulated month in ~65 s
SIM_START = datetime(2026, 12, 6, 16, 0, tzinfo=UTC)  # Monday 2026-12-07 00:00 in Shanghai
TZ = ZoneInfo("Asia/Shanghai")
STREET = events_pb2.Unit(unit_id="ST05", name="瑞金路街道", unit_type=events_pb2.UNIT_TYPE_STREET)
COMMUNITY = events_pb2.Unit(unit_id="CM0502", name="瑞金新村社区", unit_type=events_pb2.UNIT_TYPE_COMMUNITY)
HELPER = events_pb2.Unit(unit_id="DP01", name="区市场监督管理局", unit_type=events_pb2.UNIT_TYPE_DEPARTMENT)
SUMMONED = "DP02"  # 区住房和城乡建设委员会: whistled by the street, never reports in
DEADLINES = ("hotline.v1.DeadlineDueSoon", "hotline.v1.DeadlineMissed")


@pytest.fixture(scope="module")
def simulated(test_env: dict[str, str], topics: list[str], log_dir: Path,
              ) -> Iterator[tuple[ServiceProcess, SimulatedClock, Settings]]:
    """Supervision on the accelerated clock, with a database and topics of its own (as in
    test_timers_restart.py, under other prefixes so the two modules never share them)."""
    with accelerated_supervision(test_env, log_dir, "clk", SIM_START, SPEED) as running:
        yield running


def assignment(ticket_id: str, at: datetime, assisting: tuple[events_pb2.Unit, ...] = ()) -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(
            ticket_id=ticket_id, primary_unit=STREET, assisting_units=assisting, category="物业管理",
            method="city_category", dispatch_round=1, assigned_at=pb.ts(at)),
        ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, urgency=ticket_pb2.URGENCY_NORMAL, received_at=pb.ts(at))


async def until(clock: SimulatedClock, when: datetime) -> None:
    await asyncio.sleep(max(0.0, clock.real_seconds(when - clock.now())))


async def publish_all(settings: Settings, events: list[Event]) -> None:
    producer = kafka_producer(settings)
    await producer.start()
    try:
        await publish(producer, events, "test")
    finally:
        await producer.stop()


async def deadline_events(settings: Settings) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(record key, clock key, stage) -> {event id: Deadline}, from the case topic."""
    records = await read_topic(settings, settings.topics.name("case_events"), expect=None, timeout=5)
    out: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
    for r in records:
        headers = {k: v.decode() for k, v in r.headers}
        if headers.get("event_type") not in DEADLINES:
            continue
        soon = headers["event_type"].endswith("DueSoon")
        d = (deadlines_pb2.DeadlineDueSoon if soon else deadlines_pb2.DeadlineMissed).FromString(r.value).deadline
        out[(r.key.decode(), d.clock_key, "due_soon" if soon else "due")][headers["event_id"]] = d
    return out


async def test_the_new_clocks_fire_due_soon_and_overdue_once_through_restarts(
    simulated: tuple[ServiceProcess, SimulatedClock, Settings],
) -> None:
    supervision, clock, settings = simulated
    tag = uuid.uuid4().hex[:6]
    now = clock.now()
    tid = {name: f"CK-{tag}-{name}" for name in ("assist", "sub", "park", "level2")}
    tid["deputy"] = f"RD-CK-{tag}"  # a deputy's ticket (人大代表): no city ticket, the deputy rates (回访)
    first = {tid["park"]: assignment(tid["park"], now), tid["level2"]: assignment(tid["level2"], now),
             tid["deputy"]: assignment(tid["deputy"], now)}
    first[tid["deputy"]].source = "deputy"
    # its unit's sign-off and contact run from an assignment ten days ahead: none runs out before the reply
    first[tid["deputy"]].assignment.assigned_at.CopyFrom(pb.ts(now + timedelta(days=10)))
    topic = settings.topics.name("assignment_events")
    await publish_all(settings, [Event(topic, t, a, f"{t}/assigned/1") for t, a in first.items()])
    await eventually(lambda: get_cases(settings, sorted(first)), lambda found: len(found) == len(first), timeout=60)

    base = f"http://{settings.bind_host}:{settings.ports.supervision_http}"

    def key(name: str) -> dict[str, str]:
        return {"Idempotency-Key": f"{tag}-{name}"}
    async with http(settings, "unit", unit_id=STREET.unit_id) as unit, http(settings, "office") as office:
        deputy = f"{base}/cases/{tid['deputy']}"
        for path, body in (("sign-off", {"note": "收到"}),
                           ("contacts", {"channel": "CONTACT_CHANNEL_PHONE", "outcome": "CONTACT_OUTCOME_REACHED"}),
                           ("reply", {"result": "REPLY_RESULT_RESOLVED", "text": "已处理"})):
            r = await unit.post(f"{deputy}/{path}", json=body, headers=key(f"rd-{path}"))
            assert r.status_code == 200, r.text
        r = await office.post(f"{deputy}/review", json={"passed": True}, headers=key("rd-review"))
        assert r.status_code == 200 and r.json()["state"] == "CASE_STATE_REPORTED", r.text
        park = f"{base}/cases/{tid['park']}"
        assert (await unit.post(f"{park}/sign-off", json={"note": "收到"}, headers=key("s"))).status_code == 200
        target = (clock.now().astimezone(TZ).date() + timedelta(days=180)).isoformat()
        r = await unit.post(f"{park}/park", json={"plan": "纳入改造计划", "target_date": target, "reason": "需立项"},
                            headers=key("p"))
        assert r.status_code == 200, r.text
        r = await office.post(f"{park}/park/decision", json={"approved": True, "reason": "同意挂账"}, headers=key("d"))
        assert r.status_code == 200 and r.json()["state"] == "CASE_STATE_PARKED", r.text
        r = await unit.post(f"{base}/whistles", json={"ticket_id": tid["level2"], "problem": "违建整治需住建到场",
                                                      "unit_ids": [SUMMONED]}, headers=key("w"))
        assert r.status_code == 200, r.text
        whistle_id = r.json()["whistle_id"]
        r = await office.post(f"{base}/cases/{tid['level2']}/supervision", json={"level": 2, "reason": "督办函"},
                              headers=key("l2"))
        assert r.status_code == 200, r.text

    # the assisting and 加派 cases start eight simulated days ahead: their first alarms come after the kill below
    ahead = clock.now() + timedelta(days=8)
    later = {tid["assist"]: assignment(tid["assist"], ahead, (HELPER,)), tid["sub"]: assignment(tid["sub"], ahead)}
    sub = routing_pb2.SubDispatched(ticket_id=tid["sub"], dispatch_round=1, street_unit=STREET,
                                    community_unit=COMMUNITY, reason="社区先行处置", dispatched_at=pb.ts(ahead),
                                    due=pb.ts(ahead + timedelta(days=20)))  # the street asked more: the policy caps it
    await publish_all(settings, [Event(topic, t, a, f"{t}/assigned/1") for t, a in later.items()]
                      + [Event(topic, tid["sub"], sub, f"{tid['sub']}/sub-dispatch/{COMMUNITY.unit_id}")])
    ids = sorted({**first, **later})
    cases = await eventually(lambda: get_cases(settings, ids),
                             lambda found: len(found) == len(ids) and len(found[tid["sub"]].sub_dispatches) == 1
                             and found[tid["level2"]].HasField("supervision_due"), timeout=30, every=0.1)
    killed_at = clock.now()
    supervision.kill()  # SIGKILL, with every alarm below still ahead (but the whistle's 24 h, maybe)

    # what must fire, per clock: (record key, clock key) -> its due time
    level2_due = pb.dt(cases[tid["level2"]].supervision_due)
    (task,) = cases[tid["assist"]].assists
    expected = {
        (tid["assist"], "assist_sign_off_dp01"): pb.dt(task.sign_off_due),
        (tid["sub"], "sub_dispatch_cm0502"): pb.dt(cases[tid["sub"]].sub_dispatches[0].due),
        (tid["park"], "park_progress"): pb.dt(cases[tid["park"]].park.next_report_due),
        (tid["level2"], "supervision"): level2_due,
        (tid["level2"], f"whistle_report_in_{SUMMONED.lower()}"): None,  # due 24 h after the whistle
        (tid["deputy"], "deputy_callback"): None,  # 5 working days after reporting
    }
    assert pb.dt(cases[tid["sub"]].sub_dispatches[0].due) < ahead + timedelta(days=5)  # the policy's 2 working days
    assert level2_due - pb.dt(cases[tid["level2"]].supervision_raised_at) >= timedelta(days=5)  # 5 working days
    assert pb.dt(cases[tid["park"]].park.next_report_due) - now >= timedelta(days=29)  # the monthly report
    deputy_case = cases[tid["deputy"]]
    started = {"assist_sign_off_dp01": pb.dt(cases[tid["assist"]].opened_at),  # when each clock started
               "sub_dispatch_cm0502": ahead, "park_progress": pb.dt(cases[tid["park"]].park.parked_at),
               "supervision": pb.dt(cases[tid["level2"]].supervision_raised_at),
               "deputy_callback": pb.dt(deputy_case.reported_at)}

    await until(clock, ahead + timedelta(days=2))  # downtime: the assisting unit's sign-off falls due meanwhile
    supervision.start()
    await asyncio.to_thread(supervision.wait_ready, 90)
    await until(clock, killed_at + timedelta(days=18))  # before the 挂账 month's due-soon alarm
    supervision.stop()  # SIGTERM, and straight back
    supervision.start()
    await asyncio.to_thread(supervision.wait_ready, 90)
    last = max(d for d in expected.values() if d is not None)
    await until(clock, last)

    def complete(found: dict[tuple[str, str, str], dict[str, Any]]) -> bool:
        return all((k, c, s) in found for (k, c) in expected for s in ("due_soon", "due"))
    await eventually(lambda: deadline_events(settings), complete, timeout=90, every=2)
    await asyncio.sleep(3)  # a few more scans (~1.4 simulated days): nothing may fire twice
    found = await deadline_events(settings)

    by_clock: dict[str, Any] = {}
    after_kill = 0  # stages scheduled after the kill (the restart must not lose them): all fired after it
    for (record_key, clock_key), due in expected.items():
        for stage in ("due_soon", "due"):
            fired = found[(record_key, clock_key, stage)]
            if clock_key == "supervision":  # the level-2 record's own limit (level 1 may have run before it)
                fired = {i: d for i, d in fired.items() if pb.dt(d.due_at) == due}
            assert len(fired) == 1, f"{clock_key} {stage} fired {len(fired)} times: {sorted(fired)}"
            (d,) = fired.values()
            if due is not None:
                assert pb.dt(d.due_at) == due
            if clock_key in started:  # (not the whistle's 24 h: it may run out before the kill)
                start, end = started[clock_key], pb.dt(d.due_at)
                scheduled = end if stage == "due" else start + (end - start) * 0.8  # the policy's due_soon_fraction
                if scheduled > killed_at + timedelta(hours=3):  # (a timer scan's granularity on this clock)
                    after_kill += 1
                    assert pb.dt(d.fired_at) > killed_at, f"{clock_key} {stage} fired before the kill"
            if stage == "due":
                assert pb.dt(d.fired_at) >= pb.dt(d.due_at), "never before it is due"
                by_clock[clock_key] = d
    assert after_kill >= 7, "most alarms were still ahead when supervision was killed"
    assert by_clock["assist_sign_off_dp01"].unit.unit_id == HELPER.unit_id
    assert by_clock["sub_dispatch_cm0502"].unit.unit_id == COMMUNITY.unit_id
    assert by_clock["sub_dispatch_cm0502"].clock == deadlines_pb2.DEADLINE_CLOCK_SUB_DISPATCH
    assert by_clock["park_progress"].clock == deadlines_pb2.DEADLINE_CLOCK_PARK_PROGRESS
    assert by_clock["supervision"].clock == deadlines_pb2.DEADLINE_CLOCK_SUPERVISION
    report_in = by_clock[f"whistle_report_in_{SUMMONED.lower()}"]
    assert report_in.whistle_id == whistle_id and report_in.unit.unit_id == SUMMONED
    assert report_in.clock == deadlines_pb2.DEADLINE_CLOCK_WHISTLE_REPORT_IN
    callback = by_clock["deputy_callback"]
    assert callback.clock == deadlines_pb2.DEADLINE_CLOCK_DEPUTY_CALLBACK and callback.unit.unit_id == "office"
    # the downtime was caught up: an alarm that fell due while supervision was down fired after it came back
    lateness = [pb.dt(d.fired_at) - pb.dt(d.due_at) for d in by_clock.values()]
    assert max(lateness) > timedelta(hours=12)
    # an overdue 加派 raised level 1 like every other miss, once
    final = await get_cases(settings, [tid["sub"], tid["deputy"]])
    assert final[tid["sub"]].supervision_level >= 1
    # the deputy callback's miss is the office's alarm only (overdue_levels): no 督办 of the unit that replied
    records = await read_topic(settings, settings.topics.name("case_events"), expect=None, timeout=5)
    raised = [deadlines_pb2.OverdueSupervisionRaised.FromString(r.value).reason for r in records
              if r.key.decode() == tid["deputy"] and dict(r.headers).get("event_type") ==
              b"hotline.v1.OverdueSupervisionRaised"]
    assert not raised, raised
    assert final[tid["deputy"]].supervision_level == 0 and final[tid["deputy"]].state == events_pb2.CASE_STATE_REPORTED
