"""One writer of the case document, at run time (issue #20), and supervision's follow-ups in process.

Supervision's parts are wired as services/supervision/main.py wires them, against the real store,
with the ``cases`` collection guarded: a write to it from anywhere but the case repository
(services/supervision/cases/store.py) raises. Then every kind of case write runs: a first round's
cases open (the consumer's insert), lifecycle commands, the office's 督办 level (the levels wing),
a merge (并单), the timers' scan (a stage claimed) and the follow-ups the outbox runs in process:
the parent closes -> its 督办 settles and the merged cases close through the lifecycle; a first
overdue -> level 1. Run again on the same staged events (a crash before the outbox's delete),
the follow-ups change nothing: exactly once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.mongo_client import AsyncMongoClient

from hotline import audit, mongo, pb, policies
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.calendar import WorkCalendar
from hotline.clock import ManualClock
from hotline.commands import CommandBus, DomainError
from hotline.envelope import Record
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.policy import Role
from hotline.settings import LimitSettings, Settings, SlaSettings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.cases import sla as sla_module
from services.supervision.cases import store as store_module
from services.supervision.cases.commands import (
    CaseCommands,
    CaseHandlers,
    CasePolicies,
    Evaluate,
    RecordContact,
    Reply,
    Review,
    SignOff,
    register,
)
from services.supervision.cases.handlers import DeadlineAlarms
from services.supervision.cases.lifecycle import Limits, PeriodDeadlines, Policy
from services.supervision.cases.store import CaseClocks, CaseRepository, CaseStore
from services.supervision.levels.escalation import Rules as EscalationRules
from services.supervision.levels.escalation_handlers import EscalationFollowUps
from services.supervision.levels.escalation_store import INDEXES as ESCALATION_INDEXES
from services.supervision.levels.escalation_store import EscalationCommands

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 09:00 in the district
TZ = ZoneInfo("Asia/Shanghai")
WRITER = "services/supervision/cases/store.py"
PASSING = ("/pymongo/", "/hotline/mongo.py")  # the driver and the kit's store helpers the writer calls
WRITE_METHODS = ("insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one",
                 "delete_many", "bulk_write", "find_one_and_update", "find_one_and_replace", "find_one_and_delete")
OFFICE = Principal("o-li", Role.OFFICE)
CITY = Principal("city:callback-centre", Role.SYSTEM)
ROUTING = Principal.system("routing")


class ForeignWrite(AssertionError):
    pass


class Guard:
    """Counts the writes to ``cases`` by path, and refuses any from outside the case repository."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.by_writer: dict[str, int] = {}
        self.models: list[Any] = []  # bulk-write models made by CaseRepository.write_ops (kept alive: ids)

    def check_caller(self, what: str) -> None:
        frame: FrameType | None = sys._getframe(2)
        while frame is not None and (any(p in frame.f_code.co_filename for p in PASSING)
                                     or frame.f_code.co_filename == __file__):
            frame = frame.f_back
        where = frame.f_code.co_filename if frame else "?"
        if not where.endswith(WRITER):
            raise ForeignWrite(f"{what} on cases from {where}:{frame.f_lineno if frame else 0}")
        name = frame.f_code.co_name if frame else "?"
        self.by_writer[name] = self.by_writer.get(name, 0) + 1

    def check_models(self, models: Sequence[Any]) -> None:
        known = {id(m) for m in self.models}
        for model in models:
            if getattr(model, "_namespace", None) == self.namespace:
                if id(model) not in known:
                    raise ForeignWrite(f"a bulk-write model on cases not made by the case repository: {model!r}")
                self.by_writer["write_ops"] = self.by_writer.get("write_ops", 0) + 1


@pytest.fixture
async def parts(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:
    client = mongo.client(settings)
    db = client[f"{settings.mongo.database_prefix}_writer_{uuid.uuid4().hex[:6]}"]
    guard = Guard(db["cases"].full_name)
    install(monkeypatch, guard, db.name)
    clock = ManualClock(T0)
    published: list[dict[str, Any]] = []
    outbox = Outbox(db, Producer(published), "supervision")
    bus = CommandBus(client, db, outbox, "supervision", clock)
    shipped = json.loads(SlaSettings().policy_file.read_text("utf-8"))
    sla_store = policies.PolicyStore(db, sla_module.POLICY_NAME)
    calendar = WorkCalendar()
    await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES, **store_module.INDEXES, **ESCALATION_INDEXES,
                                    **policies.INDEXES})
    await sla_store.ensure(shipped, "system:supervision", T0, sla_module.parse_policy(shipped).version)
    sla_policies = policies.LivePolicy(sla_store, sla_module.parse_policy)
    store = CaseStore(db)
    timers = store.clock_timers(outbox, clock, DeadlineAlarms(store, "t.cases"))
    base = Policy(deadlines=PeriodDeadlines(calendar), tz=TZ, open_case=lambda a, n: events_pb2.Case(),
                  limits=Limits.of(LimitSettings()), results_topic="t.city.results")
    case_policies = CasePolicies(base, store, CaseClocks(sla_policies, calendar, timers))
    cases_bus = MessageBus(bus.uow)  # the case commands' one handler each, wired as main.py does
    register(cases_bus, CaseHandlers(store, case_policies, clock, "t.cases"))
    commands = CaseCommands(cases_bus, store, case_policies, clock, "t.cases")
    escalation = EscalationCommands(bus, db, EscalationRules.load(base.deadlines, TZ), clock, "t.cases",
                                    lambda _: None, "t.city.results", clocks=case_policies.clocks, cases=commands)
    follow_ups = EscalationFollowUps(escalation, "t.cases")
    outbox.follow(follow_ups.follow)
    try:
        yield {"db": db, "guard": guard, "clock": clock, "store": store, "commands": commands, "timers": timers,
               "escalation": escalation, "outbox": outbox, "published": published, "follow_ups": follow_ups,
               "policies": case_policies}
    finally:
        monkeypatch.undo()
        await client.drop_database(db.name)
        await client.close()


