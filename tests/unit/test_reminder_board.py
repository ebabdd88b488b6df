"""事前提醒 on the workbench (issue #22): supervision's reminder board lists the clocks of a unit's
cases whose due-soon alarm fired and whose limit is still ahead, each as the DeadlineReminder the
notifications topic carried (same id, same text), for the unit the clock runs against."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hotline import pb
from hotline.timers import Stage
from hotline.v1 import case_pb2, events_pb2
from services.supervision.cases.core import reminders
from services.supervision.cases.reminder_board import board, due_soon
from services.supervision.cases.sla import SlaClock, unit_kind

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def case_doc(ticket: str, clocks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    case = events_pb2.Case(
        ticket_id=ticket, state=events_pb2.CASE_STATE_IN_PROGRESS, dispatch_round=1,
        primary_unit=events_pb2.Unit(unit_id="ST01", name="秦淮街道"),
        assisting_units=[events_pb2.Unit(unit_id="DP02", name="区城管局")],
        assists=[case_pb2.AssistTask(unit_id="DP02", unit_name="区城管局")])
    return {"_id": ticket, **pb.to_doc(case), "timers": {"v": 3, "fire_at": NOW, "clocks": clocks}}


ASSIST = unit_kind(SlaClock.ASSIST_SIGN_OFF, "DP02")
DOCS = [
    case_doc("T1", {
        "reply": {"due": NOW + 5 * H, "warn": NOW - H, "stage": Stage.DUE.value},  # due soon: reminded
        "contact": {"due": NOW - H, "warn": NOW - 3 * H, "stage": Stage.DUE.value},  # overdue: not a reminder
        ASSIST: {"due": NOW + 2 * H, "warn": NOW - 2 * H, "stage": Stage.DUE.value},  # the assisting unit's
    }),
    case_doc("T2", {
        "sign_off": {"due": NOW + 30 * H, "warn": NOW + 10 * H, "stage": Stage.DUE_SOON.value},  # not yet
        "supervision": {"due": NOW + 3 * H, "warn": NOW - 4 * H, "stage": Stage.DUE.value},  # 督办's own limit
    }),
]


def test_the_board_lists_due_soon_clocks_for_the_unit_they_run_against() -> None:
    mine = board(DOCS, "ST01", NOW, TZ)
    assert [(r.ticket_id, r.clock_key) for r in mine] == [("T2", "supervision"), ("T1", "reply")]  # soonest first
    assert all(r.unit.unit_id == "ST01" for r in mine)
    assert "督办办理时限将于" in mine[0].text and "办结反馈时限将于" in mine[1].text
    assisting = board(DOCS, "DP02", NOW, TZ)
    assert [(r.ticket_id, r.clock_key, r.unit.name) for r in assisting] == [("T1", ASSIST, "区城管局")]
    assert len(board(DOCS, None, NOW, TZ)) == 3  # the office: every unit's
    assert board(DOCS, "ST09", NOW, TZ) == []
    # the limit passes: no longer a reminder
    assert board(DOCS, "ST01", NOW + 4 * H, TZ)[0].clock_key == "reply"


def test_a_board_reminder_is_the_one_the_notifications_topic_carried() -> None:
    (fired,) = [f for f in due_soon("T1", DOCS[0]["timers"], NOW) if f.timer.kind == "reply"]
    case = pb.from_doc(DOCS[0], events_pb2.Case)
    sent = reminders([fired], {"T1": case}, "hotline.notifications.v1", TZ)[0].message
    shown = next(r for r in board(DOCS, "ST01", NOW, TZ) if r.clock_key == "reply")
    assert shown.reminder_id == sent.reminder_id and shown.text == sent.text and shown.due_at == sent.due_at
