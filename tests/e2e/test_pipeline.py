"""End to end: the five services as processes, real Kafka, real MongoDB-wire store."""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

import grpc
import pytest

from hotline.settings import SERVICES, Settings
from hotline.v1 import events_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from hotline_dev.launcher import ServiceProcess
from hotline_dev.simulator import bad_messages, generate
from tests.support import (
    channel,
    city_json,
    eventually,
    group_lag,
    publish_raw,
    publish_tickets,
    read_topic,
    rewind_group,
    snapshot,
)
from tests.support import http as http_client

pytestmark = pytest.mark.e2e

CONSUMED_TOPICS = {
    "intake": ["city_tickets", "deputy_submissions"],
    "routing": ["ticket_events"],
    "supervision": ["assignment_events", "city_evaluations"],
    "deputy_liaison": ["case_events"],
    "metrics": ["ticket_events", "assignment_events", "case_events"],
}
# the services' other consumer groups (rt.group("<purpose>")): drained too before a snapshot
SIDE_GROUPS = {
    "intake.units": ["assignment_events"],
    # (no supervision.escalation: supervision's follow-ups of its own case events run in process, issue #20)
    "metrics.kpi": ["ticket_events", "assignment_events", "case_events"],
    "deputy_liaison.facts": ["ticket_events", "assignment_events", "case_events"],
    "routing.returns": ["case_events"],
    "supervision.warnings": ["ticket_events"],
    "supervision.deputy": ["deputy_events"],
}


async def summary(settings: Settings) -> services_pb2.Summary:
    async with channel(settings, "metrics") as chan:
        return await services_pb2_grpc.MetricsServiceStub(chan).GetSummary(services_pb2.GetSummaryRequest())


async def cases_of(settings: Settings, ticket_ids: list[str]) -> dict[str, events_pb2.Case]:
    found = {}
    async with channel(settings, "supervision") as chan:
        stub = services_pb2_grpc.SupervisionServiceStub(chan)
        for tid in ticket_ids:
            try:
                found[tid] = await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
    return found


async def all_cases(settings: Settings, ids: list[str], timeout: float = 90) -> dict[str, events_pb2.Case]:
    """Wait until every ticket has an opened case; poll only those still missing."""
    found: dict[str, events_pb2.Case] = {}

    async def probe() -> int:
        found.update(await cases_of(settings, [i for i in ids if i not in found]))
        return len(found)

    await eventually(probe, lambda n: n == len(ids), timeout=timeout, every=0.5)
    return found


async def drained(settings: Settings, timeout: float = 90) -> None:
    """Every consumer group has committed everything there is."""
    async def total_lag() -> int:
        lags = [await group_lag(settings, f"{settings.topics.prefix}hotline.{s}.main",
                                [settings.topics.name(t) for t in CONSUMED_TOPICS[s]]) for s in SERVICES]
        lags += [await group_lag(settings, f"{settings.topics.prefix}hotline.{g}",
                                 [settings.topics.name(t) for t in topics]) for g, topics in SIDE_GROUPS.items()]
        return sum(lags)

    await eventually(total_lag, lambda lag: lag == 0, timeout=timeout, every=0.5)


