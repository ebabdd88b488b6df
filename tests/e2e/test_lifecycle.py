"""End to end: 200 tickets through every lifecycle path, with the five services as processes,
real Kafka and the real store. The units, the office (at supervision, and at routing's desk for
returns) and the city's callback centre are played by hotline_dev/lifecycle_sim.py through the
public APIs with tokens.

Supervision is SIGKILLed mid-stream; afterwards every ticket must have exactly the events its
path implies (no step lost, none doubled), exactly one city result per passed reply, the
counts metrics keeps must match, and a full replay of every topic must change nothing.
"""

from __future__ import annotations

import asyncio
import collections
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format

from hotline.commands import HTTP_STATUS
from hotline.settings import SERVICES, Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, park_pb2, services_pb2, services_pb2_grpc
from hotline.v1 import supervision_pb2 as sv
from hotline_dev.launcher import ServiceProcess
from hotline_dev.lifecycle_sim import Path, Player, _stable, round_robin
from hotline_dev.simulator import generate
from tests.e2e.test_pipeline import CONSUMED_TOPICS, SIDE_GROUPS, drained, first_difference, summary
from tests.support import (
    channel,
    eventually,
    publish_raw,
    publish_tickets,
    read_topic,
    rewind_group,
    snapshot,
)

pytestmark = pytest.mark.e2e

N = 200
# What the lifecycle writes, in every service (the whole platform's replay is test_pipeline's)
LIFECYCLE_COLLECTIONS = {
    "supervision": ("cases", "audit", "commands", "evaluation_inbox"),
    "deputy_liaison": ("submissions",),
    "metrics": ("facts", "rollups", "kpi_tickets", "kpi_dispatches", "kpi_handlings"),
}
S = events_pb2
L = lifecycle_pb2
EVENT_TYPES = {t.DESCRIPTOR.full_name: t for t in (
    S.CaseOpened, L.CaseSignedOff, L.ContactRecorded, L.CaseReplied, L.ExtensionRequested, L.ExtensionDecided,
    L.CaseParked, L.ProgressReported, L.ReturnRequested, L.ReturnRefused, L.ReviewDecided, L.CaseEvaluated,
    L.RedoDecided, L.CaseClosed, L.AssistContributed, L.AssistWaived,
    park_pb2.ParkRequested)}  # 挂账申请: the unit asks, the office parks (issue #22)
# supervision levels (督办, supervision.proto) on the same topic: level 1 follows a poor evaluation
SUPERVISION_EVENTS = {t.DESCRIPTOR.full_name for t in (sv.SupervisionRaised, sv.SupervisionClosed,
                                                       sv.SupervisionUpdated)}


def expected_events(path: Path, assists: int, waived: int) -> collections.Counter[str]:
    """The case events a path implies, written from the rules (not from the player)."""
    def names(*types: Any) -> list[str]:
        return [t.DESCRIPTOR.name for t in types]

    handled = names(S.CaseOpened, *[L.CaseSignedOff] * (1 + assists), L.ContactRecorded,
                    *[L.AssistWaived] * waived, *[L.AssistContributed] * (assists - waived))
    passed = names(L.CaseReplied, L.ReviewDecided, L.CaseEvaluated, L.CaseClosed)
    extra = {
        Path.STRAIGHT: [], Path.EARLY_EVALUATION: [],
        Path.EXTENSION_APPROVED: names(L.ExtensionRequested, L.ExtensionDecided),
        Path.EXTENSION_REJECTED: names(L.ExtensionRequested, L.ExtensionDecided),
        Path.PARKED: names(park_pb2.ParkRequested, L.CaseParked, L.ProgressReported, L.ProgressReported),
        Path.REVIEW_FAILED: names(L.CaseReplied, L.ReviewDecided),
        Path.UNSATISFIED_REDO: names(L.CaseReplied, L.ReviewDecided, L.CaseEvaluated, L.RedoDecided),
        Path.RETURN_REFUSED: names(L.ReturnRequested, L.ReturnRefused),
    }
    if path == Path.UNSATISFIED_CLOSE:
        return collections.Counter(handled + names(L.CaseReplied, L.ReviewDecided, L.CaseEvaluated, L.RedoDecided,
                                                   L.CaseClosed))
    if path == Path.RETURN_REDISPATCHED:  # round 1 returned before sign-off; round 2 (no assisting units) handles it
        return collections.Counter(names(S.CaseOpened, L.ReturnRequested, L.CaseClosed, S.CaseOpened,
                                         L.CaseSignedOff, L.ContactRecorded) + passed)
    return collections.Counter(handled + extra[path] + passed)


