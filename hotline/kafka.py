"""Kafka plumbing shared by all services: one producer, and the consumer loop.

The consumer loop is the single place that gives every service its delivery guarantees:

1. fetch a batch (``getmany``), decode each record with the handler's ``decode``;
   a :class:`~hotline.envelope.PermanentError` sends that record to the dead-letter topic
   with the reason, the original topic, partition and offset in its headers; any other
   exception that is not an outage of the store or broker (:func:`is_transient`) is a bug
   met on this record and is dead-lettered the same way (``decode_error``, with the
   exception), so no record can stop a consumer;
2. apply the decoded batch with the handler's ``apply`` (idempotent writes that return
   the events to publish, with deterministic event ids); transient failures are retried
   with back-off until they pass; a batch that keeps failing for another reason is split
   and the single record that fails is dead-lettered with the exception;
3. publish the returned events and the dead letters and wait for the broker's acks;
4. only then commit the offsets: at most every ``kafka.commit_interval_ms`` (the offsets of the
   batches handled meanwhile in one commit; an idle consumer commits once the interval has
   passed, a stopping one at once).

A crash anywhere before step 4 replays the batch (and the batches handled since the last
commit): the writes are idempotent and yield the same events with the same ids, which consumers
downstream drop as duplicates. Nothing is lost and no effect is doubled.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from hotline import observability as obs
from hotline.envelope import Event, PermanentError, Record, Skip
from hotline.logging import bind_correlation, get_logger
from hotline.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Failures of the infrastructure (store or broker away), worth retrying forever."""
    if isinstance(exc, ConnectionFailure | KafkaError | asyncio.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OperationFailure):
        return bool(exc.has_error_label("TransientTransactionError"))
    return isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError")


def client_options(settings: Settings) -> dict[str, Any]:
    """Where the broker is and how to talk to it (TLS, SASL): THE options of every producer,
    consumer and admin client of the platform. Build clients with :func:`producer`,
    :func:`consumer` and :func:`admin`, which start from these."""
    k = settings.kafka
    options: dict[str, Any] = {"bootstrap_servers": k.bootstrap_servers, "security_protocol": k.security_protocol}
    if k.security_protocol.startswith("SASL"):
        options.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
                       sasl_plain_password=k.sasl_password.get_secret_value())
    if k.security_protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        context = create_ssl_context(cafile=k.ssl_cafile or None, certfile=k.ssl_certfile or None,
                                     keyfile=k.ssl_keyfile or None)
        context.check_hostname = k.ssl_check_hostname
        options["ssl_context"] = context
    return options


def consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer with the platform's connection options (``overrides`` win)."""
    return AIOKafkaConsumer(*topics, **{**client_options(settings), **overrides})


def admin(settings: Settings, **overrides: Any) -> AIOKafkaAdminClient:
    """An admin client with the platform's connection options (``overrides`` win)."""
    return AIOKafkaAdminClient(**{**client_options(settings), **overrides})


def producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = dict(
        **client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_request_size=4 * settings.kafka.max_message_bytes,
        max_batch_size=256 * 1024,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def publish(kafka: AIOKafkaProducer, events: Sequence[Event], service: str) -> None:
    """Send events in order and wait until the broker has them all."""
    futures = [
        await kafka.send(e.topic, value=e.value(), key=e.key.encode(), headers=e.headers(service))
        for e in events
    ]
    if futures:
        await asyncio.gather(*futures)
    for e in events:
        obs.PUBLISHED.labels(service, e.topic).inc()


class BatchHandler(Protocol[T]):
    """What a service provides to consume a topic. See the module doc for the contract."""

    def decode(self, record: Record) -> T:
        """Turn a record into a command; raise PermanentError for input that can never work."""
        ...

    async def apply(self, items: list[tuple[Record, T]]) -> list[Event]:
        """Apply the commands with idempotent writes; return the events to publish."""
        ...


@dataclass
class ConsumerSpec(Generic[T]):
    topics: list[str]
    group_id: str
    handler: BatchHandler[T]
    linger_ms: int = 0  # gather records this long before applying: fewer, bigger batches (off the critical path)


def _to_record(msg: Any) -> Record:
    headers = {k: v.decode("utf-8", "replace") for k, v in (msg.headers or ())}
    key = msg.key.decode("utf-8", "replace") if msg.key else ""
    return Record(msg.topic, msg.partition, msg.offset, key, msg.value or b"", headers, msg.timestamp)


class ConsumerLoop(Generic[T]):
    def __init__(self, spec: ConsumerSpec[T], settings: Settings, kafka: AIOKafkaProducer, service: str) -> None:
        self.spec = spec
        self.settings = settings
        self.kafka = kafka
        self.service = service
        self.dead_letter_topic = settings.topics.name("dead_letters")
        self.consumer: AIOKafkaConsumer | None = None
        self.running = False
        self._batch_topics: list[str] = []
        self._commit: asyncio.Future[None] | None = None
        self._uncommitted: dict[TopicPartition, int] = {}  # handled, not yet committed (commit_interval_ms)
        self._committed_at = 0.0
        obs.at_zero(obs.DEAD_LETTERS, [service], obs.DEAD_LETTER_REASONS)
        obs.at_zero(obs.CONSUMED, [service], spec.topics, ["processed", "dead_lettered"])

    async def run(self) -> None:
        self.consumer = consumer(
            self.settings,
            *self.spec.topics,
            group_id=self.spec.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * self.settings.kafka.max_message_bytes,
            fetch_max_bytes=16 * 1024 * 1024,
            isolation_level="read_committed",
            # a consumer that lingers asks the broker to hold its fetch as long: one fetch per linger,
            # not one per record that arrives (issue 21: at tens of records a second each side
            # consumer's fetch per record was much of the broker's CPU)
            **({"fetch_min_bytes": 1024 * 1024, "fetch_max_wait_ms": self.spec.linger_ms}
               if self.spec.linger_ms else {}),
        )
        await self.consumer.start()
        self.running = True
        log.info("consumer started", topics=self.spec.topics, group=self.spec.group_id)
        try:
            while True:
                batches = await self.consumer.getmany(
                    timeout_ms=self.settings.kafka.consumer_batch_wait_ms,
                    max_records=self.settings.kafka.consumer_batch_max,
                )
                records = [_to_record(m) for messages in batches.values() for m in messages]
                if records and self.spec.linger_ms:
                    records += await self._linger(len(records))
                if records:  # one poll = one batch: all partitions share the store round trips
                    await self.handle_batch(records)
                elif self._uncommitted:  # idle: commit what was handled, once the interval has passed
                    await self._commit_handled()
                self._update_lag()
        finally:
            self.running = False
            await asyncio.gather(self._commit_handled(force=True), return_exceptions=True)
            await asyncio.gather(self._finish_commit(), return_exceptions=True)
            await self.consumer.stop()

    async def _linger(self, have: int) -> list[Record]:
        assert self.consumer is not None
        more: list[Record] = []
        deadline = time.monotonic() + self.spec.linger_ms / 1000
        room = self.settings.kafka.consumer_batch_max - have
        while len(more) < room and (left := deadline - time.monotonic()) > 0:
            batches = await self.consumer.getmany(timeout_ms=int(left * 1000) + 1, max_records=room - len(more))
            more += [_to_record(m) for messages in batches.values() for m in messages]
        return more

    def _update_lag(self) -> None:
        assert self.consumer is not None
        lag: dict[str, int] = {}
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            position = self.consumer.last_stable_offset(tp)
            if highwater is not None and position is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
        for topic, value in lag.items():
            obs.CONSUMER_LAG.labels(self.service, topic).set(value)

    async def handle_batch(self, records: list[Record]) -> None:
        """Decode, apply, publish, dead-letter, then commit: see the module doc."""
        started = time.perf_counter()
        self._batch_topics = sorted({r.topic for r in records})
        items: list[tuple[Record, T]] = []
        dead: list[tuple[Record, PermanentError]] = []
        for record in records:
            if len(record.value) > self.settings.kafka.max_message_bytes:
                dead.append((record, PermanentError("oversize", f"{len(record.value)} bytes > limit")))
                continue
            try:
                with bind_correlation(record.correlation_id):
                    items.append((record, self.spec.handler.decode(record)))
            except PermanentError as exc:
                dead.append((record, exc))
            except Skip as exc:  # a type this consumer does not handle: counted, committed, not dead
                obs.SKIPPED.labels(self.service, record.topic, obs.bounded_event_type(exc.event_type)).inc()
            except Exception as exc:
                if is_transient(exc):
                    raise  # an outage: the service stops and its restart replays the batch
                log.exception("decode failed", topic=record.topic, partition=record.partition, offset=record.offset)
                dead.append((record, PermanentError("decode_error", f"{type(exc).__name__}: {exc}")))
        events = await self._apply(items, dead)
        await publish(self.kafka, events, self.service)
        await self._dead_letter(dead)
        offsets: dict[TopicPartition, int] = {}
        for record in records:  # records of a partition come in offset order
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        self._uncommitted.update(offsets)
        await self._commit_handled()
        elapsed = time.perf_counter() - started
        dead_ids = {id(r) for r, _ in dead}
        for topic in {tp.topic for tp in offsets}:
            processed = sum(1 for r in records if r.topic == topic and id(r) not in dead_ids)
            obs.CONSUMED.labels(self.service, topic, "processed").inc(processed)
            obs.BATCH_SECONDS.labels(self.service, topic).observe(elapsed)

    async def _commit_handled(self, force: bool = False) -> None:
        """Commit the offsets of the batches handled, at most every ``commit_interval_ms`` unless
        ``force`` (stopping): at tens of records a second a batch is a record or two, and a
        commit per batch per consumer group cost the broker and the services more than the records
        (issue 21). The commit runs while the next batch is handled: losing it to a crash only means
        those batches are replayed, which the idempotent writes absorb. Commits stay in order."""
        interval = self.settings.kafka.commit_interval_ms / 1000
        if not self._uncommitted or (not force and time.monotonic() - self._committed_at < interval):
            return
        await self._finish_commit()
        assert self.consumer is not None
        offsets, self._uncommitted = self._uncommitted, {}
        self._committed_at = time.monotonic()
        self._commit = asyncio.ensure_future(self.consumer.commit(offsets))

    async def _finish_commit(self) -> None:
        """Wait for the previous commit. If a rebalance took the partitions meanwhile, the commit
        fails and the new owner replays the batch, which the idempotent writes absorb."""
        if self._commit is None:
            return
        try:
            await self._commit
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offset commit lost to a rebalance; the batch will be replayed", error=repr(exc))
        finally:
            self._commit = None

    async def _apply(self, items: list[tuple[Record, T]], dead: list[tuple[Record, PermanentError]]) -> list[Event]:
        if not items:
            return []
        try:
            return await self._with_retries(lambda: self.spec.handler.apply(items), attempts=4)
        except Exception as exc:  # not transient and still failing: find the poison record
            log.warning("batch failed, applying records one by one", error=repr(exc), size=len(items))
        events: list[Event] = []
        for item in items:
            try:
                events += await self._with_retries(functools.partial(self.spec.handler.apply, [item]), attempts=2)
            except Exception as exc:
                dead.append((item[0], PermanentError("handler_error", f"{type(exc).__name__}: {exc}")))
        return events

    async def _with_retries(self, attempt: Callable[[], Awaitable[list[Event]]], attempts: int) -> list[Event]:
        """Retry transient failures forever (the store or broker will come back) and any other
        failure up to ``attempts`` tries; a PermanentError raised by apply is never retried."""

        def give_up(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return exc is not None and not is_transient(exc) and state.attempt_number >= attempts

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            for topic in self._batch_topics:
                obs.HANDLER_RETRIES.labels(self.service, topic).inc()
            log.warning("handler attempt failed, retrying", error=repr(exc), attempt=state.attempt_number)

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: not isinstance(e, PermanentError)),
            wait=wait_exponential(multiplier=0.1, max=5),
            stop=give_up,
            before_sleep=before_sleep,
            reraise=True,
        )
        async def call() -> list[Event]:  # tenacity needs a coroutine function, not a lambda
            return await attempt()

        return await retrying(call)

    async def _dead_letter(self, dead: list[tuple[Record, PermanentError]]) -> None:
        futures = []
        for record, exc in dead:
            # the detail may quote the input, lone surrogates included: escape what UTF-8 cannot carry
            detail = exc.detail[:2000].encode("utf-8", "backslashreplace")
            headers = [(k, v.encode()) for k, v in record.headers.items() if not k.startswith("dlq_")]
            headers += [
                ("dlq_reason", exc.reason.encode()),
                ("dlq_detail", detail),
                ("dlq_original_topic", record.topic.encode()),
                ("dlq_original_partition", str(record.partition).encode()),
                ("dlq_original_offset", str(record.offset).encode()),
                ("dlq_service", self.service.encode()),
            ]
            log.warning("dead-lettered", reason=exc.reason, detail=exc.detail[:200], topic=record.topic,
                        partition=record.partition, offset=record.offset)
            futures.append(await self.kafka.send(
                self.dead_letter_topic, value=record.value, key=record.key.encode() or None, headers=headers
            ))
            obs.DEAD_LETTERS.labels(self.service, exc.reason).inc()
            obs.CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
        if futures:
            await asyncio.gather(*futures)
