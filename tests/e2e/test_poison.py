"""End to end, issue 15: what intake accepts, every service after it handles; no record stops a
consumer. The five services run as processes, routing with a trained classifier (the one that
failed on a NUL), against the real Kafka and store."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from hotline import mongo, pb
from hotline.settings import Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from hotline_dev.launcher import ServiceProcess
from hotline_dev.simulator import generate
from tests import fuzzing
from tests.e2e.test_pipeline import all_cases, drained, summary
from tests.support import channel, city_json, eventually, publish_raw, publish_tickets, read_topic
from tests.support import http as http_client
from tests.unit.test_classifier import TOPICS, synth_rows, write_csv

pytestmark = pytest.mark.e2e

FAR = "9999-12-31T23:59:59Z"


@pytest.fixture(scope="module")
def platform_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Routing with a small trained classifier, so poison text meets the model as in issue 15."""
    from services.routing.classifier.training import TrainConfig, train

    work = tmp_path_factory.mktemp("poison-model")
    data = write_csv(work / "train.csv", synth_rows(30, seed=5))
    train(data, ["标题", "内容"], "类别", work / "model", config=TrainConfig(cv_folds=0, inner_folds=3))
    return {"HOTLINE_MODEL_DIR": str(work / "model")}


def alive(platform: dict[str, ServiceProcess]) -> dict[str, bool]:
    return {name: bool(p.proc and p.proc.poll() is None) for name, p in platform.items()}


async def dead_letters(settings: Settings, keys: set[str]) -> dict[str, Counter[tuple[str, str]]]:
    """(service, reason) of every dead letter of these keys."""
    found: dict[str, Counter[tuple[str, str]]] = {k: Counter() for k in keys}
    for m in await read_topic(settings, settings.topics.name("dead_letters"), expect=None, timeout=3):
        key = m.key.decode("utf-8", "replace") if m.key else ""
        if key in keys:
            h = {k: v.decode("utf-8", "replace") for k, v in m.headers}
            found[key][(h["dlq_service"], h["dlq_reason"])] += 1
    return found


async def dead_letter_details(settings: Settings, key: str) -> list[dict[str, str]]:
    return [{k: v.decode("utf-8", "replace") for k, v in m.headers}
            for m in await read_topic(settings, settings.topics.name("dead_letters"), expect=None, timeout=3)
            if m.key == key.encode()]


async def test_far_future_and_out_of_order_times_are_dead_lettered_by_intake(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:6]
    good = list(generate(3, seed=150))
    far, early, backwards = (ticket_pb2.CityTicket() for _ in range(3))
    for ticket, name in ((far, "far"), (early, "early"), (backwards, "backwards")):
        ticket.CopyFrom(good[0])
        ticket.city_ticket_id = f"PZ{tag}{name}"
    far.received_at.FromJsonString(FAR)
    far.ClearField("dispatched_at")
    early.received_at.FromJsonString("1999-12-31T23:59:59Z")
    early.ClearField("dispatched_at")
    backwards.dispatched_at.FromJsonString("2001-01-01T00:00:00Z")
    await publish_raw(settings, settings.topics.name("city_tickets"),
                      [(t.city_ticket_id.encode(), city_json(t)) for t in (far, good[1], early, backwards, good[2])])

    await all_cases(settings, [good[1].city_ticket_id, good[2].city_ticket_id])
    keys = {t.city_ticket_id for t in (far, early, backwards)}
    got = await eventually(lambda: dead_letters(settings, keys), lambda d: all(d.values()), timeout=60)
    assert all(got[k] == Counter({("intake", "schema"): 1}) for k in keys), got
    [headers] = await dead_letter_details(settings, far.city_ticket_id)
    assert f"received_at {FAR} is not between 2000-01-01T00:00:00Z and" in headers["dlq_detail"]
    async with channel(settings, "intake") as chan:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await services_pb2_grpc.IntakeServiceStub(chan).GetTicket(
                services_pb2.GetTicketRequest(ticket_id=far.city_ticket_id))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert all(alive(platform).values())


