"""Faults under load: while tickets flow through whole lifecycles (the units, the office and the
city's callback centre played by hotline_dev/lifecycle_sim.py), SIGKILL the Kafka broker, the
store or a service, restart it, and check that nothing was lost or doubled.

The broker and the store are this suite's own (tests/faults/conftest.py). Afterwards, for every
ticket: received and assigned (metrics), exactly one case and it is closed, exactly the case events
its path implies (none missing, none doubled), exactly one city result per passed reply, and the
metrics summary grew by exactly the ground truth. Deputies submit problems among the city's
tickets (submitted over gRPC, retried with the same idempotency key while deputy liaison is away);
the lifecycles of their tickets are played like the others, and every followed step of their
cases must reach the deputy as exactly one DeputyNotified, identified by the case event's id (a
record an outbox republishes keeps that id, and a gateway keys on it). Each scenario prints its
figures (tickets in flight at the kill, recovery time, lost, duplicated); the table is in the README.

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

from hotline.auth import grpc_channel
from hotline.settings import SERVICES, Settings
from hotline.v1 import deputy_pb2, events_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from hotline_dev import infra
from hotline_dev.launcher import ServiceProcess
from hotline_dev.lifecycle_sim import RETRYABLE, Path, Player, _stable, round_robin
from hotline_dev.simulator import generate
from services.deputy_liaison.core import TICKET_PREFIX
from services.deputy_liaison.handlers import STATUS as DEPUTY_FOLLOWED
from tests.e2e.test_lifecycle import (
    case_events,
    city_results,
    closed_as_last_event,
    expected_events,
    expected_results,
    stage_counts,
)
from tests.e2e.test_pipeline import drained, summary
from tests.support import channel, eventually, http, publish_tickets, read_topic, token

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

FULL = os.environ.get("HOTLINE_FAULTS", "") == "all"
# each scenario: the components killed one after the other while the same tickets are under way
ALL_SCENARIOS = [(("infra", "kafka"),), (("infra", "store"),), *[(("service", s),) for s in SERVICES]]
SHORT_SCENARIOS = [(("service", "supervision"),), (("infra", "store"),)]
SCENARIOS = ALL_SCENARIOS if FULL else SHORT_SCENARIOS
N = int(os.environ.get("HOTLINE_FAULTS_TICKETS", "100" if FULL else "30"))
D = max(3, N // 10)  # deputies' problems among them
DEPUTIES = ("代表编号,姓名,层级,街道,社区,联系方式类型,联系方式,联络员编号\n"
            "FD1,周代表,区,ST01,CM0101,wechat,zhou_wx,LO-FAULT\n"
            "FD2,吴代表,市,ST02,,wechat,wu_wx,LO-FAULT\n").encode()
PROBLEMS = (  # (deputy, title, content, community)
    ("FD1", "小区路灯不亮", "群众反映小区内多盏路灯不亮已有两周，夜间出行不便，请尽快维修。", "CM0101"),
    ("FD2", "道路井盖缺失", "群众反映路口井盖缺失，存在安全隐患，请相关部门尽快补装。", ""),
    ("FD1", "垃圾清运不及时", "群众反映小区垃圾桶满溢多日无人清运，异味明显，请督促清运。", "CM0101"),
    ("FD2", "夜间施工噪音扰民", "群众反映附近工地夜间施工噪音很大，影响休息，请依法查处。", ""),
)
# the city never evaluates a deputy's ticket (the player rates it satisfied itself), so not the
# paths that turn on the city's callback
DEPUTY_PATHS = (Path.STRAIGHT, Path.EXTENSION_APPROVED, Path.EXTENSION_REJECTED, Path.PARKED, Path.REVIEW_FAILED,
                Path.RETURN_REFUSED, Path.RETURN_REDISPATCHED)
FOLLOWED = {t.DESCRIPTOR.full_name for t in DEPUTY_FOLLOWED}  # case events a deputy is told about


@dataclass
class Figures:
    scenario: str
    tickets: int
    in_flight: int  # published and not yet closed when the kill came (a quarter more are published at the kill)
    down_s: float  # kill -> the component answers again
    recovery_s: float  # kill -> lifecycles progress again (the next ticket closes)
    all_closed_s: float  # kill -> the last ticket closed (holds the kill's instant until the end)
    retries: int
    notices: int  # deputy notifications (DeputyNotified) checked, each exactly once
    lost: int
    duplicated: int


FIGURES: list[Figures] = []


@pytest.fixture(scope="module", autouse=True)
def figures_table() -> object:
    yield None
    if FIGURES:
        lines = ["| scenario | tickets | in flight at kill | back up (s) | recovery (s) | all closed (s) "
                 "| client retries | deputy notices | lost | duplicated |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {f.scenario} | {f.tickets} | {f.in_flight} | {f.down_s:.1f} | {f.recovery_s:.1f} | "
                  f"{f.all_closed_s:.1f} | {f.retries} | {f.notices} | {f.lost} | {f.duplicated} |" for f in FIGURES]
        print("\n\nfault figures\n" + "\n".join(lines))


@pytest.fixture(scope="module")
async def fault_deputies(fault_platform: dict[str, ServiceProcess], fault_settings: Settings) -> None:
    """Two deputies on the WeChat channel, registered by the administrator (once per module)."""
    liaison = f"http://{fault_settings.bind_host}:{fault_settings.ports.http('deputy_liaison')}"
    async with http(fault_settings, "admin") as admin:
        r = await admin.post(f"{liaison}/liaison-officers", headers={"Idempotency-Key": "fault-lo"},
                             json={"officer_id": "LO-FAULT", "name": "故障联络员", "street": "ST01"})
        assert r.status_code in (200, 201), r.text
        r = await admin.post(f"{liaison}/deputies/import", headers={"Idempotency-Key": "fault-deputies"},
                             files={"file": ("代表名册.csv", DEPUTIES, "text/csv")})
        assert r.status_code in (200, 201), r.text


async def submit_problems(settings: Settings, seed: int, numbers: range, player: Player) -> list[str]:
    """Deputies submit problems over gRPC; each is retried with its idempotency key while deputy
    liaison is away (a retry after a lost answer gets the first answer back), and its ticket is
    handed to the player as soon as its id is known."""
    target = f"{settings.bind_host}:{settings.ports.grpc('deputy_liaison')}"
    ids = []
    for i in numbers:
        deputy, title, content, community = PROBLEMS[i % len(PROBLEMS)]
        request = services_pb2.SubmitProblemRequest(
            title=title, content=f"{content}（第{seed}-{i}件）", address=f"故障测试路{i + 1}号",
            ticket_type=ticket_pb2.TICKET_TYPE_HELP,
            details=deputy_pb2.DeputyProblemDetails(community=community))
        deadline = time.monotonic() + 240
        while True:
            try:
                async with grpc_channel(target, token(settings, "deputy", deputy_id=deputy),
                                        metadata=[("idempotency-key", f"fault-{seed}-{i}")]) as chan:
                    answer = await services_pb2_grpc.DeputyLiaisonServiceStub(chan).SubmitProblem(request, timeout=10)
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        player.add({answer.ticket_id: DEPUTY_PATHS[i % len(DEPUTY_PATHS)]})
        ids.append(answer.ticket_id)
    return ids


async def deputy_notices(settings: Settings, tickets: set[str]) -> tuple[int, int, int, list[str]]:
    """Every followed case event of a deputy's ticket gave exactly one notification, identified by
    the event's id: (checked, lost, duplicated, problems). A record republished by an outbox keeps
    its id and is one notification."""
    wanted: dict[str, set[str]] = collections.defaultdict(set)
    for m in await read_topic(settings, settings.topics.name("case_events"), expect=None, timeout=5):
        headers = {k: v.decode() for k, v in m.headers}
        if m.key.decode() in tickets and headers["event_type"] in FOLLOWED:
            wanted[m.key.decode()].add(f"{headers['event_id']}/notify")
    got: dict[str, set[str]] = collections.defaultdict(set)
    for m in await read_topic(settings, settings.topics.name("notifications"), expect=None, timeout=5):
        if dict(m.headers)["event_type"] != b"hotline.v1.DeputyNotified":
            continue  # units' 事前提醒 (DeadlineReminder) share the topic
        note = deputy_pb2.DeputyNotified.FromString(m.value)
        if note.ticket_id in tickets:
            got[note.ticket_id].add(dict(m.headers)["event_id"].decode())
    lost = duplicated = 0
    problems = []
    for tid in sorted(tickets):
        missing, extra = wanted[tid] - got[tid], got[tid] - wanted[tid]
        lost, duplicated = lost + len(missing), duplicated + len(extra)
        if missing or extra or not wanted[tid]:
            problems.append(f"{tid} notifications: missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}")
    return sum(len(w) for w in wanted.values()), lost, duplicated, problems


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
                                           fault_platform: dict[str, ServiceProcess], fault_settings: Settings,
                                           fault_deputies: None) -> None:
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
    player = Player(settings, paths, delay=0.05, seed=seed, strict=True, hold=lambda k: k.startswith(TICKET_PREFIX))
    submitting: list[asyncio.Task[list[str]]] = []
    playing = asyncio.create_task(player.run(
        until=lambda: len(submitting) == 3 and all(t.done() for t in submitting) and player.done(), timeout=400))
    await asyncio.wait_for(player.ready.wait(), 60)
    waves = [tickets[: N // 2], tickets[N // 2 : N * 3 // 4], tickets[N * 3 // 4 :]]  # the rest at each kill
    problem_waves = [range(D // 2), range(D // 2, D * 3 // 4), range(D * 3 // 4, D)]

    def publish(wave: int) -> Awaitable[object]:
        """A wave of city tickets now; the deputies' problems in the background (they wait for a
        killed deputy liaison to come back)."""
        submitting.append(asyncio.create_task(submit_problems(settings, seed, problem_waves[wave], player)))
        return publish_tickets(settings, waves[wave])

    await publish(0)

    async def progress() -> int:
        if playing.done():
            playing.result()  # a failed player fails the test now
        return sum(player.stats.commands.values())

    kills_at: list[tuple[str, int, float, float]] = []  # (component, in flight, kill instant, back up after)
    for i, (kind, name) in enumerate(kills):  # mid-stream; a second kill once lifecycles are well under way
        await eventually(progress, lambda n, i=i: n >= (1 + 2 * i) * N, timeout=240, every=0.1)
        published = sum(map(len, waves[: 1 + i])) + sum(map(len, problem_waves[: 1 + i]))
        in_flight = published - len(player.stats.closed)
        killed = time.monotonic()
        await _restart(kind, name, settings, fault_platform, lambda i=i: publish(1 + i))
        kills_at.append((name, in_flight, killed, time.monotonic() - killed))
    if len(kills) == 1:
        await publish(2)
    stats = await playing
    assert not stats.refused and not stats.errors, (stats.refused + stats.errors)[:5]
    deputy_tickets = {tid for t in submitting for tid in t.result()}
    assert len(deputy_tickets) == D, "a deputy's retried submission became a second ticket"
    await drained(settings, timeout=180)

    # ground truth from the paths: the events, city results and final case of every ticket
    ids = list(player.paths)
    paths = player.paths
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
            want_results = set() if tid in deputy_tickets else expected_results(tid, path)  # not the city's
            lost += len(want_results - set(result_ids))
            duplicated += len(set(result_ids) - want_results)  # (a republished record has the same id)
            try:
                case = await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
            except grpc.aio.AioRpcError as exc:
                lost += 1
                problems.append(f"{tid}: no case ({exc.code().name})")
                continue
            if not closed_as_last_event(case, got[-1][1].case):
                problems.append(f"{tid}: case {events_pb2.CaseState.Name(case.state)}, not its last event")

    # metrics: exactly the ground truth, every stage per dispatch and redo round
    truth = stage_counts(events)
    truth["received"] = N + D
    truth["assigned"] = N + D + sum(1 for p in paths.values() if p == Path.RETURN_REDISPATCHED)

    def grew(s: services_pb2.Summary) -> bool:
        return all(s.stages.get(k, 0) - before.stages.get(k, 0) == n for k, n in truth.items())

    try:
        after = await eventually(lambda: summary(settings), grew, timeout=90)
    except AssertionError:
        after = await summary(settings)
        problems.append("metrics: " + str({k: (after.stages.get(k, 0) - before.stages.get(k, 0), n)
                                           for k, n in truth.items()
                                           if after.stages.get(k, 0) - before.stages.get(k, 0) != n}))
    notices, notices_lost, notices_doubled, notice_problems = await deputy_notices(settings, deputy_tickets)
    lost, duplicated = lost + notices_lost, duplicated + notices_doubled
    problems += notice_problems
    for name, in_flight, killed, down in kills_at:
        since = killed - stats.started  # closures are timed from the player's start
        after_kill = sorted(t - since for t in stats.closed_after.values() if t > since)
        f = Figures(f"SIGKILL {name}", N + D, in_flight, down, after_kill[0] if after_kill else 0.0,
                    after_kill[-1] if after_kill else 0.0, stats.retries, notices, lost, duplicated)
        FIGURES.append(f)
        print(f"\n{f.scenario}: {in_flight}/{N + D} in flight, back up {down:.1f} s, recovery {f.recovery_s:.1f} s, "
              f"all closed {f.all_closed_s:.1f} s after the kill, {stats.retries} retries, "
              f"{notices} deputy notifications, lost {lost}, duplicated {duplicated}")
    assert not problems, problems[:10]
    assert lost == 0 and duplicated == 0
    assert after.received - before.received == N + D
