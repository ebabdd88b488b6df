"""Records of talks with units (约谈): who, when, why (the ranking), outcome and follow-up; a unit
reads its own; bad records are refused precisely."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.policy import Role
from services.supervision.levels import talks

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=TZ)
OFFICE = Principal("o1", Role.OFFICE)
GOOD = {"unit_id": "ST03", "held_at": "2026-12-03T15:00:00+08:00", "reason": "11月考核得分居黑榜末位",
        "ranking_period": "2026-11", "ranking_list": "black", "rank": 24, "score": 71.5,
        "attendees": ["街道分管领导", "热线办主任"], "outcome": "限期整改响应慢的问题", "follow_up": "每周报送",
        "follow_up_due": "2026-12-31"}


def test_a_talk_is_recorded_with_its_ranking_and_followed_up() -> None:
    talk = talks.record(None, GOOD, OFFICE, NOW).state
    assert talk is not None and talk["talk_id"] == talks.talk_id("ST03", "2026-12-03T15:00:00+08:00")
    shown = talks.shown(talk)
    assert shown["ranking_list_name"] == "黑榜" and shown["rank"] == 24 and shown["held_at"].startswith("2026-12-03")
    with pytest.raises(DomainError, match="recorded already"):
        talks.record(talk, GOOD, OFFICE, NOW)
    with pytest.raises(DomainError) as err:
        talks.visible(talk, talk["talk_id"], Principal("u", Role.UNIT, unit_id="ST01"))
    assert err.value.code == "not_found"
    assert talks.visible(talk, talk["talk_id"], Principal("u", Role.UNIT, unit_id="ST03")) is talk
    done = talks.follow_up(talk, talk["talk_id"], {"note": "响应率已升至95%"}, OFFICE, NOW).state
    assert done is not None and done["follow_up_done"] == "响应率已升至95%" and done["follow_up_done_at"] == NOW
    with pytest.raises(DomainError, match="recorded already"):
        talks.follow_up(done, talk["talk_id"], {"note": "again"}, OFFICE, NOW)


@pytest.mark.parametrize("change", [
    {"unit_id": "NOPE"}, {"held_at": "yesterday"}, {"held_at": "2026-12-03T15:00:00"}, {"reason": ""},
    {"ranking_period": "November"}, {"ranking_list": "grey"}, {"rank": 0}, {"outcome": " "},
    {"follow_up_due": "2026-13-01"},
])
def test_a_bad_record_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(DomainError) as err:
        talks.record(None, {**GOOD, **change}, OFFICE, NOW, lambda unit: unit != "NOPE")
    assert err.value.code == "invalid_argument"