def closed_as_last_event(case: events_pb2.Case, last: events_pb2.Case) -> bool:
    """The stored case is its last lifecycle event's, but for a supervision level raised since:
    an automatic raise (a poor evaluation, an overdue deadline) applied after the case closed
    still raises the archived case's level (escalation.py, announced by a SupervisionRaised
    carrying the case), so the final level does not depend on how far the consumer lagged."""
    expected = events_pb2.Case()
    expected.CopyFrom(last)
    expected.supervision_level = max(last.supervision_level, case.supervision_level)
    return case.state == S.CASE_STATE_ARCHIVED and case == expected


def expected_results(tid: str, path: Path) -> set[str]:
    if path == Path.RETURN_REDISPATCHED:
        return {f"{tid}/result/2/0"}
    if path == Path.REVIEW_FAILED:
        return {f"{tid}/result/1/1"}  # the failed reply never went to the city
    if path == Path.UNSATISFIED_REDO:
        return {f"{tid}/result/1/0", f"{tid}/result/1/1"}
    return {f"{tid}/result/1/0"}


async def case_events(settings: Settings, ids: set[str]) -> dict[str, list[tuple[str, Any]]]:
    """Our tickets' case events, one per event id, in topic order."""
    records = await read_topic(settings, settings.topics.name("case_events"), expect=None, timeout=5)
    seen: set[str] = set()
    out: dict[str, list[tuple[str, Any]]] = collections.defaultdict(list)
    for m in records:
        key = m.key.decode()
        headers = {k: v.decode() for k, v in m.headers}
        if key not in ids or headers["event_id"] in seen or headers["event_type"] in SUPERVISION_EVENTS:
            continue
        seen.add(headers["event_id"])
        message = EVENT_TYPES[headers["event_type"]]()
        message.ParseFromString(m.value)
        out[key].append((message.DESCRIPTOR.name, message))
    return out


async def city_results(settings: Settings, ids: set[str]) -> dict[str, list[L.CityResult]]:
    records = await read_topic(settings, settings.topics.name("city_results"), expect=None, timeout=5)
    out: dict[str, list[L.CityResult]] = collections.defaultdict(list)
    for m in records:
        headers = {k: v.decode() for k, v in m.headers}
        assert headers["content_type"] == "application/json"
        result = json_format.Parse(m.value, L.CityResult())
        if result.ticket_id in ids:
            assert m.key.decode() == result.city_ticket_id and headers["event_id"] == result.result_id
            out[result.ticket_id].append(result)
    return out


def stage_counts(events: dict[str, list[tuple[str, Any]]]) -> collections.Counter[str]:
    """What metrics must count, from the events (one per dispatch and redo round)."""
    counts: collections.Counter[str] = collections.Counter()
    for per_ticket in events.values():
        for name, e in per_ticket:
            stage = {
                "CaseOpened": "case_opened", "CaseReplied": "replied", "ExtensionRequested": "extension_requested",
                "CaseParked": "parked", "ReturnRequested": "return_requested", "ReturnRefused": "return_refused",
                "CaseEvaluated": "evaluated", "CaseClosed": "closed",
            }.get(name)
            if name == "CaseSignedOff" and not e.assisting:
                stage = "signed_off"
            elif name == "ContactRecorded" and e.first:
                stage = "first_contact"
            elif name == "ExtensionDecided":
                stage = "extension_approved" if e.approved else "extension_rejected"
            elif name == "ReviewDecided":
                stage = "review_passed" if e.passed else "review_failed"
            elif name == "RedoDecided" and e.redo:
                stage = "redo"
            if stage:
                counts[stage] += 1
    return counts


