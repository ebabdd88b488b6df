"""The lifecycle's edges without I/O: the city's evaluations read like its tickets, metrics'
stages per round, deputy liaison's timeline entries, the case history lines, the examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from hotline import pb
from hotline.envelope import PermanentError, Record, Skip
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2
from services.deputy_liaison.handlers import CaseFollowing
from services.metrics.core import stage_of
from services.supervision.cases.commands import history_entry, reason_of
from services.supervision.cases.core import parse_city_evaluation

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
GOOD = {"evaluationId": "EV-1", "cityTicketId": "C1", "resolution": "RESOLUTION_RESOLVED",
        "satisfaction": "SATISFACTION_SATISFIED", "evaluatedAt": "2026-11-28T03:15:00Z"}


def test_a_good_evaluation_parses_with_either_name_style_and_unknown_fields() -> None:
    e = parse_city_evaluation(json.dumps({**GOOD, "agentId": "A7"}).encode(), NOW)
    assert (e.evaluation_id, e.city_ticket_id, e.satisfaction) == ("EV-1", "C1", case_pb2.SATISFACTION_SATISFIED)
    snake = parse_city_evaluation(json.dumps({"evaluation_id": "EV-2", "city_ticket_id": "C1",
                                              "satisfaction": "SATISFACTION_NOT_REACHED",
                                              "evaluated_at": "2026-11-28T11:00:00+08:00"}).encode(), NOW)
    assert snake.resolution == case_pb2.RESOLUTION_UNSPECIFIED  # not reached: nothing to say about resolution


@pytest.mark.parametrize(("payload", "reason", "mentions"), [
    (b"{not json", "malformed_json", ""),
    (b"[1, 2]", "schema", "object"),
    (json.dumps({**GOOD, "satisfaction": "SO_SO"}).encode(), "schema", "SO_SO"),
    (json.dumps({**GOOD, "satisfaction": 42}).encode(), "schema", ""),
    (json.dumps({k: v for k, v in GOOD.items() if k != "evaluationId"}).encode(), "missing_field", "evaluation_id"),
    (json.dumps({**GOOD, "resolution": None}).encode(), "missing_field", "resolution"),
    (json.dumps({**GOOD, "evaluatedAt": None}).encode(), "missing_field", "evaluated_at"),
    (json.dumps({**GOOD, "evaluatedAt": "2026-12-28T00:00:00Z"}).encode(), "schema", "evaluated_at"),
    (json.dumps({**GOOD, "evaluatedAt": "1999-12-31T00:00:00Z"}).encode(), "schema", "evaluated_at"),
    (json.dumps({**GOOD, "cityTicketId": "C 1; drop"}).encode(), "schema", "city_ticket_id"),
    (json.dumps({**GOOD, "evaluationId": "x" * 200}).encode(), "schema", "evaluation_id"),
    (json.dumps({**GOOD, "comment": "很" * 2001}).encode(), "schema", "comment"),
])
def test_bad_evaluations_are_refused_with_the_dead_letter_reason(payload: bytes, reason: str, mentions: str) -> None:
    with pytest.raises(PermanentError) as caught:
        parse_city_evaluation(payload, NOW)
    assert caught.value.reason == reason
    assert mentions in caught.value.detail


def test_the_documented_examples_are_valid() -> None:
    examples = ROOT / "examples" / "city-results"
    for path in sorted(examples.glob("evaluation-*.json")):
        parse_city_evaluation(path.read_bytes(), NOW + timedelta(days=1))
    result = json_format.Parse((examples / "result.json").read_text("utf-8"), lifecycle_pb2.CityResult())
    assert result.result_id == f"{result.city_ticket_id}/result/1/0"


def record(message: Message, key: str = "C1", event_id: str = "") -> Record:
    headers = {"event_type": message.DESCRIPTOR.full_name, "event_id": event_id or f"{key}/x"}
    return Record("t", 0, 0, key, message.SerializeToString(), headers, 0)


def case(state: int = events_pb2.CASE_STATE_REPLIED, dispatch_round: int = 1, redo_round: int = 0,
         ticket_id: str = "C1") -> events_pb2.Case:
    return events_pb2.Case(ticket_id=ticket_id, state=state, dispatch_round=dispatch_round,  # type: ignore[arg-type]
                           redo_round=redo_round, received_at=pb.ts(NOW), opened_at=pb.ts(NOW),
                           primary_unit=events_pb2.Unit(unit_id="ST01", unit_type=events_pb2.UNIT_TYPE_STREET))


def test_metrics_counts_each_lifecycle_stage_once_per_dispatch_and_redo_round() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    first = stage_of(record(lifecycle_pb2.CaseReplied(case=case())), tz)
    redo = stage_of(record(lifecycle_pb2.CaseReplied(case=case(redo_round=1))), tz)
    again = stage_of(record(events_pb2.CaseOpened(case=case(dispatch_round=2))), tz)
    assert (first.stage, first.round) == ("replied", "1.0") and redo.fact_id != first.fact_id
    assert again.fact_id == "C1|case_opened|2"
    passed = stage_of(record(lifecycle_pb2.ReviewDecided(case=case(), passed=True)), tz)
    failed = stage_of(record(lifecycle_pb2.ReviewDecided(case=case(), passed=False)), tz)
    assert (passed.stage, failed.stage) == ("review_passed", "review_failed")
    evaluated = stage_of(record(lifecycle_pb2.CaseEvaluated(case=case(), evaluation=case_pb2.Evaluation(
        resolution=case_pb2.RESOLUTION_PARTLY_RESOLVED, satisfaction=case_pb2.SATISFACTION_UNSATISFIED))), tz)
    assert ("satisfaction", "SATISFACTION_UNSATISFIED") in evaluated.dims
    with pytest.raises(Skip):  # a second contact is no stage
        stage_of(record(lifecycle_pb2.ContactRecorded(case=case(), first=False)), tz)
    with pytest.raises(Skip):
        stage_of(record(lifecycle_pb2.CaseSignedOff(case=case(), assisting=True)), tz)


def test_deputy_liaison_turns_every_case_event_of_a_deputy_ticket_into_a_stable_timeline_entry() -> None:
    following = CaseFollowing(store=None)  # type: ignore[arg-type]
    assert following.decode(record(events_pb2.CaseOpened(case=case()), key="C1")) is None  # not a deputy's
    deputy_case = case(ticket_id="RD-S1")
    sid, entry, view = following.decode(record(lifecycle_pb2.ReviewDecided(  # type: ignore[misc]
        case=deputy_case, passed=False, reason="未附照片", occurred_at=pb.ts(NOW)), key="RD-S1", event_id="e1"))
    assert sid == "S1" and entry["status"] == "sent_back" and entry["reason"] == "未附照片"
    assert view["ticket_id"] == "RD-S1"
    opened = events_pb2.CaseOpened(case=deputy_case)
    later = events_pb2.Case()
    later.CopyFrom(deputy_case)
    later.revision, later.state = 7, events_pb2.CASE_STATE_ARCHIVED
    replayed = events_pb2.CaseOpened(case=later)  # a replay republishes the stored (later) case
    first = following.decode(record(opened, key="RD-S1", event_id="RD-S1/opened/1"))
    second = following.decode(record(replayed, key="RD-S1", event_id="RD-S1/opened/1"))
    assert first is not None and second is not None and first[1] == second[1]  # the same timeline entry


def test_an_audit_entry_reads_as_a_history_line() -> None:
    line = history_entry("C1", 3, {
        "_id": "x", "at": NOW, "action": "review", "reason": "审核通过",
        "actor": {"subject": "o-li", "role": "office"},
        "before": {"state": "CASE_STATE_REPLIED", "dispatch_round": 1},
        "after": {"state": "CASE_STATE_ARCHIVED", "dispatch_round": 1, "redo_round": 1},
        "events": ["hotline.v1.ReviewDecided", "hotline.v1.CaseEvaluated", "hotline.v1.CaseClosed"],
        "detail": "审核通过，回传市平台; 回访; 结案"})
    assert (line.from_state, line.to_state) == (events_pb2.CASE_STATE_REPLIED, events_pb2.CASE_STATE_ARCHIVED)
    assert line.actor.role == "office" and line.redo_round == 1 and "CaseEvaluated" in line.event_type
    opened = history_entry("C1", 0, {"_id": "C1/opened/1", "at": NOW, "action": "open_case",
                                     "actor": {"subject": "service:supervision", "role": "system"}})
    assert opened.to_state == events_pb2.CASE_STATE_AWAITING_SIGN_OFF and opened.dispatch_round == 1
    assert reason_of(lifecycle_pb2.ReviewRequest(ticket_id="C1", reason="未附照片")) == "未附照片"
    assert reason_of(lifecycle_pb2.SignOffRequest(ticket_id="C1")) == ""


def test_the_player_draws_paths_by_share_and_round_robin_gives_every_path() -> None:
    from hotline_dev.lifecycle_sim import DEFAULT_SHARES, Path, choose_paths, round_robin

    ids = [f"C{i}" for i in range(2000)]
    drawn = choose_paths(ids, seed=3)
    assert drawn == choose_paths(ids, seed=3)  # seeded: a demo can be replayed
    share = sum(1 for p in drawn.values() if p == Path.STRAIGHT) / len(ids)
    assert abs(share - DEFAULT_SHARES[Path.STRAIGHT]) < 0.05
    only = choose_paths(ids[:50], {Path.PARKED: 1.0})
    assert set(only.values()) == {Path.PARKED}
    assert set(round_robin(ids[:len(Path)]).values()) == set(Path)


def test_a_case_opened_delivered_again_after_an_extension_leaves_the_kpi_reply_limit_extended() -> None:
    from services.metrics import projection

    opened = case(state=events_pb2.CASE_STATE_AWAITING_SIGN_OFF)
    opened.reply_due.CopyFrom(pb.ts(NOW + timedelta(days=7)))
    extended = events_pb2.Case()
    extended.CopyFrom(opened)
    extended.reply_due.CopyFrom(pb.ts(NOW + timedelta(days=14)))
    docs: dict[str, dict[str, dict[str, object]]] = {}
    events = [events_pb2.CaseOpened(case=opened),
              lifecycle_pb2.ExtensionDecided(case=extended, approved=True, occurred_at=pb.ts(NOW)),
              events_pb2.CaseOpened(case=opened)]  # at least once: the opening again, after the extension
    for event in events:
        for update in projection.updates(event):
            projection.apply(docs, update)
    assert docs["handling"]["C1|1|0"]["reply_due"] == NOW + timedelta(days=14)
