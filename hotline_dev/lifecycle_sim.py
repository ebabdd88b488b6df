"""Simulated people around a running platform: the handling units (承办单位), the district
office (区12345热线办, at supervision and at routing's dispatch desk for returns) and the city's
callback centre (市12345回访). Used by ``hotline simulate --lifecycle`` and the
end-to-end tests, so a demo shows whole lifecycles and the benchmark can measure tickets
through to closure.

The player follows ``hotline.cases.v1`` and ``city.results.v1`` and reacts to each step of
the tickets it plays, after a realistic (random, scaled) delay, through the public APIs with
development tokens (a unit's token for a unit, an office token for the office). Each ticket
follows a :class:`Path` (straight through, extension approved or rejected, parked, failed
review, unsatisfied evaluation then redo or close, an evaluation that arrives before its
result, a return refused or re-dispatched). Every command carries a deterministic idempotency
key and is retried while the platform is away (a service killed and restarted), so a crash
neither loses nor doubles a step.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf import json_format
from google.protobuf.message import Message

from hotline import kafka, pb
from hotline.auth import issue
from hotline.envelope import EventTypes, Record
from hotline.logging import get_logger
from hotline.settings import Settings
from hotline.v1 import (
    case_pb2,
    events_pb2,
    lifecycle_pb2,
    park_pb2,
    park_pb2_grpc,
    routing_pb2,
    services_pb2,
    services_pb2_grpc,
)

log = get_logger(__name__)


class Path(StrEnum):
    STRAIGHT = "straight"  # sign off, contact, reply, pass, satisfied
    EXTENSION_APPROVED = "extension_approved"
    EXTENSION_REJECTED = "extension_rejected"
    PARKED = "parked"  # parked with two progress reports, then replied
    REVIEW_FAILED = "review_failed"  # the first reply fails review and is redone
    UNSATISFIED_REDO = "unsatisfied_redo"  # the first result is evaluated unsatisfied; redone; then satisfied
    UNSATISFIED_CLOSE = "unsatisfied_close"  # unsatisfied; the office closes it with an explanation
    EARLY_EVALUATION = "early_evaluation"  # the evaluation arrives before the result is reported
    RETURN_REFUSED = "return_refused"  # the unit asks to return it; routing refuses
    RETURN_REDISPATCHED = "return_redispatched"  # the unit returns it; routing re-dispatches to another unit


# Shares a demo plays by default (the district's rough proportions); tests pass their own.
DEFAULT_SHARES: dict[Path, float] = {
    Path.STRAIGHT: 0.55, Path.EXTENSION_APPROVED: 0.06, Path.EXTENSION_REJECTED: 0.03, Path.PARKED: 0.03,
    Path.REVIEW_FAILED: 0.08, Path.UNSATISFIED_REDO: 0.08, Path.UNSATISFIED_CLOSE: 0.03,
    Path.EARLY_EVALUATION: 0.03, Path.RETURN_REFUSED: 0.05, Path.RETURN_REDISPATCHED: 0.06,
}
OFFICE_SUBJECT = "sim:office"
REDO_REASON = "诉求人反映问题仍未解决，请重办"
CLOSE_EXPLANATION = "已多次协调，诉求超出政策范围，已向诉求人解释说明"
REDISPATCH_TO = ("DP02", "DP03")  # 区住房和城乡建设委员会, else 区城市管理委员会: where approved returns go
CASE_EVENTS = EventTypes(
    events_pb2.CaseOpened, lifecycle_pb2.CaseSignedOff, lifecycle_pb2.ContactRecorded, lifecycle_pb2.CaseReplied,
    lifecycle_pb2.ExtensionRequested, lifecycle_pb2.ExtensionDecided, lifecycle_pb2.CaseParked,
    lifecycle_pb2.ProgressReported, lifecycle_pb2.ReturnRequested, lifecycle_pb2.ReturnRefused,
    lifecycle_pb2.ReviewDecided, lifecycle_pb2.CaseEvaluated, lifecycle_pb2.RedoDecided, lifecycle_pb2.CaseClosed,
    lifecycle_pb2.AssistContributed, lifecycle_pb2.AssistWaived, park_pb2.ParkRequested,
)
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN,
             grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.RESOURCE_EXHAUSTED}


def choose_paths(ticket_ids: Iterable[str], shares: Mapping[Path, float] = DEFAULT_SHARES,
                 seed: int = 0) -> dict[str, Path]:
    """A path for each ticket, by weighted draw (seeded: the same ids give the same paths)."""
    rng = random.Random(seed)
    paths, weights = list(shares), list(shares.values())
    return {tid: rng.choices(paths, weights)[0] for tid in ticket_ids}


def round_robin(ticket_ids: Iterable[str], paths: Iterable[Path] = tuple(Path)) -> dict[str, Path]:
    """Every path in turn (tests: each path gets its share exactly)."""
    order = list(paths)
    return {tid: order[i % len(order)] for i, tid in enumerate(ticket_ids)}


@dataclass
class Stats:
    commands: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    evaluations: int = 0
    routing_decisions: int = 0
    closed: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    closed_after: dict[str, float] = field(default_factory=dict)  # ticket -> seconds from start to closure


class Player:
    """Plays the people around the platform for the tickets in ``paths`` (see the module doc)."""

    def __init__(self, settings: Settings, paths: Mapping[str, Path], *, delay: float = 0.5, seed: int = 0,
                 waive_every: int = 3, from_beginning: bool = True, strict: bool = False,
                 hold: Callable[[str], bool] | None = None) -> None:
        self.settings = settings
        self.paths = dict(paths)
        self.delay = delay
        self.rng = random.Random(seed)
        self.waive_every = waive_every
        self.from_beginning = from_beginning
        self.strict = strict  # stop at the first refused or failed step (tests)
        # records of tickets not (yet) played whose id ``hold`` accepts are kept for ``add``: a
        # ticket whose id is known only once it exists (a deputy's submission) may open first
        self.hold = hold
        self.held: dict[str, list[Any]] = {}
        self.stats = Stats()
        self.tasks: set[asyncio.Task[None]] = set()
        self.seen: set[str] = set()
        self.tokens: dict[str, str] = {}
        self.channel: grpc.aio.Channel | None = None
        self.routing_channel: grpc.aio.Channel | None = None
        self.stub: services_pb2_grpc.SupervisionServiceStub | None = None
        self.park_stub: park_pb2_grpc.ParkServiceStub | None = None
        self.producer: AIOKafkaProducer | None = None
        self.ready = asyncio.Event()
        # (ticket, dispatch round) whose return routing has decided, whoever decided it: routing itself
        # refuses a return asked after its limit at once (ReturnRefused comes without the office's
        # decision), and an approved one closes the round (CaseClosed, re-dispatched)
        self.returns_decided: set[tuple[str, int]] = set()
        self.clock: Callable[[], float] = time.monotonic
        self.deadline = float("inf")  # the run's: a step waiting for the platform waits at most this long

    # ---------------------------------------------------------------- running

    def add(self, paths: Mapping[str, Path]) -> None:
        self.paths.update(paths)
        for key in paths:
            for m in self.held.pop(key, []):
                self._on_record(m)

    def done(self) -> bool:
        return set(self.paths) <= self.stats.closed

    async def run(self, until: Callable[[], bool] | None = None, timeout: float = 600) -> Stats:
        """Follow the topics and react until ``until()`` (default: every ticket closed)."""
        until = until or self.done
        s = self.settings
        self.channel = grpc.aio.insecure_channel(f"{s.bind_host}:{s.ports.grpc('supervision')}")
        self.stub = services_pb2_grpc.SupervisionServiceStub(self.channel)
        self.park_stub = park_pb2_grpc.ParkServiceStub(self.channel)
        self.producer = kafka.producer(s)
        consumer = kafka.consumer(s, enable_auto_commit=False, isolation_level="read_committed")
        await self.producer.start()
        await consumer.start()
        deadline = time.monotonic() + timeout
        self.deadline = self.clock() + timeout
        try:
            topics = [s.topics.name("case_events"), s.topics.name("city_results")]
            partitions = [TopicPartition(t, p) for t in topics for p in await _partitions(consumer, t)]
            consumer.assign(partitions)
            if self.from_beginning:
                await consumer.seek_to_beginning(*partitions)
            else:
                await consumer.seek_to_end(*partitions)
                for tp in partitions:
                    await consumer.position(tp)  # resolve the end now, before tickets are published
            self.ready.set()
            while not until():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"lifecycles not done within {timeout} s: "
                                       f"{len(self.stats.closed)}/{len(self.paths)} closed")
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                for messages in batches.values():
                    for m in messages:
                        self._on_record(m)
                if self.strict and self.stats.errors:
                    raise RuntimeError(f"a simulated step failed: {self.stats.errors[0]}")
            return self.stats
        finally:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await consumer.stop()
            await self.producer.stop()
            await self.channel.close()
            if self.routing_channel is not None:
                await self.routing_channel.close()

    def _on_record(self, m: Any) -> None:
        headers = {k: v.decode("utf-8", "replace") for k, v in (m.headers or ())}
        event_id = headers.get("event_id", "")
        key = m.key.decode() if m.key else ""
        result = None
        if m.topic == self.settings.topics.name("city_results"):
            result = json_format.Parse(m.value, lifecycle_pb2.CityResult(), ignore_unknown_fields=True)
            key = result.ticket_id
        if key not in self.paths:
            if self.hold is not None and self.hold(key):
                self.held.setdefault(key, []).append(m)
            return
        if event_id and event_id in self.seen:
            return  # republished by an outbox after a crash: the same event
        self.seen.add(event_id)
        if result is not None:
            self._spawn(self._callback(result))
            return
        record = Record(m.topic, m.partition, m.offset, key, m.value or b"", headers, m.timestamp)
        try:
            event = CASE_EVENTS.decode(record)
        except Exception:
            return  # an event this player does not react to
        self._react(event)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.errors.append(repr(exc))
                log.warning("simulated step failed", error=repr(exc))

        task = asyncio.ensure_future(guarded())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ---------------------------------------------------------------- reactions

    def _react(self, event: Message) -> None:
        case: events_pb2.Case = event.case  # type: ignore[attr-defined]
        tid, path = case.ticket_id, self.paths[case.ticket_id]
        match event:
            case events_pb2.CaseOpened():
                self._spawn(self._handle(case, path))
            case lifecycle_pb2.ReturnRequested():
                self._spawn(self._routing(case, path))
            case lifecycle_pb2.ReturnRefused():
                self.returns_decided.add((tid, case.dispatch_round))
                self._spawn(self._handle(case, path, after_return=True))
            case lifecycle_pb2.ExtensionRequested():
                approve = path == Path.EXTENSION_APPROVED
                self._spawn(self._office(case, "DecideExtension", lifecycle_pb2.DecideExtensionRequest(
                    ticket_id=tid, approved=approve, reason="同意延期" if approve else "延期理由不充分，请按期办结")))
            case lifecycle_pb2.ExtensionDecided():
                self._spawn(self._reply(case))
            case lifecycle_pb2.CaseReplied():
                fail = path == Path.REVIEW_FAILED and case.redo_round == 0
                self._spawn(self._review(case, path, fail))
            case lifecycle_pb2.ReviewDecided(passed=True) if not case.city_ticket_id:
                # not the city's ticket (a deputy's): its rating comes the same way, for the result it had
                self._spawn(self._evaluate(tid, tid, satisfied=True, result_id=case.result_id))
            case lifecycle_pb2.ReviewDecided(passed=False) | lifecycle_pb2.RedoDecided(redo=True):
                self._spawn(self._reply(case))
            case lifecycle_pb2.CaseEvaluated(needs_decision=True):
                redo = path == Path.UNSATISFIED_REDO
                self._spawn(self._office(case, "DecideRedo", lifecycle_pb2.DecideRedoRequest(
                    ticket_id=tid, redo=redo,
                    reason=REDO_REASON if redo else CLOSE_EXPLANATION)))
            case lifecycle_pb2.CaseClosed(closure=case_pb2.CLOSURE_REDISPATCHED):
                self.returns_decided.add((tid, case.dispatch_round))
            case lifecycle_pb2.CaseClosed():
                self.stats.closed.add(tid)
                self.stats.closed_after[tid] = time.monotonic() - self.stats.started

    async def _review(self, case: events_pb2.Case, path: Path, fail: bool) -> None:
        tid = case.ticket_id
        if path == Path.EARLY_EVALUATION:  # the callback centre calls before the result is reported
            await self._evaluate(case.city_ticket_id or tid, tid, satisfied=True, pause=False,
                                 result_id=f"{tid}/result/{case.dispatch_round}/{case.redo_round}")
            await self._until_kept(tid)  # the office reviews once supervision holds the early evaluation
        await self._office(case, "Review", lifecycle_pb2.ReviewRequest(
            ticket_id=tid, passed=not fail, reason="办理结果未附现场照片，请重办" if fail else "审核通过"))

    async def _until_kept(self, ticket_id: str, timeout: float = 300) -> None:
        assert self.stub is not None
        metadata = (("authorization", f"Bearer {self._token('office')}"),)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                get_case: Any = self.stub.GetCase  # an aio stub: the call is awaitable
                case = await get_case(services_pb2.GetCaseRequest(ticket_id=ticket_id), metadata=metadata, timeout=30)
                if case.pending_evaluations:
                    return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:
                    raise
            await asyncio.sleep(0.2)

    async def _pause(self) -> None:
        if self.delay > 0:
            await asyncio.sleep(self.rng.expovariate(1 / self.delay))

    async def _handle(self, case: events_pb2.Case, path: Path, after_return: bool = False) -> None:
        """A handling unit (and its assisting units) from the case's opening to the reply."""
        tid, unit = case.ticket_id, case.primary_unit.unit_id
        step = f"{tid}/{case.dispatch_round}"
        await self._pause()
        if path in (Path.RETURN_REFUSED, Path.RETURN_REDISPATCHED) and case.dispatch_round == 1 and not after_return:
            await self._unit(unit, "RequestReturn", f"{step}/return", lifecycle_pb2.RequestReturnRequest(
                ticket_id=tid, reason="该诉求属于区住建委职责范围，非本单位职责"))
            return
        if case.state == events_pb2.CASE_STATE_AWAITING_SIGN_OFF:
            await self._unit(unit, "SignOff", f"{step}/sign-off", lifecycle_pb2.SignOffRequest(ticket_id=tid,
                                                                                             note="已签收"))
        for task in case.assists:
            await self._unit(task.unit_id, "SignOff", f"{step}/assist-sign-off/{task.unit_id}",
                             lifecycle_pb2.SignOffRequest(ticket_id=tid))
        await self._pause()
        await self._unit(unit, "RecordContact", f"{step}/contact", lifecycle_pb2.RecordContactRequest(
            ticket_id=tid, channel=case_pb2.CONTACT_CHANNEL_PHONE, outcome=case_pb2.CONTACT_OUTCOME_REACHED,
            note="已电话联系诉求人，了解具体情况"))
        for i, task in enumerate(case.assists):
            if self.waive_every and _stable(tid) % self.waive_every == 0 and i == 0:
                await self._office(case, "WaiveAssist", lifecycle_pb2.WaiveAssistRequest(
                    ticket_id=tid, unit_id=task.unit_id, reason="主办单位已能独立办结"),
                    key=f"{step}/waive/{task.unit_id}")
            else:
                await self._unit(task.unit_id, "Contribute", f"{step}/contribute/{task.unit_id}",
                                 lifecycle_pb2.ContributeRequest(ticket_id=tid, text="已配合主办单位现场核查处置"))
        await self._pause()
        if path in (Path.EXTENSION_APPROVED, Path.EXTENSION_REJECTED) and case.dispatch_round == 1:
            await self._unit(unit, "RequestExtension", f"{step}/extension", lifecycle_pb2.RequestExtensionRequest(
                ticket_id=tid, working_days=5, reason="涉及多个部门，需协调施工单位"))
            return  # the reply follows the office's decision
        if path == Path.PARKED and case.dispatch_round == 1:
            target = (datetime.now(UTC) + timedelta(days=180)).date().isoformat()
            await self._unit(unit, "Park", f"{step}/park", lifecycle_pb2.ParkRequest(
                ticket_id=tid, plan="纳入明年老旧小区改造计划，分阶段实施", target_date=target,
                reason="需财政立项，短期内无法解决"))
            await self._pause()  # the office decides the park request (挂账审批, issue #22)
            await self._call("DecidePark", park_pb2.DecideParkRequest(ticket_id=tid, approved=True, reason="同意挂账"),
                             self._token("office"), f"{step}/park-decision")
            for n in (1, 2):
                await self._pause()
                await self._unit(unit, "ReportProgress", f"{step}/progress/{n}", lifecycle_pb2.ReportProgressRequest(
                    ticket_id=tid, progress=f"第{n}次进展：已完成方案设计和预算申报"))
        await self._reply(case)

    async def _reply(self, case: events_pb2.Case) -> None:
        await self._pause()
        tid = case.ticket_id
        await self._unit(case.primary_unit.unit_id, "Reply", f"{tid}/{case.dispatch_round}/reply/{case.redo_round}",
                         lifecycle_pb2.ReplyRequest(
                             ticket_id=tid, result=case_pb2.REPLY_RESULT_RESOLVED,
                             text="经现场核查，问题已处理完毕，已向诉求人反馈。",
                             attachments=[case_pb2.Attachment(uri=f"https://files.example/{tid}/1.jpg",
                                                              name="现场照片.jpg", content_type="image/jpeg")]))

    async def _routing(self, case: events_pb2.Case, path: Path) -> None:
        """The office at routing's dispatch desk decides the return (退单审核): refused, or approved
        and re-dispatched to another unit (routing publishes the next round's TicketAssigned)."""
        await self._pause()
        tid = case.ticket_id
        returning = case.primary_unit.unit_id
        target = next(u for u in REDISPATCH_TO if u != returning)
        request = routing_pb2.DecideReturnRequest(
            ticket_id=tid, approved=path != Path.RETURN_REFUSED,
            reason="经核实属于该单位职责" if path == Path.RETURN_REFUSED else "经核实属于区住建委职责，改派",
            primary_unit_id="" if path == Path.RETURN_REFUSED else target)
        assert self.channel is not None
        decide: Any = services_pb2_grpc.RoutingServiceStub(self._routing_channel()).DecideReturn
        metadata = (("authorization", f"Bearer {self._token('office')}"),
                    ("idempotency-key", f"sim/{tid}/{case.dispatch_round}/return-decision"))
        wait = 0.2
        # Routing learns of the return from ReturnRequested, relayed from supervision's outbox and
        # consumed by routing's returns consumer: under load that takes as long as the backlog
        # ahead of it (minutes in a 1,000-lifecycle run), so the office waits until its desk holds
        # the return for as long as the run lasts, not a fixed time. Routing may decide it first:
        # a return asked after its limit is refused at once (ReturnRefused): nothing is left to decide.
        while (tid, case.dispatch_round) not in self.returns_decided:
            try:
                await decide(request, metadata=metadata, timeout=30)
                break
            except grpc.aio.AioRpcError as exc:
                waiting = exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
                if not (exc.code() in RETRYABLE or waiting) or self.clock() > self.deadline:
                    self.stats.refused.append(f"DecideReturn {tid}: {exc.code().name} {exc.details()}")
                    raise
                self.stats.retries += 1
                await asyncio.sleep(wait)
                wait = min(wait * 2, 2.0)
        else:
            return  # routing refused it itself
        self.stats.commands["DecideReturn"] += 1
        self.stats.routing_decisions += 1

    def _routing_channel(self) -> grpc.aio.Channel:
        if self.routing_channel is None:
            s = self.settings
            self.routing_channel = grpc.aio.insecure_channel(f"{s.bind_host}:{s.ports.grpc('routing')}")
        return self.routing_channel

    async def _callback(self, result: lifecycle_pb2.CityResult) -> None:
        """The city's callback centre (回访) calls the citizen about a result."""
        path = self.paths[result.ticket_id]
        if path == Path.EARLY_EVALUATION:
            return  # evaluated already, before the result came
        unhappy = path in (Path.UNSATISFIED_REDO, Path.UNSATISFIED_CLOSE) and result.redo_round == 0
        await self._evaluate(result.city_ticket_id, result.ticket_id, satisfied=not unhappy,
                             result_id=result.result_id)

    async def _evaluate(self, city_ticket_id: str, ticket_id: str, satisfied: bool, result_id: str,
                        pause: bool = True) -> None:
        if pause:
            await self._pause()
        evaluation = lifecycle_pb2.CityEvaluation(
            evaluation_id=f"EV-{hashlib.sha1(result_id.encode()).hexdigest()[:16]}", city_ticket_id=city_ticket_id,
            result_id=result_id,
            resolution=case_pb2.RESOLUTION_RESOLVED if satisfied else case_pb2.RESOLUTION_UNRESOLVED,
            satisfaction=case_pb2.SATISFACTION_SATISFIED if satisfied else case_pb2.SATISFACTION_UNSATISFIED,
            comment="满意，问题已解决" if satisfied else "问题没有解决，仍然存在",
            evaluated_at=pb.ts(datetime.now(UTC)))
        value = json_format.MessageToJson(evaluation, indent=None).encode()
        await self._send(self.settings.topics.name("city_evaluations"), value, city_ticket_id,
                         [("content_type", b"application/json")])
        self.stats.evaluations += 1

    async def _send(self, topic: str, value: bytes, key: str, headers: list[tuple[str, bytes]]) -> None:
        """Publish, retrying while the broker is away (killed and restarting): the records carry
        deterministic ids, so a send repeated after a lost acknowledgement changes nothing."""
        assert self.producer is not None
        wait = 0.2
        while True:
            try:
                await self.producer.send_and_wait(topic, value, key=key.encode(), headers=headers)
                return
            except KafkaError as exc:
                self.stats.retries += 1
                log.info("simulated send retried", topic=topic, error=repr(exc))
                await asyncio.sleep(wait)
                wait = min(wait * 2, 2.0)

    # ---------------------------------------------------------------- calling the platform

    def _token(self, role: str, unit_id: str = "") -> str:
        key = f"{role}:{unit_id}"
        if key not in self.tokens:
            subject = OFFICE_SUBJECT if role == "office" else f"sim:unit:{unit_id}"
            self.tokens[key] = issue(self.settings.auth, role, subject=subject, unit_id=unit_id, ttl_minutes=24 * 60)
        return self.tokens[key]

    async def _unit(self, unit_id: str, method: str, key: str, request: Message) -> events_pb2.Case:
        return await self._call(method, request, self._token("unit", unit_id), key)

    async def _office(self, case: events_pb2.Case, method: str, request: Message, key: str = "") -> None:
        if not key:
            await self._pause()
        key = key or f"{case.ticket_id}/{case.dispatch_round}/{method}/{case.redo_round}/{case.revision}"
        await self._call(method, request, self._token("office"), key)

    async def _call(self, method: str, request: Message, token: str, key: str) -> events_pb2.Case:
        assert self.stub is not None
        call = getattr(self.park_stub if method in ("DecidePark", "Resume") else self.stub, method)
        metadata = (("authorization", f"Bearer {token}"), ("idempotency-key", f"sim/{key}"))
        wait = 0.2
        while True:
            try:
                answer: events_pb2.Case = await call(request, metadata=metadata, timeout=30)
                self.stats.commands[method] += 1
                return answer
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:
                    self.stats.refused.append(f"{method} {key}: {exc.code().name} {exc.details()}")
                    log.warning("simulated command refused", method=method, key=key, error=exc.details())
                    raise
                self.stats.retries += 1
                await asyncio.sleep(wait)  # the platform is away (restarting): same key, no double step
                wait = min(wait * 2, 2.0)


def _stable(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()  # noqa: SLF001 (aiokafka has no public refresh)
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")
