"""Faults under load: while tickets flow through whole lifecycles (the units, the office and the
city's callback centre played by hotline_dev/lifecycle_sim.py), SIGKILL the Kafka broker, the
store or a service, restart it, and check that nothing was lost or doubled.

The broker and the store are this suite's own (tests/faults/conftest.py). Afterwards, for every
ticket: received and assigned (metrics), exactly one case and it is closed, exactly the case events
its path implies (none missing, none doubled), exactly one city result per passed reply, and the
metrics summary grew by exactly the ground truth. Each scenario prints its figures (tickets in
flight at the kill, recovery time, lost, duplicated); the table is in the README.

``make faults`` (HOTLINE_FAULTS=all) runs: broker, store, then each of the five services.
``make test`` runs the short part: 30 tickets with supervision SIGKILLed, 30 with the store
SIGKILLed (the broker there is the session's shared one, never killed).
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest

from hotline.settings import SERVICES, Settings
from hotline.v1 import events_pb2, services_pb2, services_pb2_grpc
from hotline_dev import infra
from hotline_dev.launcher import ServiceProcess
from hotline_dev.lifecycle_sim import Path, Player, _stable, round_robin
from hotline_dev.simulator import generate
from tests.e2e.test_lifecycle import case_events, city_results, expected_events, expected_results, stage_counts
from tests.e2e.test_pipeline import drained, summary
from tests.support import channel, eventually, publish_tickets

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

FULL = os.environ.get("HOTLINE_FAULTS", "") == "all"
# each scenario: the components killed one after the other while the same tickets are under way
ALL_SCENARIOS = [(("infra", "kafka"),), (("infra", "store"),), *[(("service", s),) for s in SERVICES]]
SHORT_SCENARIOS = [(("service", "supervision"),), (("infra", "store"),)]
SCENARIOS = ALL_SCENARIOS if FULL else SHORT_SCENARIOS
N = int(os.environ.get("HOTLINE_FAULTS_TICKETS", "100" if FULL else "30"))


@dataclass
class Figures:
    scenario: str
    tickets: int
    in_flight: int  # published and not yet closed when the kill came (a quarter more are published at the kill)
    down_s: float  # kill -> the component answers again
    recovery_s: float  # kill -> lifecycles progress again (the next ticket closes)
    all_closed_s: float  # kill -> the last ticket closed (holds the kill's instant until the end)
    retries: int
    lost: int
    duplicated: int


FIGURES: list[Figures] = []


@pytest.fixture(scope="module", autouse=True)
def figures_table() -> object:
    yield None
    if FIGURES:
        lines = ["| scenario | tickets | in flight at kill | back up (s) | recovery (s) | all closed (s) "
                 "| client retries | lost | duplicated |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {f.scenario} | {f.tickets} | {f.in_flight} | {f.down_s:.1f} | {f.recovery_s:.1f} | "
                  f"{f.all_closed_s:.1f} | {f.retries} | {f.lost} | {f.duplicated} |" for f in FIGURES]
        print("\n\nfault figures\n" + "\n".join(lines))


async def _restart(kind: str, name: str, settings: Settings, platform: dict[str, ServiceProcess],
                   while_down: Callable[[], Awaitable[object]]) -> None:
    """SIGKILL and restart; ``while_down`` publishes more tickets while a service is away (a
    killed broker takes them once it is back)."""
    if kind == "service":
        platform[name].kill()
        await while_down()
        platform[name].start()
        await asyncio.to_thread(platform[name].wait_ready, 180)
    else:
        await asyncio.to_thread(infra.kill, name, settings)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(infra.start, name, settings, quiet=True, topics=False)
        await while_down()


@pytest.mark.parametrize("kills", SCENARIOS, ids=["+".join(n for _, n in k) for k in SCENARIOS])
async def test_lifecycles_survive_a_sigkill(kills: tuple[tuple[str, str], ...],
                                           fault_platform: dict[str, ServiceProcess], fault_settings: Settings) -> None:
    settings = fault_settings
    await drained(settings)
    before = await summary(settings)
    seed = 4000 + SCENARIOS.index(kills) + (0 if FULL else 100)
    tickets = list(generate(N, seed=seed))
    now = datetime.now(UTC)
    for i, t in enumerate(tickets):  # ids of their own per scenario; received now
        t.city_ticket_id = f"F{seed}-{i:05d}"
        t.received_at.FromDatetime(now)
        t.dispatched_at.FromDatetime(now)
    ids = [t.city_ticket_id for t in tickets]
    paths = round_robin(ids)
    player = Player(settings, paths, delay=0.05, seed=seed, strict=True)
    playing = asyncio.create_task(player.run(timeout=400))
    await asyncio.wait_for(player.ready.wait(), 60)
    waves = [tickets[: N // 2], tickets[N // 2 : N * 3 // 4], tickets[N * 3 // 4 :]]  # the rest at each kill
    await publish_tickets(settings, waves[0])

    async def progress() -> int:
        if playing.done():
            playing.result()  # a failed player fails the test now
        return sum(player.stats.commands.values())

    kills_at: list[tuple[str, int, float, float]] = []  # (component, in flight, kill instant, back up after)
    for i, (kind, name) in enumerate(kills):  # mid-stream; a second kill once lifecycles are well under way
        await eventually(progress, lambda n, i=i: n >= (1 + 2 * i) * N, timeout=240, every=0.1)
        in_flight = N // 2 + N // 4 * i - len(player.stats.closed)
        killed = time.monotonic()
        await _restart(kind, name, settings, fault_platform, lambda i=i: publish_tickets(settings, waves[1 + i]))
        kills_at.append((name, in_flight, killed, time.monotonic() - killed))
    if len(kills) == 1:
        await publish_tickets(settings, waves[2])
    stats = await playing
    assert not stats.refused and not stats.errors, (stats.refused + stats.errors)[:5]
    await drained(settings, timeout=180)

    # ground truth from the paths: the events, city results and final case of every ticket
    wanted = set(ids)
    events = await case_events(settings, wanted)
    results = await city_results(settings, wanted)
    lost = duplicated = 0
    problems: list[str] = []
    async with channel(settings, "supervision") as chan:
        stub = services_pb2_grpc.SupervisionServiceStub(chan)
        for tid in ids:
            path, got = paths[tid], events.get(tid, [])
            if not got:
                lost += 1
                problems.append(f"{tid}: no case events")
                continue
            assists = len(got[0][1].case.assists)
            waived = 1 if assists and _stable(tid) % 3 == 0 and path != Path.RETURN_REDISPATCHED else 0
            if path == Path.RETURN_REDISPATCHED:
                assists = 0
            want, have = expected_events(path, assists, waived), collections.Counter(n for n, _ in got)
            missing, extra = want - have, have - want
            lost += sum(missing.values())
            duplicated += sum(extra.values())
            if missing or extra:
                problems.append(f"{tid} {path}: missing {dict(missing)}, extra {dict(extra)}")
            result_ids = collections.Counter(r.result_id for r in results.get(tid, []))
            want_results = expected_results(tid, path)
            lost += len(want_results - set(result_ids))
            duplicated += len(set(result_ids) - want_results)  # (a republished record has the same id)
            try:
                case = await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
            except grpc.aio.AioRpcError as exc:
                lost += 1
                problems.append(f"{tid}: no case ({exc.code().name})")
                continue
            if case.state != events_pb2.CASE_STATE_ARCHIVED or case != got[-1][1].case:
                problems.append(f"{tid}: case {events_pb2.CaseState.Name(case.state)}, not its last event")

    # metrics: exactly the ground truth, every stage per dispatch and redo round
    truth = stage_counts(events)
    truth["received"] = N
    truth["assigned"] = N + sum(1 for p in paths.values() if p == Path.RETURN_REDISPATCHED)

    def grew(s: services_pb2.Summary) -> bool:
        return all(s.stages.get(k, 0) - before.stages.get(k, 0) == n for k, n in truth.items())

    try:
        after = await eventually(lambda: summary(settings), grew, timeout=90)
    except AssertionError:
        after = await summary(settings)
        problems.append("metrics: " + str({k: (after.stages.get(k, 0) - before.stages.get(k, 0), n)
                                           for k, n in truth.items()
                                           if after.stages.get(k, 0) - before.stages.get(k, 0) != n}))
    for name, in_flight, killed, down in kills_at:
        since = killed - stats.started  # closures are timed from the player's start
        after_kill = sorted(t - since for t in stats.closed_after.values() if t > since)
        f = Figures(f"SIGKILL {name}", N, in_flight, down, after_kill[0] if after_kill else 0.0,
                    after_kill[-1] if after_kill else 0.0, stats.retries, lost, duplicated)
        FIGURES.append(f)
        print(f"\n{f.scenario}: {in_flight}/{N} in flight, back up {down:.1f} s, recovery {f.recovery_s:.1f} s, "
              f"all closed {f.all_closed_s:.1f} s after the kill, {stats.retries} retries, "
              f"lost {lost}, duplicated {duplicated}")
    assert not problems, problems[:10]
    assert lost == 0 and duplicated == 0
    assert after.received - before.received == N