def install(monkeypatch: pytest.MonkeyPatch, guard: Guard, database: str) -> None:
    for name in WRITE_METHODS:
        original = getattr(AsyncCollection, name)

        def guarded(self: AsyncCollection[Any], *args: Any, __original: Any = original, __name: str = name,
                    **kwargs: Any) -> Any:
            if self.name == "cases" and self.database.name == database:
                guard.check_caller(__name)
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(AsyncCollection, name, guarded)
    client_bulk = AsyncMongoClient.bulk_write

    def guarded_bulk(self: AsyncMongoClient[Any], models: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        guard.check_models(models)
        return client_bulk(self, models, *args, **kwargs)

    monkeypatch.setattr(AsyncMongoClient, "bulk_write", guarded_bulk)
    write_ops = CaseRepository.write_ops

    async def recorded(self: CaseRepository, case: events_pb2.Case, session: Any) -> list[Any]:
        ops = await write_ops(self, case, session)
        guard.models.extend(ops)
        return ops

    monkeypatch.setattr(CaseRepository, "write_ops", recorded)


class Producer:
    """The relay's Kafka producer, recording what it would publish."""

    def __init__(self, published: list[dict[str, Any]]) -> None:
        self.published = published

    async def send(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> Any:
        self.published.append({"topic": topic, "key": key.decode(), "type": dict(headers)["event_type"].decode()})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def assigned(tid: str, unit: str = "DP01") -> events_pb2.TicketAssigned:
    return events_pb2.TicketAssigned(
        assignment=events_pb2.Assignment(ticket_id=tid, primary_unit=events_pb2.Unit(unit_id=unit, name="区市场监管局"),
                                         dispatch_round=1, assigned_at=pb.ts(T0), category="市容环卫"),
        received_at=pb.ts(T0 - timedelta(minutes=5)), city_ticket_id=tid)


async def open_cases(parts: dict[str, Any], tids: Sequence[str]) -> None:
    from services.supervision.cases.handlers import CaseInbox

    inbox = CaseInbox(parts["store"], parts["commands"], "t.cases", "t.city.evaluations")
    records = [(Record("t.assignments", 0, i, tid, b"", {}, 0), assigned(tid)) for i, tid in enumerate(tids)]
    await inbox.apply(records)  # type: ignore[arg-type]


async def close_satisfied(parts: dict[str, Any], tid: str) -> events_pb2.Case:
    handle, unit = parts["commands"].handle, Principal("u-dp01", Role.UNIT, unit_id="DP01")
    await handle(SignOff(lifecycle_pb2.SignOffRequest(ticket_id=tid), unit, f"{tid}/sign"))
    await handle(RecordContact(lifecycle_pb2.RecordContactRequest(
        ticket_id=tid, channel=case_pb2.CONTACT_CHANNEL_PHONE, outcome=case_pb2.CONTACT_OUTCOME_REACHED), unit,
        f"{tid}/contact"))
    await handle(Reply(lifecycle_pb2.ReplyRequest(ticket_id=tid, result=case_pb2.REPLY_RESULT_RESOLVED,
                                                  text="已现场处置完毕"), unit, f"{tid}/reply"))
    reviewed = await handle(Review(lifecycle_pb2.ReviewRequest(ticket_id=tid, passed=True), OFFICE, f"{tid}/review"))
    evaluation = lifecycle_pb2.CityEvaluation(
        evaluation_id=f"EV-{tid}", city_ticket_id=tid, result_id=reviewed.result_id,
        resolution=case_pb2.RESOLUTION_RESOLVED, satisfaction=case_pb2.SATISFACTION_SATISFIED,
        evaluated_at=pb.ts(parts["clock"].now()))
    closed: events_pb2.Case = await handle(Evaluate(evaluation, CITY, f"evaluation/EV-{tid}"))
    return closed


async def relay(parts: dict[str, Any]) -> list[dict[str, Any]]:
    """Relay until the outbox is empty; returns the staged documents the follow-ups saw."""
    seen: list[dict[str, Any]] = []
    outbox: Outbox = parts["outbox"]
    for _ in range(10):
        docs = await outbox.collection.find({}).sort("_id", 1).to_list()
        if not docs:
            return seen
        seen += docs
        await outbox.relay_once()
    raise AssertionError("the outbox never emptied")


async def trail(parts: dict[str, Any]) -> int:
    count: int = await parts["db"][audit.COLLECTION].count_documents({})
    return count


async def test_only_the_repository_writes_cases_and_the_follow_ups_run_once_in_process(parts: dict[str, Any]) -> None:
    guard: Guard = parts["guard"]
    store: CaseStore = parts["store"]
    escalation: EscalationCommands = parts["escalation"]
    clock: ManualClock = parts["clock"]
    with pytest.raises(ForeignWrite):  # the guard bites: a write from here is refused
        await parts["db"]["cases"].update_one({"_id": "X"}, {"$set": {"state": "CASE_STATE_ARCHIVED"}})

    await open_cases(parts, ["P1", "C2", "C3", "L4"])  # the consumer's insert of a first round
    # the early warnings' facts come a moment later (a lingering side consumer): an open case has
    # no suggestion yet, an unknown ticket is not found
    assert await escalation.suggestions("P1", 10) == []
    with pytest.raises(DomainError, match="not found"):
        await escalation.suggestions("NO-SUCH", 10)
    clock.advance(timedelta(minutes=10))
    merged = await escalation.merge(sv.MergeTicketsRequest(parent_ticket_id="P1", ticket_ids=["C2", "C3"],
                                                           reason="同一事件"), OFFICE, "merge-1")
    assert list(merged.merged) == ["C2", "C3"]
    await escalation.run("raise_supervision", sv.RaiseSupervisionRequest(ticket_id="P1", level=2, reason="群众反映"),
                         OFFICE, "p-l2")
    assert (await store.get("P1")).supervision_level == 2  # type: ignore[union-attr]
    await relay(parts)  # nothing closed yet: nothing followed
    clock.advance(timedelta(minutes=10))
    closed = await close_satisfied(parts, "P1")
    assert closed.state == events_pb2.CASE_STATE_ARCHIVED and closed.closure == case_pb2.CLOSURE_SATISFIED

    before_follow = await trail(parts)
    staged = await relay(parts)  # the follow-ups: settle P1's 督办, close C2 and C3 through the lifecycle
    children = await store.get_many(["C2", "C3"])
    assert all(c.state == events_pb2.CASE_STATE_ARCHIVED and c.closure == case_pb2.CLOSURE_MERGED and
               c.reply.text == "已现场处置完毕" for c in children.values()), children
    assert [e["action"] for e in await store.history("C2")].count("close_merged") == 1
    supervision = await escalation.get("P1", OFFICE)
    assert [r.state for r in supervision.supervision.records] == [sv.SUPERVISION_STATE_RESOLVED]
    published = [(p["type"], p["key"]) for p in parts["published"]]
    assert ("hotline.v1.CaseClosed", "C2") in published and ("hotline.v1.CaseClosed", "C3") in published
    assert sum(p["topic"] == "t.city.results" for p in parts["published"]) == 3  # P1's result, C2's, C3's (回传)

    # a crash before the outbox's delete: the same events followed again change nothing (exactly once)
    after_follow = await trail(parts)
    assert after_follow > before_follow
    await parts["follow_ups"].follow(staged)
    assert await trail(parts) == after_follow and await parts["db"]["outbox"].count_documents({}) == 0

    # a first overdue -> level 1, from the timers' scan (its stage claimed through the case repository)
    late = await store.get("L4")
    assert late is not None and late.supervision_level == 0
    clock.set(pb.dt(late.sign_off_due) + timedelta(minutes=1))
    assert await parts["timers"].fire_due() >= 1
    staged = await relay(parts)
    assert any(d["headers"] and dict((k, bytes(v)) for k, v in d["headers"])["event_type"] ==
               b"hotline.v1.OverdueSupervisionRaised" for d in staged)
    assert (await store.get("L4")).supervision_level == 1  # type: ignore[union-attr]
    records = (await escalation.get("L4", OFFICE)).supervision.records
    assert [(r.level, r.state) for r in records] == [(1, sv.SUPERVISION_STATE_OPEN)]
    again = await trail(parts)
    await parts["follow_ups"].follow(staged)  # followed again: still one level-1 record
    assert await trail(parts) == again and len((await escalation.get("L4", OFFICE)).supervision.records) == 1

    # every path that wrote the cases went through the case repository (openings too: OpenCase -> write_ops)
    assert {"write_ops", "save_supervision", "write_clocks"} <= set(guard.by_writer), guard.by_writer


def test_the_guard_sees_a_foreign_write_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame check itself: a caller outside cases/store.py is refused, one inside is counted."""
    guard = Guard("db.cases")

    def from_here() -> None:
        guard.check_caller("update_one")

    with pytest.raises(ForeignWrite):
        (lambda: from_here())()
    code = compile("def write(check):\n    check('update_one')\n", f"/x/{WRITER}", "exec")
    scope: dict[str, Any] = {}
    exec(code, scope)  # noqa: S102 (a function whose frame claims to be the writer's)

    def through_writer() -> None:
        scope["write"](lambda what: guard.check_caller(what))

    through_writer()
    assert guard.by_writer == {"write": 1}