async def test_200_tickets_through_every_path_with_supervision_killed_mid_stream(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    await drained(settings)
    before = await summary(settings)
    tickets = list(generate(N, seed=808))
    now = datetime.now(UTC)
    for t in tickets:  # received now: contacts and deadlines are measured from it
        t.received_at.FromDatetime(now)
        t.dispatched_at.FromDatetime(now)
    ids = [t.city_ticket_id for t in tickets]
    paths = round_robin(ids)
    player = Player(settings, paths, delay=0.03, seed=808, strict=True)
    playing = asyncio.create_task(player.run(timeout=420))
    await asyncio.wait_for(player.ready.wait(), 30)
    await publish_tickets(settings, tickets)

    # SIGKILL supervision while lifecycles are under way; the units and the office retry with their keys
    async def commands_done() -> int:
        if playing.done():
            playing.result()  # a failed player fails the test now
        return sum(player.stats.commands.values())

    await eventually(commands_done, lambda n: n >= 600, timeout=120, every=0.1)
    platform["supervision"].kill()
    await asyncio.sleep(0.5)
    platform["supervision"].start()
    await asyncio.to_thread(platform["supervision"].wait_ready, 90)
    stats = await playing
    print(f"\nlifecycles: {len(stats.closed)} closed, {sum(stats.commands.values())} commands, {stats.retries} retries,"
          f" closure p50 {sorted(stats.closed_after.values())[len(stats.closed_after) // 2]:.1f} s,"
          f" last {max(stats.closed_after.values()):.1f} s")
    assert not stats.refused and not stats.errors, (stats.refused + stats.errors)[:5]
    assert stats.retries > 0, "the kill interrupted no command: move it"
    await drained(settings)

    # every ticket: exactly the events of its path, in a legal order, and the final case
    wanted = set(ids)
    events = await case_events(settings, wanted)
    states_seen: set[int] = set()
    async with channel(settings, "supervision") as chan:
        stub = services_pb2_grpc.SupervisionServiceStub(chan)
        for tid in ids:
            path, got = paths[tid], events[tid]
            opened = got[0][1].case
            assists = len(opened.assists)
            waived = 1 if assists and _stable(tid) % 3 == 0 and path != Path.RETURN_REDISPATCHED else 0
            if path == Path.RETURN_REDISPATCHED:
                assists = 0
            assert collections.Counter(n for n, _ in got) == expected_events(path, assists, waived), (tid, path)
            revisions = [e.case.revision for _, e in got]
            assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions), (tid, revisions)
            states_seen |= {e.case.state for _, e in got}
            case = await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
            assert closed_as_last_event(case, got[-1][1].case), (tid, case, got[-1][1].case)
            assert case.closure == (case_pb2.CLOSURE_EXPLAINED if path == Path.UNSATISFIED_CLOSE
                                    else case_pb2.CLOSURE_SATISFIED), tid
            assert case.redo_round == (1 if path in (Path.REVIEW_FAILED, Path.UNSATISFIED_REDO) else 0)
            assert case.dispatch_round == (2 if path == Path.RETURN_REDISPATCHED else 1)
            if path == Path.EXTENSION_APPROVED:
                assert case.extension.status == case_pb2.EXTENSION_STATUS_APPROVED
                assert case.reply_due.seconds > case.extension.previous_reply_due.seconds
            if path == Path.PARKED:
                assert case.park.reports == 2
            assert not case.pending_evaluations
        assert states_seen == set(S.CaseState.values()) - {S.CASE_STATE_UNSPECIFIED}

        # the history lists every step with its actor
        for path in Path:
            tid = next(t for t in ids if paths[t] == path)
            history = await stub.GetCaseHistory(L.GetCaseHistoryRequest(ticket_id=tid))
            actions = [e.action for e in history.entries]
            assert actions[0] == "open_case" and "review" in actions, (path, actions)
            assert all(e.actor.subject and e.actor.role for e in history.entries)
            roles = {e.action: e.actor.role for e in history.entries}
            assert roles["review"] == "office" and roles["reply"] == "unit" and roles["evaluate"] == "system"
    early = [t for t in ids if paths[t] == Path.EARLY_EVALUATION]
    async with channel(settings, "supervision") as chan:
        stub = services_pb2_grpc.SupervisionServiceStub(chan)
        applied_at_review = 0
        for tid in early:
            history = await stub.GetCaseHistory(L.GetCaseHistoryRequest(ticket_id=tid))
            review = next(e for e in history.entries if e.action == "review")
            applied_at_review += "hotline.v1.CaseEvaluated" in review.event_type
    assert applied_at_review == len(early), "every early evaluation was kept and applied at review"

    # the city: exactly one result per passed reply
    results = await city_results(settings, wanted)
    for tid in ids:
        got_ids = [r.result_id for r in results[tid]]
        assert set(got_ids) == expected_results(tid, paths[tid]), tid
        for r in results[tid]:
            assert r.text and r.handling_unit.unit_id and r.result == case_pb2.REPLY_RESULT_RESOLVED
            assert r.HasField("reviewed_at") and r.HasField("first_contact_at")

    # metrics: every stage per dispatch and redo round
    want = stage_counts(events)
    want["received"] = N
    want["assigned"] = N + sum(1 for p in paths.values() if p == Path.RETURN_REDISPATCHED)

    def grew(s: services_pb2.Summary) -> bool:
        return all(s.stages.get(k, 0) - before.stages.get(k, 0) == n for k, n in want.items())

    after = await eventually(lambda: summary(settings), grew, timeout=60)
    assert after.received - before.received == N