def first_difference(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    if len(before) != len(after):
        return f"{len(before)} documents before, {len(after)} after"
    for old, new in zip(before, after, strict=True):
        if old != new:
            keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            return f"_id {old.get('_id')!r}: " + "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)
    return "same"


async def test_tickets_reach_opened_cases_with_matching_counts(platform: dict, settings: Settings) -> None:
    before = await summary(settings)
    tickets = list(generate(200, seed=1))
    ids = await publish_tickets(settings, tickets)

    cases = await all_cases(settings, ids)
    assert set(cases) == set(ids)
    for ticket in tickets:
        case = cases[ticket.city_ticket_id]
        assert case.state == events_pb2.CASE_STATE_AWAITING_SIGN_OFF
        assert case.primary_unit.unit_id, "every case has a primary unit"
        assert case.reply_due.seconds > case.received_at.seconds
        assert case.sign_off_due.seconds > case.opened_at.seconds

    def grew(s: services_pb2.Summary) -> bool:
        return (s.received - before.received, s.assigned - before.assigned,
                s.cases_opened - before.cases_opened) == (200, 200, 200)

    after = await eventually(lambda: summary(settings), grew, timeout=60)
    by_type = collections.Counter(ticket_pb2.TicketType.Name(t.ticket_type) for t in tickets)
    for name, n in by_type.items():
        assert after.by_ticket_type[name] - before.by_ticket_type.get(name, 0) == n
    assert sum(after.by_unit_type.values()) - sum(before.by_unit_type.values()) == 200
    assert sum(after.by_category.values()) - sum(before.by_category.values()) == 200


async def test_bad_input_is_dead_lettered_and_nothing_valid_is_lost(platform: dict, settings: Settings) -> None:
    city_topic = settings.topics.name("city_tickets")
    dlq_topic = settings.topics.name("dead_letters")
    tag = uuid.uuid4().hex[:6]  # our dead letters are told apart by key, whatever else the topic holds
    bad = {f"bad-{tag}-{name}": value for name, value in bad_messages()}
    good = list(generate(20, seed=2))
    records: list[tuple[bytes | None, bytes]] = [(key.encode(), value) for key, value in bad.items()]
    records[1:1] = [(t.city_ticket_id.encode(), city_json(t)) for t in good]  # bad ones before and after
    await publish_raw(settings, city_topic, records)

    await all_cases(settings, [t.city_ticket_id for t in good])

    async def ours() -> dict[str, Any]:
        found = await read_topic(settings, dlq_topic, expect=None, timeout=3)
        return {m.key.decode(): m for m in found if m.key and m.key.decode() in bad}

    by_key = await eventually(ours, lambda got: len(got) == len(bad), timeout=60)
    for key, value in bad.items():
        message = by_key[key]
        headers = {k: v.decode() for k, v in message.headers}
        assert message.value == value, "the dead letter carries the original bytes"
        assert headers["dlq_reason"] in {"malformed_json", "schema", "missing_field", "oversize"}
        assert headers["dlq_detail"]
        assert headers["dlq_original_topic"] == city_topic
        assert int(headers["dlq_original_offset"]) >= 0
        assert headers["dlq_original_partition"].isdigit()
        assert headers["dlq_service"] == "intake"


async def test_grpc_and_http_errors_are_precise(platform: dict, settings: Settings) -> None:
    async with channel(settings, "intake") as chan:
        stub = services_pb2_grpc.IntakeServiceStub(chan)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetTicket(services_pb2.GetTicketRequest(ticket_id="NO-SUCH-TICKET"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert "NO-SUCH-TICKET" in (missing.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.GetTicket(services_pb2.GetTicketRequest())
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with channel(settings, "metrics") as chan:
        with pytest.raises(grpc.aio.AioRpcError) as bad_date:
            await services_pb2_grpc.MetricsServiceStub(chan).GetSummary(
                services_pb2.GetSummaryRequest(from_date="26/11/2026"))
        assert bad_date.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with http_client(settings) as http, http_client(settings, "deputy", deputy_id="nobody") as nobody:
        base = f"http://{settings.bind_host}"
        r = await http.get(f"{base}:{settings.ports.supervision_http}/cases/NO-SUCH")
        assert r.status_code == 404 and "NO-SUCH" in r.json()["detail"]
        r = await http.get(f"{base}:{settings.ports.supervision_http}/cases", params={"state": "flying"})
        assert r.status_code == 400
        r = await nobody.post(f"{base}:{settings.ports.deputy_liaison_http}/submissions",
                              json={"title": "路灯不亮", "content": "中华路路灯不亮已经一周"},
                              headers={"Idempotency-Key": "k1"})
        assert r.status_code == 404 and "未登记" in r.json()["detail"]
        for service in SERVICES:
            r = await http.get(f"{base}:{settings.ports.http(service)}/healthz")
            assert r.status_code == 200 and r.json()["ready"] is True


async def test_deputy_submission_becomes_a_followed_case(platform: dict, settings: Settings) -> None:
    base = f"http://{settings.bind_host}:{settings.ports.deputy_liaison_http}"
    async with http_client(settings, "admin") as admin, http_client(settings, "deputy", deputy_id="D001") as http:
        r = await admin.post(f"{base}/deputies", json={"deputy_id": "D001", "name": "王代表", "level": "区"},
                             headers={"Idempotency-Key": "register-D001"})
        assert r.status_code in (201, 409)
        r = await http.post(f"{base}/submissions", json={
            "title": "绿化带长期无人修剪", "content": "瑞金路绿化带树木遮挡视线，请尽快修剪",
            "address": "瑞金路18号", "ticket_type": "suggestion"}, headers={"Idempotency-Key": "submit-1"})
        assert r.status_code == 201, r.text
        submitted = r.json()
        case = (await all_cases(settings, [submitted["ticket_id"]]))[submitted["ticket_id"]]
        assert case.primary_unit.unit_id

        async def followed() -> dict[str, Any]:
            return (await http.get(f"{base}/submissions/{submitted['submission_id']}")).json()

        view = await eventually(followed, lambda s: s.get("status") == "case_opened", timeout=30)
        assert view["case"]["primary_unit"]["unit_id"] == case.primary_unit.unit_id


async def test_repeat_calls_are_linked_to_earlier_tickets(platform: dict, settings: Settings) -> None:
    tickets = list(generate(7, seed=77))
    for t in tickets[:4]:
        t.caller.phone, t.caller.anonymous = "13900000077", False  # the same caller four times
    tickets[6].address = tickets[5].address = "瑞金路街道瑞金北村77栋"  # two calls about one place
    for t in tickets:  # one at a time, so "earlier" is well defined
        await publish_tickets(settings, [t])
        await all_cases(settings, [t.city_ticket_id])
    async with channel(settings, "intake") as chan:
        stub = services_pb2_grpc.IntakeServiceStub(chan)
        got = {t.city_ticket_id: await stub.GetTicket(services_pb2.GetTicketRequest(ticket_id=t.city_ticket_id))
               for t in tickets}
    ids = [t.city_ticket_id for t in tickets]
    assert list(got[ids[0]].repeat_of) == []
    assert list(got[ids[3]].repeat_of) == [ids[2], ids[1], ids[0]]  # newest first
    assert ids[5] in got[ids[6]].repeat_of
    assert ids[4] not in got[ids[6]].repeat_of


async def test_replaying_every_topic_changes_nothing(platform: dict, settings: Settings) -> None:
    await drained(settings)
    before = await snapshot(settings, SERVICES)
    before_summary = await summary(settings)
    for proc in platform.values():
        proc.stop()
    for service, topics in CONSUMED_TOPICS.items():
        await rewind_group(settings, f"{settings.topics.prefix}hotline.{service}.main",
                           [settings.topics.name(t) for t in topics])
    for proc in platform.values():
        proc.start()
    for proc in platform.values():
        await asyncio.to_thread(proc.wait_ready, 90)
    await drained(settings)
    after = await snapshot(settings, SERVICES)
    for service in SERVICES:
        for collection in before[service]:
            if collection == "outbox":
                continue
            old, new = before[service][collection], after[service][collection]
            assert new == old, f"{service}.{collection} changed: {first_difference(old, new)}"
    after_summary = await summary(settings)
    after_summary.ClearField("computed_at")
    before_summary.ClearField("computed_at")
    assert after_summary == before_summary


@pytest.mark.parametrize("victim", ["intake", "routing", "supervision", "metrics"])
async def test_sigkill_under_load_loses_and_duplicates_nothing(
    platform: dict[str, ServiceProcess], settings: Settings, victim: str
) -> None:
    await drained(settings)
    before = await summary(settings)
    tickets = list(generate(600, seed=100 + SERVICES.index(victim)))
    ids = [t.city_ticket_id for t in tickets]

    async def publish_slowly() -> None:
        for start in range(0, len(tickets), 50):
            await publish_tickets(settings, tickets[start:start + 50])
            await asyncio.sleep(0.1)

    publisher = asyncio.create_task(publish_slowly())
    await asyncio.sleep(0.4)
    platform[victim].kill()
    await asyncio.sleep(0.5)
    platform[victim].start()
    await publisher
    await asyncio.to_thread(platform[victim].wait_ready, 90)

    cases = await all_cases(settings, ids, timeout=120)
    assert len(cases) == len(ids)
    await drained(settings)
    after = await summary(settings)
    assert after.received - before.received == len(ids)
    assert after.assigned - before.assigned == len(ids)
    assert after.cases_opened - before.cases_opened == len(ids)
    snap = await snapshot(settings, ["intake", "routing", "supervision"])
    for service, collection in (("intake", "tickets"), ("routing", "assignments"), ("supervision", "cases")):
        stored = [d["_id"] for d in snap[service][collection]]
        assert len(stored) == len(set(stored))
        assert set(ids) <= set(stored)
