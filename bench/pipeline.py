"""Benchmark of the whole pipeline against raw Kafka, in one run on this machine.

    .venv/bin/python bench/pipeline.py                 # everything, ~5 minutes
    .venv/bin/python bench/pipeline.py --quick         # a smaller run
    .venv/bin/python bench/pipeline.py --only max --max-count 20000

It starts the local infrastructure (or reuses it), and for each scenario a fresh namespace
(topics, databases, ports) with the five services as processes, then measures:

* raw: aiokafka produce + consume of the same number of messages of the same size, in one
  process, through the same broker: the ceiling the pipeline is a fraction of;
* rate: latency from publish to assigned and to case opened at fixed offered rates;
* max: sustained end-to-end throughput (every ticket received, assigned, its case opened and
  counted by metrics: every write persisted), and the resident memory of every process;
* lifecycle: tickets through to closure, every person of the lifecycle played at once
  (hotline_dev/lifecycle_sim.py): closures and commands per second, publish -> closed p50/p95;
* replay: a backlog of tickets already on the topic, then the services start and catch up;
* replicas / partitions: the same with 1, 2, 4 replicas of each pipeline service in one
  consumer group, and with more partitions.

It prints a table and writes JSON to bench/results/. It asserts nothing: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hotline import auth, kafka, pb  # noqa: E402
from hotline.settings import SERVICES, Settings  # noqa: E402
from hotline.v1 import services_pb2, services_pb2_grpc  # noqa: E402
from hotline_dev import infra  # noqa: E402
from hotline_dev.launcher import ServiceProcess, drop_namespace, isolated_env, settings_for  # noqa: E402
from hotline_dev.simulator import generate  # noqa: E402

console = Console()
PIPELINE = ("intake", "routing", "supervision", "metrics")  # the services a ticket passes through


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# --------------------------------------------------------------------------- the platform


@dataclass
class Namespace:
    """Five services (some replicated) in a topic/database/port namespace of their own."""

    replicas: int = 1
    partitions: int = 4
    tag: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:6]}")
    procs: list[ServiceProcess] = field(default_factory=list)
    # added to every default port (set apart from other runs on the machine; HOTLINE_BENCH_PORT_OFFSET moves it)
    port_offset: int = field(default_factory=lambda: int(os.environ.get("HOTLINE_BENCH_PORT_OFFSET", "10000")))
    root: Path = ROOT  # the checkout whose services run (bench/compare.py: a git ref's worktree)
    python: str = ""  # its interpreter (default: this one)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {**isolated_env(self.tag, self.port_offset), "HOTLINE_KAFKA__PARTITIONS": str(self.partitions),
                    "HOTLINE_MODEL_DIR": str(self.root / "models" / "classifier"), **self.extra_env}
        self.settings = settings_for(self.env)

    def start(self) -> None:
        infra.ensure_topics(self.settings)
        log_dir = ROOT / "bench" / "results" / "logs" / self.tag
        for service in SERVICES:
            copies = self.replicas if service in PIPELINE else 1
            for i in range(copies):
                env = dict(self.env)
                if i:  # each replica needs its own HTTP and gRPC ports
                    for kind in ("HTTP", "GRPC"):
                        key = f"HOTLINE_PORTS__{service.upper()}_{kind}"
                        env[key] = str(int(env[key]) + 10 * i)  # 81x1 -> 81x1+10i: clear of the others
                proc = ServiceProcess(service, settings_for(env), env, log_dir / f"r{i}", python=self.python,
                                      cwd=self.root if self.root != ROOT else None)
                proc.start()
                self.procs.append(proc)
        for proc in self.procs:
            proc.wait_ready(120)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        drop_namespace(self.settings)

    def rss_mb(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for proc in self.procs:
            if proc.proc and proc.proc.poll() is None:
                mb = psutil.Process(proc.proc.pid).memory_info().rss / 2**20
                out[proc.name] = max(out.get(proc.name, 0.0), mb)
        return out


@contextmanager
def namespace(replicas: int = 1, partitions: int = 4) -> Iterator[Namespace]:
    ns = Namespace(replicas, partitions)
    try:
        with console.status(f"starting {ns.tag}: {replicas} replica(s), {partitions} partitions…"):
            ns.start()
        yield ns
    finally:
        ns.stop()


def infra_rss_mb() -> dict[str, float]:
    out = {}
    for row in infra.status():
        if row.get("pid") and row["component"] in ("kafka", "store"):
            try:
                out[row["component"]] = psutil.Process(int(row["pid"])).memory_info().rss / 2**20
            except psutil.Error:
                pass
    return out


# --------------------------------------------------------------------------- measurements


class Observer:
    """Reads the ticket, assignment and case topics and notes when each ticket got to each (one hop per service)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.received: dict[str, float] = {}  # intake's TicketReceived
        self.assigned: dict[str, float] = {}
        self.opened: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            self.settings.topics.name("ticket_events"), self.settings.topics.name("assignment_events"),
            self.settings.topics.name("case_events"), **kafka.client_options(self.settings),
            group_id=f"{self.settings.topics.prefix}observer",
            auto_offset_reset="latest", enable_auto_commit=False, fetch_max_wait_ms=5,
        )
        await self.consumer.start()
        while not self.consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in self.consumer.assignment():
            await self.consumer.seek_to_end(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        stamps = {self.settings.topics.name("ticket_events"): self.received,
                  self.settings.topics.name("assignment_events"): self.assigned,
                  self.settings.topics.name("case_events"): self.opened}
        while True:
            batch = await self.consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.time()
            for messages in batch.values():
                for m in messages:
                    key = m.key.decode()
                    stamps[m.topic].setdefault(key, now)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.consumer.stop()


async def metrics_summary(settings: Settings) -> services_pb2.Summary:
    office = auth.issue(settings.auth, "office", subject="bench")
    async with auth.grpc_channel(f"127.0.0.1:{settings.ports.metrics_grpc}", office) as channel:
        return await services_pb2_grpc.MetricsServiceStub(channel).GetSummary(services_pb2.GetSummaryRequest())


def encoded_tickets(count: int, seed: int) -> list[tuple[str, Any]]:
    return [(t.city_ticket_id, t) for t in generate(count, seed=seed)]


async def publish(settings: Settings, tickets: list[tuple[str, Any]], rate: float, sent: dict[str, float]) -> float:
    """Publish at ``rate`` per second (0 = as fast as possible); received_at = the send time."""
    producer = AIOKafkaProducer(**kafka.client_options(settings), acks="all",
                                enable_idempotence=True, linger_ms=5)
    await producer.start()
    topic = settings.topics.name("city_tickets")
    started = time.time()
    futures = []
    try:
        for i, (ticket_id, ticket) in enumerate(tickets):
            if rate:
                delay = started + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            now = time.time()
            stamp = pb.ts(datetime.fromtimestamp(now, UTC))
            ticket.received_at.CopyFrom(stamp)
            ticket.dispatched_at.CopyFrom(stamp)
            value = json_format.MessageToJson(ticket, indent=None).encode()
            sent[ticket_id] = now
            futures.append(await producer.send(topic, value, key=ticket_id.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.time() - started


async def wait_for(observer: Observer, ids: list[str], timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(i in observer.opened for i in ids):
            return True
        await asyncio.sleep(0.1)
    return False


async def scenario_rate(ns: Namespace, rate: float, seconds: float) -> dict[str, Any]:
    count = max(50, int(rate * seconds))
    tickets = encoded_tickets(count, seed=int(rate))
    observer = Observer(ns.settings)
    await observer.start()
    sent: dict[str, float] = {}
    await publish(ns.settings, tickets, rate, sent)
    ids = [i for i, _ in tickets]
    complete = await wait_for(observer, ids, timeout=max(60, seconds * 4))
    await observer.stop()
    to_received = [(observer.received[i] - sent[i]) * 1000 for i in ids if i in observer.received]
    to_assigned = [(observer.assigned[i] - sent[i]) * 1000 for i in ids if i in observer.assigned]
    to_opened = [(observer.opened[i] - sent[i]) * 1000 for i in ids if i in observer.opened]
    return {
        "offered_rate": rate, "tickets": count, "complete": complete,
        **{f"received_p{q}_ms": round(percentile(to_received, q), 1) for q in (50, 95, 99)},
        **{f"assigned_p{q}_ms": round(percentile(to_assigned, q), 1) for q in (50, 95, 99)},
        **{f"opened_p{q}_ms": round(percentile(to_opened, q), 1) for q in (50, 95, 99)},
    }


async def scenario_max(ns: Namespace, count: int, seed: int) -> dict[str, Any]:
    tickets = encoded_tickets(count, seed=seed)
    base = await metrics_summary(ns.settings)
    observer = Observer(ns.settings)
    await observer.start()
    sent: dict[str, float] = {}
    rss_peak: dict[str, float] = {}

    async def sample_memory() -> None:
        while True:
            for name, mb in {**ns.rss_mb(), **infra_rss_mb()}.items():
                rss_peak[name] = max(rss_peak.get(name, 0.0), mb)
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_memory())
    started = time.time()
    publish_seconds = await publish(ns.settings, tickets, 0, sent)
    ids = [i for i, _ in tickets]
    with console.status(f"waiting for {count} cases…"):
        await wait_for(observer, ids, timeout=max(120, count / 50))
        opened_at = max(observer.opened.values(), default=time.time())
        while True:  # every write persisted: metrics has counted every stage of every ticket
            s = await metrics_summary(ns.settings)
            if s.cases_opened - base.cases_opened >= count and s.assigned - base.assigned >= count \
                    and s.received - base.received >= count:
                break
            await asyncio.sleep(0.1)
    done = time.time()
    sampler.cancel()
    await observer.stop()
    elapsed = done - started
    return {
        "tickets": count, "publish_seconds": round(publish_seconds, 2),
        "end_to_end_seconds": round(elapsed, 2), "tickets_per_second": round(count / elapsed, 1),
        "cases_opened_per_second": round(count / (opened_at - started), 1),
        "rss_mb": {k: round(v, 1) for k, v in sorted(rss_peak.items())},
    }


async def scenario_lifecycle(ns: Namespace, count: int, seed: int) -> dict[str, Any]:
    """Tickets through to closure: publish ``count`` tickets and play every person of their
    lifecycles at once (no think time; default path shares: extensions, parks, failed reviews,
    unsatisfied evaluations, returns): closures per second and time from publish to closure."""
    from hotline_dev.lifecycle_sim import Player, choose_paths

    tickets = encoded_tickets(count, seed=seed)
    ids = [i for i, _ in tickets]
    player = Player(ns.settings, choose_paths(ids, seed=seed), delay=0, seed=seed, from_beginning=False)
    playing = asyncio.create_task(player.run(timeout=max(600, count)))
    await asyncio.wait_for(player.ready.wait(), 60)
    started = time.time()
    await publish(ns.settings, tickets, 0, {})
    with console.status(f"playing {count} lifecycles to closure…"):
        stats = await playing
    elapsed = time.time() - started
    closures = sorted(stats.closed_after.values())
    commands = sum(stats.commands.values())
    return {
        "tickets": count, "closed": len(stats.closed), "commands": commands, "seconds": round(elapsed, 2),
        "closed_per_second": round(len(stats.closed) / elapsed, 1), "commands_per_second": round(commands / elapsed, 1),
        "closure_p50_s": round(percentile(closures, 50), 2), "closure_p95_s": round(percentile(closures, 95), 2),
        "refused": len(stats.refused), "retries": stats.retries,
    }


async def scenario_replay(count: int) -> dict[str, Any]:
    """A backlog: ``count`` tickets already on the city topic, then the services start and
    catch up (what a replay or a restart after an outage looks like)."""
    ns = Namespace()
    infra.ensure_topics(ns.settings)
    producer = AIOKafkaProducer(**kafka.client_options(ns.settings), acks="all",
                                enable_idempotence=True, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    topic = ns.settings.topics.name("city_tickets")
    with console.status(f"writing a backlog of {count:,} tickets…"):
        futures = []
        for ticket in generate(count, seed=300):
            futures.append(await producer.send(topic, json_format.MessageToJson(ticket, indent=None).encode(),
                                               key=ticket.city_ticket_id.encode()))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    await producer.stop()
    started = time.time()
    try:
        with console.status("services catching up…"):
            ns.start()
            while True:
                s = await metrics_summary(ns.settings)
                if min(s.received, s.assigned, s.cases_opened) >= count:
                    break
                await asyncio.sleep(1)
        elapsed = time.time() - started
        rss = ns.rss_mb()
    finally:
        ns.stop()
    return {"tickets": count, "seconds": round(elapsed, 1), "tickets_per_second": round(count / elapsed, 1),
            "minutes_per_million": round(elapsed / count * 1_000_000 / 60, 1),
            "rss_mb": {k: round(v, 1) for k, v in sorted(rss.items())}}


async def scenario_raw(settings: Settings, count: int, size: int, partitions: int) -> dict[str, Any]:
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(**kafka.client_options(settings))
    await admin.start()
    await admin.create_topics([NewTopic(topic, partitions, 1)])
    consumer = AIOKafkaConsumer(topic, **kafka.client_options(settings), group_id=topic,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    producer = AIOKafkaProducer(**kafka.client_options(settings), acks="all",
                                enable_idempotence=True, linger_ms=5)
    await producer.start()
    value = os.urandom(size // 2).hex().encode()[:size]
    received = 0

    async def consume() -> None:
        nonlocal received
        while received < count:
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            received += sum(len(m) for m in batch.values())
            if batch:
                await consumer.commit()

    started = time.time()
    reader = asyncio.create_task(consume())
    futures = [await producer.send(topic, value, key=str(i).encode()) for i in range(count)]
    await asyncio.gather(*futures)
    produced = time.time() - started
    await reader
    elapsed = time.time() - started
    await producer.stop()
    await consumer.stop()
    await admin.delete_topics([topic])
    await admin.close()
    return {"messages": count, "bytes": size, "produce_per_second": round(count / produced, 1),
            "pass_through_per_second": round(count / elapsed, 1)}


# --------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> dict[str, Any]:
    infra.start(components=("kafka", "store"), quiet=True)
    base_settings = settings_for({})
    sample = json_format.MessageToJson(next(generate(1, seed=9)), indent=None).encode()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "kafka": base_settings.kafka.version},
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    wanted = set(args.only.split(",")) if args.only else {"raw", "rate", "max", "lifecycle", "replay", "replicas",
                                                           "partitions"}
    if "raw" in wanted:
        with console.status("raw Kafka pass-through…"):
            result["raw"] = await scenario_raw(base_settings, args.max_count, len(sample), 4)
        console.print("raw", result["raw"])
    if wanted & {"rate", "max", "lifecycle"}:
        with namespace() as ns:
            if "rate" in wanted:
                result["rate"] = []
                for rate in [float(r) for r in args.rates.split(",")]:
                    with console.status(f"{rate:.0f} tickets/s for {args.seconds} s…"):
                        row = await scenario_rate(ns, rate, args.seconds)
                    console.print("rate", row)
                    result["rate"].append(row)
            if "max" in wanted:
                result["max"] = await scenario_max(ns, args.max_count, seed=7)
                console.print("max", result["max"])
            if "lifecycle" in wanted:
                result["lifecycle"] = await scenario_lifecycle(ns, args.lifecycle_count, seed=11)
                console.print("lifecycle", result["lifecycle"])
    if "replay" in wanted:
        result["replay"] = await scenario_replay(args.replay_count)
        console.print("replay", result["replay"])
    if "replicas" in wanted:
        result["replicas"] = []
        for replicas in [int(r) for r in args.replicas.split(",")]:
            with namespace(replicas=replicas, partitions=max(4, replicas)) as ns:
                row = {"replicas": replicas, "partitions": max(4, replicas),
                       **await scenario_max(ns, args.scale_count, seed=100 + replicas)}
            console.print("replicas", row)
            result["replicas"].append(row)
    if "partitions" in wanted:
        result["partitions"] = []
        for partitions in [int(p) for p in args.partitions.split(",")]:
            with namespace(replicas=1, partitions=partitions) as ns:
                row = {"replicas": 1, "partitions": partitions,
                       **await scenario_max(ns, args.scale_count, seed=200 + partitions)}
            console.print("partitions", row)
            result["partitions"].append(row)
    return result


def report(result: dict[str, Any]) -> None:
    m = result["machine"]
    console.rule(f"pipeline benchmark · {m['cpus']} cores, {m['memory_gb']} GB · Kafka {m['kafka']}")
    if "raw" in result and "max" in result:
        ratio = result["max"]["tickets_per_second"] / result["raw"]["pass_through_per_second"]
        result["pipeline_vs_raw"] = round(ratio, 3)
    table = Table("measure", "value")
    if "raw" in result:
        table.add_row("raw Kafka pass-through (msg/s)", f"{result['raw']['pass_through_per_second']:,.0f}")
    if "max" in result:
        table.add_row("pipeline end to end (tickets/s)", f"{result['max']['tickets_per_second']:,.0f}")
        table.add_row("cases opened (tickets/s)", f"{result['max']['cases_opened_per_second']:,.0f}")
    if "lifecycle" in result:
        lc = result["lifecycle"]
        table.add_row(f"through to closure, {lc['tickets']:,} lifecycles (tickets/s)",
                      f"{lc['closed_per_second']:,.1f}")
        table.add_row("lifecycle commands (per s)", f"{lc['commands_per_second']:,.0f}")
        table.add_row("publish -> closed p50 / p95 (s)", f"{lc['closure_p50_s']:.1f} / {lc['closure_p95_s']:.1f}")
    if "pipeline_vs_raw" in result:
        table.add_row("pipeline / raw", f"{result['pipeline_vs_raw']:.1%}")
    for name, mb in result.get("max", {}).get("rss_mb", {}).items():
        table.add_row(f"peak RSS {name} (MB)", f"{mb:.0f}")
    console.print(table)
    if result.get("rate"):
        rates = Table("offered/s", "tickets", "received p50/p95/p99 ms", "assigned p50/p95/p99 ms",
                      "opened p50/p95/p99 ms", "complete")
        for r in result["rate"]:
            rates.add_row(f"{r['offered_rate']:.0f}", str(r["tickets"]),
                          " / ".join(f"{r.get(f'received_p{q}_ms', float('nan')):.0f}" for q in (50, 95, 99)),
                          f"{r['assigned_p50_ms']:.0f} / {r['assigned_p95_ms']:.0f} / {r['assigned_p99_ms']:.0f}",
                          f"{r['opened_p50_ms']:.0f} / {r['opened_p95_ms']:.0f} / {r['opened_p99_ms']:.0f}",
                          str(r["complete"]))
        console.print(rates)
    if "replay" in result:
        r = result["replay"]
        console.print(f"replay of {r['tickets']:,} tickets: {r['seconds']} s = {r['tickets_per_second']:,.0f}/s "
                      f"-> {r['minutes_per_million']} min per million")
    for key in ("replicas", "partitions"):
        if result.get(key):
            t = Table("replicas", "partitions", "tickets/s")
            for r in result[key]:
                t.add_row(str(r["replicas"]), str(r["partitions"]), f"{r['tickets_per_second']:,.0f}")
            console.print(t)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma list of raw,rate,max,lifecycle,replay,replicas,partitions")
    parser.add_argument("--lifecycle-count", type=int, default=1000, help="tickets played through to closure")
    parser.add_argument("--rates", default="50,200,1000")
    parser.add_argument("--seconds", type=float, default=10, help="duration of each fixed-rate run")
    parser.add_argument("--max-count", type=int, default=20_000, help="tickets in the max-throughput run")
    parser.add_argument("--scale-count", type=int, default=10_000, help="tickets per replica/partition run")
    parser.add_argument("--replay-count", type=int, default=100_000, help="backlog size of the replay run")
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--partitions", default="4,8,16")
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON (default bench/results/)")
    args = parser.parse_args()
    if args.quick:
        args.max_count, args.scale_count, args.seconds, args.replicas, args.partitions = 3000, 2000, 5, "1,2", "4,8"
        args.replay_count, args.lifecycle_count = 10_000, 200
    outcome = asyncio.run(main(args))
    report(outcome)
    out = args.json or ROOT / "bench" / "results" / f"pipeline-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(outcome, indent=2, ensure_ascii=False))
    console.print(f"written {out}")