async def test_units_and_the_office_act_over_http_within_their_scope(platform: dict[str, ServiceProcess],
                                                                     settings: Settings) -> None:
    (ticket,) = generate(1, seed=809)
    now = datetime.now(UTC)
    ticket.received_at.FromDatetime(now)
    ticket.dispatched_at.FromDatetime(now)
    tid = ticket.city_ticket_id
    await publish_tickets(settings, [ticket])
    async with channel(settings, "supervision") as chan:
        stub = services_pb2_grpc.SupervisionServiceStub(chan)

        async def opened() -> Any:
            try:
                return await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
            except Exception:
                return None

        case = await eventually(opened, lambda c: c is not None, timeout=120)
    unit = case.primary_unit.unit_id
    base = f"http://{settings.bind_host}:{settings.ports.supervision_http}/cases/{tid}"
    from tests.support import http

    async with http(settings, "unit", unit_id=unit) as me, http(settings, "unit", unit_id=f"X{unit}") as other, \
            http(settings, "office") as office:
        r = await other.post(f"{base}/sign-off", json={}, headers={"Idempotency-Key": "h-1"})
        assert r.status_code == 404, r.text  # another unit's case: not found, existence not leaked
        r = await office.post(f"{base}/sign-off", json={}, headers={"Idempotency-Key": "h-2"})
        assert r.status_code == 403, r.text  # the office does not sign off for a unit
        r = await me.post(f"{base}/sign-off", json={})
        assert r.status_code == 422, r.text  # no idempotency key
        first = await me.post(f"{base}/sign-off", json={"note": "收到"}, headers={"Idempotency-Key": "h-sign"})
        again = await me.post(f"{base}/sign-off", json={"note": "收到"}, headers={"Idempotency-Key": "h-sign"})
        assert first.status_code == again.status_code == 200 and first.json() == again.json(), first.text
        assert first.json()["state"] == "CASE_STATE_IN_PROGRESS"
        r = await me.post(f"{base}/reply", json={"result": "REPLY_RESULT_RESOLVED", "text": "已处理"},
                          headers={"Idempotency-Key": "h-reply"})
        assert r.status_code == 409 and "contact" in r.json()["detail"], r.text
        r = await office.post(f"{base}/review", json={"passed": True}, headers={"Idempotency-Key": "h-review"})
        assert r.status_code == 409 and "CASE_STATE_REPLIED" in r.json()["detail"], r.text
        r = await me.post(f"{base}/contacts", json={"channel": "CONTACT_CHANNEL_PIGEON"},
                          headers={"Idempotency-Key": "h-contact"})
        assert r.status_code == HTTP_STATUS["invalid_argument"], r.text
        r = await me.post(f"{base}/extension", json={"workingDays": 12, "reason": "需协调"},
                          headers={"Idempotency-Key": "h-ext"})
        assert r.status_code == HTTP_STATUS["invalid_argument"] and "1 to 10" in r.json()["detail"], r.text
        r = await me.get(f"{base}/history")
        assert r.status_code == 200, r.text
        entries = r.json()["entries"]
        assert [e["action"] for e in entries] == ["open_case", "sign_off"]
        assert entries[1]["actor"]["unit_id"] == unit and entries[1]["reason"] == "收到"
        r = await other.get(f"{base}/history")
        assert r.status_code == 404
    signed = [e for _, e in (await case_events(settings, {tid}))[tid] if isinstance(e, L.CaseSignedOff)]
    assert len(signed) == 1, "a retried command emitted its event again"

    # a bad evaluation is dead-lettered like a bad ticket
    bad_key = f"bad-eval-{tid}"
    await publish_raw(settings, settings.topics.name("city_evaluations"),
                      [(bad_key.encode(), json.dumps({"cityTicketId": tid, "satisfaction": "SATISFACTION_SATISFIED"})
                        .encode())])

    async def dead() -> list[Any]:
        found = await read_topic(settings, settings.topics.name("dead_letters"), expect=None, timeout=3)
        return [m for m in found if m.key and m.key.decode() == bad_key]

    (letter,) = await eventually(dead, lambda got: len(got) == 1, timeout=60)
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["dlq_reason"] == "missing_field" and headers["dlq_service"] == "supervision"
    assert "evaluation_id" in headers["dlq_detail"]


