"""Helpers shared by the integration and end-to-end tests (real Kafka, real store)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf import json_format

from hotline import kafka, mongo
from hotline.clock import SimulatedClock
from hotline.settings import Settings
from hotline.v1 import ticket_pb2
from hotline_dev import infra
from hotline_dev.launcher import ServiceProcess, drop_namespace, settings_for, start_services, stop_services

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], timeout: float = 60, every: float = 0.25
) -> T:
    """Poll ``probe`` until ``until(result)``; fail with the last result after ``timeout``."""
    deadline = time.monotonic() + timeout
    result = await probe()
    while not until(result):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last result: {result!r}"[:2000])
        await asyncio.sleep(every)
        result = await probe()
    return result


def city_json(ticket: ticket_pb2.CityTicket) -> bytes:
    return json_format.MessageToJson(ticket, indent=None).encode()


async def publish_raw(
    settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes]], headers: list[tuple[str, bytes]]
    | None = None,
) -> None:
    producer = kafka.producer(settings, linger_ms=0)
    await producer.start()
    try:
        headers = headers or [("content_type", b"application/json")]
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish_tickets(settings: Settings, tickets: Iterable[ticket_pb2.CityTicket]) -> list[str]:
    tickets = list(tickets)
    await publish_raw(settings, settings.topics.name("city_tickets"),
                      [(t.city_ticket_id.encode(), city_json(t)) for t in tickets])
    return [t.city_ticket_id for t in tickets]


async def read_topic(settings: Settings, topic: str, expect: int | None, timeout: float = 30) -> list[Any]:
    """Read a topic from the beginning (no group, no commits): until ``expect`` records arrived, or, with
    ``expect`` None, everything it holds: at least ``timeout`` seconds (for events still on their way, e.g.
    in an outbox) and then on to the end offsets of that moment, however long the topic (a 5 s read of a
    session's whole case topic once stopped short of its end)."""
    consumer = kafka.consumer(settings, enable_auto_commit=False, auto_offset_reset="earliest",
                              max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or
                                                         await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        started = time.monotonic()
        deadline = started + timeout + (120 if expect is None else 0)
        end: dict[TopicPartition, int] | None = None
        while time.monotonic() < deadline:
            if expect is not None and len(records) >= expect:
                break
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records += messages
            if expect is None and time.monotonic() >= started + timeout:
                end = end or await consumer.end_offsets(partitions)
                positions = [await consumer.position(tp) for tp in end]
                if all(at >= end[tp] for tp, at in zip(end, positions, strict=True)):
                    break
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 (aiokafka has no public refresh)
    return consumer.partitions_for_topic(topic) or set()


async def group_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Records the consumer group has not committed yet, over all partitions of ``topics``."""
    admin = kafka.admin(settings)
    consumer = kafka.consumer(settings)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(t, p) for t in topics for p in (await _partitions(consumer, t))]
        ends = await consumer.end_offsets(partitions)
        return sum(max(0, end - (committed[tp].offset if tp in committed else 0)) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def rewind_group(settings: Settings, group: str, topics: list[str]) -> None:
    """Set a (stopped) consumer group back to offset 0 on every partition: a full replay."""
    consumer = kafka.consumer(settings, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in (await _partitions(consumer, t))]
        consumer.assign(partitions)
        await consumer.commit({tp: 0 for tp in partitions})
    finally:
        await consumer.stop()


async def snapshot(settings: Settings, services: Iterable[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every document of every collection of the services' databases, sorted by _id."""
    client = mongo.client(settings)
    try:
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for service in services:
            db = client[f"{settings.mongo.database_prefix}_{service}"]
            out[service] = {
                name: await db[name].find({}).sort("_id", 1).to_list()
                for name in sorted(await db.list_collection_names())
            }
        return out
    finally:
        await client.close()


def token(settings: Settings, role: str = "office", **scope: str) -> str:
    """A development token for ``role`` (scope: unit_id=…, deputy_id=…, officer_id=…)."""
    from hotline.auth import issue

    return issue(settings.auth, role, **scope)


def channel(settings: Settings, service: str, role: str = "office", **scope: str) -> grpc.aio.Channel:
    """A gRPC channel to ``service`` authenticated as ``role``."""
    from hotline.auth import grpc_channel

    return grpc_channel(f"{settings.bind_host}:{settings.ports.grpc(service)}", token(settings, role, **scope))


def http(settings: Settings, role: str = "office", **scope: str) -> httpx.AsyncClient:
    """An HTTP client authenticated as ``role``."""
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {token(settings, role, **scope)}"}, timeout=30)


def browser_client(app: Any, base_url: str = "http://testserver") -> Any:
    """A TestClient of the workbench that behaves like a browser that loaded a page first: it holds the
    CSRF cookie and sends the matching token (header X-CSRF-Token) with every request (issue #19)."""
    import re

    from fastapi.testclient import TestClient

    client = TestClient(app, base_url=base_url)
    page = client.first_page = client.get("/login")  # type: ignore[attr-defined]
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert found, "the sign-in page carries no CSRF token"
    client.headers["X-CSRF-Token"] = found.group(1)
    return client


@contextmanager
def accelerated_supervision(test_env: dict[str, str], log_dir: Path, tag: str, start: datetime, speed: float,
                            ) -> Iterator[tuple[ServiceProcess, SimulatedClock, Settings]]:
    """Supervision alone on the accelerated clock (``start`` + ``speed`` x real time), with a database
    and topics of its own (suffix ``tag``): cases other modules opened on the real clock would all be
    overdue in simulated time, and on the session's topics it would join the session supervision's
    consumer groups and publish accelerated-clock events where other modules read."""
    real_start = datetime.now(UTC)
    env = {**test_env, "HOTLINE_CLOCK__START": start.isoformat(), "HOTLINE_CLOCK__SPEED": str(speed),
           "HOTLINE_CLOCK__REAL_START": real_start.isoformat(), "HOTLINE_SLA__SCAN_SECONDS": "0.2",
           "HOTLINE_MONGO__DATABASE_PREFIX": f"{test_env['HOTLINE_MONGO__DATABASE_PREFIX']}_{tag}",
           "HOTLINE_TOPICS__PREFIX": f"{test_env['HOTLINE_TOPICS__PREFIX']}{tag}."}
    settings = settings_for(env)
    infra.ensure_topics(settings)
    procs = start_services(["supervision"], settings, env, log_dir)
    try:
        yield procs["supervision"], SimulatedClock(start, speed, real_start), settings
    finally:
        stop_services(procs.values())
        drop_namespace(settings)