async def test_text_with_nul_emoji_and_extension_b_reaches_an_opened_case(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    ticket = next(generate(1, seed=151))
    ticket.city_ticket_id += "nul"
    ticket.ClearField("category")  # no city category: routing asks the classifier
    ticket.title = "请帮忙\x00看看😀"  # no strong list keywords: routing asks the classifier
    ticket.content = "这件事\x00拖了很久😀𠀀𠀁，一直\x1b[31m没人管\U0002a6d6\r\n第二行\x7f"
    await publish_tickets(settings, [ticket])

    case = (await all_cases(settings, [ticket.city_ticket_id]))[ticket.city_ticket_id]
    assert case.primary_unit.unit_id
    async with channel(settings, "intake") as chan:
        stored = await services_pb2_grpc.IntakeServiceStub(chan).GetTicket(
            services_pb2.GetTicketRequest(ticket_id=ticket.city_ticket_id))
    assert stored.title == "请帮忙看看😀"
    assert stored.content == "这件事拖了很久😀𠀀𠀁，一直[31m没人管\U0002a6d6\n第二行"
    base = f"http://{settings.bind_host}:{settings.ports.routing_http}"
    async with http_client(settings) as http:
        assignment = (await http.get(f"{base}/assignments/{ticket.city_ticket_id}")).json()
        assert assignment["classifier_label"] in TOPICS, "the classifier read the text"
        # routing's own dry run takes text intake never cleaned: the classifier handles it too
        r = await http.post(f"{base}/route", json={"title": "公交\u0000", "content": "司机\u0000绕行😀𠀀\u0000"})
        assert r.status_code == 200, r.text
        assert r.json()["classifier_label"] in TOPICS
    assert all(alive(platform).values())


def raw_event(key: str, message: Any, value: bytes | None = None) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    headers = [("event_type", message.DESCRIPTOR.full_name.encode()), ("event_id", f"{key}/poison".encode()),
               ("correlation_id", key.encode()), ("content_type", b"application/x-protobuf")]
    return key.encode(), message.SerializeToString() if value is None else value, headers


def far_received(ticket_id: str) -> events_pb2.TicketReceived:
    """What intake published for a year-9999 ticket before issue 15."""
    ticket = ticket_pb2.Ticket(ticket_id=ticket_id, city_ticket_id=ticket_id, ticket_type=ticket_pb2.TICKET_TYPE_HELP,
                               content="测试", source="city", urgency=ticket_pb2.URGENCY_NORMAL, channel="phone")
    ticket.received_at.FromJsonString(FAR)
    ticket.dispatched_at.FromJsonString(FAR)
    ticket.ingested_at.CopyFrom(pb.ts(datetime.now(UTC)))
    return events_pb2.TicketReceived(ticket=ticket)


async def publish_events(settings: Settings, topic: str, events: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
                         ) -> None:
    for key, value, headers in events:
        await publish_raw(settings, settings.topics.name(topic), [(key, value)], headers)


async def test_a_poison_record_in_any_consumer_is_dead_lettered_and_the_next_processed(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    await drained(settings)
    before = await summary(settings)
    tag = uuid.uuid4().hex[:6]
    far, g1, g2, g3 = f"PZ{tag}far", f"PZ{tag}g1", f"PZ{tag}g2", f"RD-PZ{tag}g3"
    garbage = b"\xff\xff\xff\xff\x0f not protobuf"
    await publish_events(settings, "ticket_events", [raw_event(far, far_received(far)),
                                                     raw_event(g1, events_pb2.TicketReceived(), garbage)])
    await publish_events(settings, "assignment_events", [raw_event(g2, events_pb2.TicketAssigned(), garbage)])
    await publish_events(settings, "case_events", [raw_event(g3, events_pb2.CaseOpened(), garbage)])
    good = list(generate(5, seed=152))
    await publish_tickets(settings, good)

    await all_cases(settings, [t.city_ticket_id for t in good])
    expected = {
        # No service can hold a deadline in year 9999: routing's dispatch deadline and the deputy service's
        # timeline fail on it, metrics' day cannot hold it; routing assigns nothing, so supervision never sees it
        far: Counter({("routing", "handler_error"): 1, ("deputy_liaison", "decode_error"): 1,
                      ("metrics", "schema"): 1}),
        # metrics reads each topic in three groups (daily counts, the KPI projection, the knowledge base's
        # resolved cases); supervision reads tickets for warnings and for the case search, assignments for
        # cases and for the search; the deputy service follows tickets, assignments and cases for its timelines
        g1: Counter({("routing", "malformed_protobuf"): 1, ("metrics", "malformed_protobuf"): 3,
                     ("supervision", "malformed_protobuf"): 2, ("deputy_liaison", "malformed_protobuf"): 1}),
        g2: Counter({("supervision", "malformed_protobuf"): 2, ("metrics", "malformed_protobuf"): 3,
                     ("intake", "malformed_protobuf"): 1,  # intake follows assignments (handling units)
                     ("deputy_liaison", "malformed_protobuf"): 1}),
        g3: Counter({("deputy_liaison", "malformed_protobuf"): 1, ("metrics", "malformed_protobuf"): 3}),
    }
    got = await eventually(lambda: dead_letters(settings, set(expected)), lambda d: d == expected, timeout=60)
    assert got == expected
    await drained(settings)
    after = await summary(settings)
    assert (after.received - before.received, after.assigned - before.assigned,
            after.cases_opened - before.cases_opened) == (5, 5, 5), "metrics counts the records after the poison"
    assert all(alive(platform).values())


async def test_metrics_stuck_on_a_poison_record_recovers_by_itself_on_restart(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    """Before issue 15, metrics met a year-9999 ticket in decode, exited, was restarted and met
    it again. Its committed offset stands before the record, as it would then: on start it
    dead-letters the record and counts what follows."""
    await drained(settings)
    before = await summary(settings)
    platform["metrics"].stop()
    poison = f"PZ{uuid.uuid4().hex[:6]}stuck"
    await publish_events(settings, "ticket_events", [raw_event(poison, far_received(poison))])
    good = list(generate(3, seed=153))
    await publish_tickets(settings, good)
    await all_cases(settings, [t.city_ticket_id for t in good])

    platform["metrics"].start()
    await asyncio.to_thread(platform["metrics"].wait_ready, 90)
    await drained(settings)
    after = await eventually(lambda: summary(settings), lambda s: s.cases_opened - before.cases_opened >= 3)
    assert (after.received - before.received, after.assigned - before.assigned,
            after.cases_opened - before.cases_opened) == (3, 3, 3)
    got = await dead_letters(settings, {poison})
    assert got[poison][("metrics", "schema")] == 1  # its TicketReceived (routing dead-letters it: no assignment)
    assert all(alive(platform).values())


async def test_fuzzed_city_records_all_end_somewhere_and_no_service_falls(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    """500 generated records (bench/fuzz.py runs 10,000): each is stored, a duplicate or dead-
    lettered with the reason its mutation calls for; every valid one reaches a case and is
    counted; every service is still up. Evaluations (回访) published before their tickets are
    parked in supervision's evaluation inbox (none lost) or dead-lettered by their mutation."""
    await drained(settings)
    run = uuid.uuid4().hex[:6]
    records = fuzzing.generate_records(500, run, seed=15)
    evaluations = fuzzing.generate_evaluations(records, run, seed=15, share=0.2)
    report = await fuzzing.run_fuzz(settings, records, timeout=180, evaluations=evaluations)

    assert report.unaccounted == 0
    assert report.unexpected == []
    assert report.valid_lost == []
    assert report.unclean == []
    assert not report.downstream_dead, report.downstream_dead
    stored = report.outcomes[fuzzing.STORED]
    assert stored == len(report.stored_ids) >= sum(r.valid and r.kind != "duplicate" for r in records)
    assert report.counted == {"received": stored, "assigned": stored, "cases_opened": stored}
    assert sum(report.outcomes.values()) == len(records)
    ev = report.evaluations
    assert ev is not None and ev.records == len(evaluations) > 0
    assert ev.unexpected == [] and ev.valid_lost == [] and ev.outcomes["lost"] == 0, ev.outcomes
    assert ev.outcomes[fuzzing.PARKED] == sum(e.valid for e in evaluations) > 0  # published before their tickets
    assert all(alive(platform).values()), alive(platform)
    for name, proc in platform.items():
        assert proc.healthy(), name


async def test_an_evaluation_before_its_ticket_is_parked_and_applied_once_its_result_is_reported(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    """The city's evaluation (回访) of a ticket the district has not received yet is not dead-
    lettered nor dropped: supervision parks it (evaluation inbox); the ticket arrives, its case
    is handled, and when the office passes the reply the parked evaluation is applied, once."""
    from tests.e2e.test_deputy import drive

    tid, now = f"EARLY{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    evaluation = lifecycle_pb2.CityEvaluation(
        evaluation_id=f"EV-{tid}", city_ticket_id=tid, result_id=f"{tid}/result/1/0",
        resolution=case_pb2.RESOLUTION_RESOLVED, satisfaction=case_pb2.SATISFACTION_SATISFIED, comment="满意",
        evaluated_at=pb.ts(now))
    await publish_raw(settings, settings.topics.name("city_evaluations"),
                      [(tid.encode(), json_format.MessageToJson(evaluation, indent=None).encode())])
    client = mongo.client(settings)
    inbox = client[f"{settings.mongo.database_prefix}_supervision"]["evaluation_inbox"]
    try:
        await eventually(lambda: inbox.find_one({"_id": evaluation.evaluation_id}), lambda d: d is not None)
        await publish_tickets(settings, [ticket_pb2.CityTicket(
            city_ticket_id=tid, ticket_type=ticket_pb2.TICKET_TYPE_HELP, title="路灯不亮",
            content="中华路118号门前路灯不亮一周，夜间出行不便，请尽快维修。", address="中华路118号",
            caller=ticket_pb2.Caller(name="市民"), received_at=pb.ts(now), dispatched_at=pb.ts(now))])
        async with channel(settings, "supervision") as chan:
            stub = services_pb2_grpc.SupervisionServiceStub(chan)

            async def get_case() -> Any:
                try:
                    return await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
                except grpc.aio.AioRpcError:
                    return None
            case = await eventually(get_case, lambda c: c is not None, timeout=90)
            assert await inbox.find_one({"_id": evaluation.evaluation_id}) is not None  # still parked
            await drive(settings, tid, case.primary_unit.unit_id, [u.unit_id for u in case.assisting_units],
                        evaluate=False)
            closed = await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
            history = await stub.GetCaseHistory(lifecycle_pb2.GetCaseHistoryRequest(ticket_id=tid))
        assert closed.state == events_pb2.CASE_STATE_ARCHIVED and not closed.pending_evaluations, closed
        assert closed.evaluation.evaluation_id == evaluation.evaluation_id
        review = next(e for e in history.entries if e.action == "review")
        assert "hotline.v1.CaseEvaluated" in review.event_type  # applied when the result was reported
        assert await inbox.count_documents({"ticket_id": tid}) == 0
    finally:
        await client.close()
    await drained(settings)

    async def evaluated() -> list[Any]:  # published by supervision's outbox relay, which may lag under load
        return [m for m in await read_topic(settings, settings.topics.name("case_events"), None, timeout=5)
                if m.key == tid.encode() and dict(m.headers)["event_type"] == b"hotline.v1.CaseEvaluated"]
    published = await eventually(evaluated, lambda found: len(found) > 0, timeout=120, every=5)
    assert len({dict(m.headers)["event_id"] for m in published}) == 1  # applied once