async def test_a_deputy_follows_every_step_of_their_ticket(platform: dict[str, ServiceProcess],
                                                          settings: Settings) -> None:
    from tests.support import http

    base = f"http://{settings.bind_host}:{settings.ports.deputy_liaison_http}"
    async with http(settings, "admin") as admin:
        r = await admin.post(f"{base}/deputies", json={"deputy_id": "D808", "name": "李代表", "level": "区"},
                             headers={"Idempotency-Key": "deputy-D808"})
        assert r.status_code in (200, 201, 409), r.text
    async with http(settings, "deputy", deputy_id="D808") as deputy:
        r = await deputy.post(f"{base}/submissions", headers={"Idempotency-Key": "lifecycle-deputy-1"}, json={
            "title": "小区路灯损坏", "content": "瑞金路街道瑞金北村12栋门前路灯损坏一个月无人修",
            "address": "瑞金路街道瑞金北村12栋", "ticket_type": "help"})
        assert r.status_code == 201, r.text
        submitted = r.json()
        tid = submitted["ticket_id"]
        player = Player(settings, {tid: Path.STRAIGHT}, delay=0.02, strict=True)
        stats = await player.run(timeout=240)
        assert tid in stats.closed

        async def view() -> dict[str, Any]:
            return dict((await deputy.get(f"{base}/submissions/{submitted['submission_id']}")).json())

        seen = await eventually(view, lambda v: v.get("status") == "closed", timeout=60)
    statuses = [e["status"] for e in seen["timeline"]]
    for status in ("case_opened", "signed_off", "contacted", "replied", "review_passed", "evaluated", "closed"):
        assert status in statuses, statuses
    assert len({e["event_id"] for e in seen["timeline"]}) == len(statuses)


async def test_replaying_every_topic_after_the_lifecycles_changes_nothing(
    platform: dict[str, ServiceProcess], settings: Settings
) -> None:
    await drained(settings)
    before = await snapshot(settings, SERVICES)
    before_summary = await summary(settings)
    for proc in platform.values():
        proc.stop()
    groups = {f"{service}.main": topics for service, topics in CONSUMED_TOPICS.items()} | SIDE_GROUPS
    for group, topics in groups.items():  # every consumer group of every service: a full replay
        await rewind_group(settings, f"{settings.topics.prefix}hotline.{group}",
                           [settings.topics.name(t) for t in topics])
    for proc in platform.values():
        proc.start()
    for proc in platform.values():
        await asyncio.to_thread(proc.wait_ready, 90)
    await drained(settings)
    after = await snapshot(settings, SERVICES)
    changed = {}
    for service, names in LIFECYCLE_COLLECTIONS.items():
        for collection in names:
            old, new = before[service].get(collection, []), after[service].get(collection, [])
            if old != new:
                changed[f"{service}.{collection}"] = first_difference(old, new)
    assert not changed, changed
    after_summary = await summary(settings)
    after_summary.ClearField("computed_at")
    before_summary.ClearField("computed_at")
    assert after_summary == before_summary
    results_before = await read_topic(settings, settings.topics.name("city_results"), expect=None, timeout=3)
    await asyncio.sleep(2)  # the relay would have published anything a replay staged
    results_after = await read_topic(settings, settings.topics.name("city_results"), expect=None, timeout=3)
    assert len(results_after) == len(results_before), "a replay published city results again"
