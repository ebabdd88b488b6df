"""The SLA policy as data: validation, versions (a versioned policy of hotline/policies.py), and the
pure resolver limits_for."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline.auth import Principal
from hotline.calendar import WorkCalendar
from hotline.commands import DomainError
from hotline.policies import PolicyInvalid, PolicyVersion, new_version
from hotline.policy import Role
from hotline.settings import SlaSettings
from services.supervision.cases.sla import (
    CaseFacts,
    Period,
    PolicyError,
    SlaClock,
    Unit,
    limits_for,
    limits_of,
    parse_policy,
    validate,
)

TZ = ZoneInfo("Asia/Shanghai")
DOC: dict[str, Any] = json.loads(SlaSettings().policy_file.read_text("utf-8"))
POLICY = parse_policy(DOC)
CAL = WorkCalendar()


def facts(**kw: Any) -> CaseFacts:
    tags = kw.pop("tags", ())
    return CaseFacts(ticket_type="TICKET_TYPE_COMPLAINT", tags=frozenset(tags), **kw)


def lanes_and(f: CaseFacts, *clocks: SlaClock) -> tuple[tuple[str, ...], tuple[Period, ...]]:
    limits = limits_for(f, POLICY)
    return limits.lanes, tuple(limits.periods[c] for c in clocks)


def test_the_policy_file_is_valid_and_sets_every_clock() -> None:
    assert POLICY.version >= 1
    assert set(POLICY.defaults) == set(SlaClock)
    assert 0 < POLICY.due_soon_fraction < 1
    assert POLICY.max_extensions == 1


H, WD, M, D = Unit.HOURS, Unit.WORKING_DAYS, Unit.MINUTES, Unit.DAYS


@pytest.mark.parametrize(("f", "lanes", "sign_off", "contact", "reply"), [
    (facts(), (), Period(24, H), Period(1, WD), Period(5, WD)),
    (facts(urgency="URGENCY_URGENT"), ("emergency",), Period(2, H), Period(2, H), Period(5, WD)),
    (facts(category="水电气热"), ("utilities",), Period(24, H), Period(1, WD), Period(24, H)),
    (facts(tags=["复杂"]), ("complex",), Period(24, H), Period(1, WD), Period(15, WD)),
    (facts(tags=["人大代表"]), ("deputy",), Period(24, H), Period(1, WD), Period(5, WD)),
    (facts(tags=["人大代表", "疑难复杂"]), ("complex", "deputy", "deputy_complex"), Period(24, H), Period(1, WD),
     Period(10, WD)),
    (facts(tags=["涉企"]), ("enterprise",), Period(12, H), Period(8, H), Period(3, WD)),
    (facts(tags=["涉企", "复杂"]), ("complex",), Period(24, H), Period(1, WD), Period(15, WD)),
    (facts(tags=["旅游"]), (), Period(24, H), Period(1, WD), Period(5, WD)),
    (facts(tags=["旅游"], received_on_rest_day=True), ("holiday_tourist",), Period(24, H), Period(1, WD),
     Period(0, D)),
    (facts(tags=["旅游"], received_on_rest_day=True, urgency="URGENCY_URGENT"),
     ("emergency", "holiday_tourist", "holiday_tourist_emergency"), Period(30, M), Period(30, M), Period(0, D)),
])
def test_lanes_set_the_limits(f: CaseFacts, lanes: tuple[str, ...], sign_off: Period, contact: Period,
                              reply: Period) -> None:
    assert lanes_and(f, SlaClock.SIGN_OFF, SlaClock.CONTACT, SlaClock.REPLY) == (lanes, (sign_off, contact, reply))


@pytest.mark.parametrize(("f", "lanes", "case_lane", "sign_off", "contact", "reply"), [
    # the responsibility list's own lane reaches the clocks without any tag or urgency (issue #22)
    (facts(list_lane="emergency", category="物业管理", item="物业管理-08"), ("emergency",), "emergency",
     Period(2, H), Period(2, H), Period(5, WD)),
    (facts(list_lane="emergency", category="水电气热", item="水电气热-04"), ("utilities", "emergency"), "emergency",
     Period(2, H), Period(2, H), Period(24, H)),
    (facts(list_lane="water_power_gas_heat", category="水电气热"), ("utilities",), "normal",
     Period(24, H), Period(1, WD), Period(24, H)),
    (facts(list_lane="complex"), ("complex",), "normal", Period(24, H), Period(1, WD), Period(15, WD)),
    (facts(list_lane="tourism"), (), "tourist", Period(24, H), Period(1, WD), Period(5, WD)),
    (facts(list_lane="tourism", received_on_rest_day=True), ("holiday_tourist",), "tourist",
     Period(24, H), Period(1, WD), Period(0, D)),
    # caller.enterprise is the enterprise lane, as the 涉企 tag is; a complex item keeps its complex limit
    (facts(enterprise=True), ("enterprise",), "enterprise", Period(12, H), Period(8, H), Period(3, WD)),
    (facts(enterprise=True, list_lane="complex"), ("complex",), "enterprise", Period(24, H), Period(1, WD),
     Period(15, WD)),
    (facts(tags=["涉企"]), ("enterprise",), "enterprise", Period(12, H), Period(8, H), Period(3, WD)),
    # a deputy's ticket is the deputy lane by its origin
    (facts(deputy=True), ("deputy",), "deputy", Period(24, H), Period(1, WD), Period(5, WD)),
    (facts(deputy=True, list_lane="complex"), ("complex", "deputy", "deputy_complex"), "deputy",
     Period(24, H), Period(1, WD), Period(10, WD)),
    (facts(), (), "normal", Period(24, H), Period(1, WD), Period(5, WD)),
])
def test_list_lanes_enterprise_and_deputy_origin_decide_limits_and_the_case_lane(
        f: CaseFacts, lanes: tuple[str, ...], case_lane: str, sign_off: Period, contact: Period,
        reply: Period) -> None:
    assert lanes_and(f, SlaClock.SIGN_OFF, SlaClock.CONTACT, SlaClock.REPLY) == (lanes, (sign_off, contact, reply))
    assert POLICY.case_lane(f) == case_lane


@pytest.mark.parametrize("f", [facts(), facts(tags=["人大代表", "复杂"]),
                               facts(city_reply_working_days=3, tags=["涉企"]),
                               facts(tags=["旅游"], received_on_rest_day=True, urgency="URGENCY_URGENT")])
def test_a_cases_limits_are_rebuilt_from_its_policy_version_lanes_and_city_limit(f: CaseFacts) -> None:
    limits = limits_for(f, POLICY)
    assert limits_of(POLICY, limits.lanes, f.city_reply_working_days) == limits


def test_fixed_clocks_of_the_brief() -> None:
    limits = limits_for(facts(), POLICY)
    assert limits.periods[SlaClock.DISPATCH] == Period(5, M)
    assert limits.periods[SlaClock.EXTENSION] == Period(10, WD)
    assert limits.periods[SlaClock.RETURN] == Period(2, WD)
    assert limits.policy_version == POLICY.version


def test_the_city_limit_replaces_the_default_and_caps_every_lane() -> None:
    start = datetime(2026, 11, 23, 10, tzinfo=TZ)  # Monday
    ten = limits_for(facts(city_reply_working_days=10), POLICY)
    assert ten.due(SlaClock.REPLY, start, CAL) == datetime(2026, 12, 8, tzinfo=TZ)  # end of Mon 7 Dec
    capped = limits_for(facts(city_reply_working_days=3, tags=["复杂"]), POLICY)  # complex 15 > city 3
    assert capped.due(SlaClock.REPLY, start, CAL) == datetime(2026, 11, 27, tzinfo=TZ)
    faster = limits_for(facts(city_reply_working_days=10, category="水电气热"), POLICY)  # a faster lane stays
    assert faster.due(SlaClock.REPLY, start, CAL) == datetime(2026, 11, 24, 10, tzinfo=TZ)


def test_due_soon_is_a_share_of_the_span() -> None:
    limits = limits_for(facts(), POLICY)
    start = datetime(2026, 11, 23, 10, tzinfo=TZ)
    due = limits.due(SlaClock.SIGN_OFF, start, CAL)
    assert limits.warn_at(start, due) == datetime(2026, 11, 24, 5, 12, tzinfo=TZ)  # 80 % of 24 h = 19 h 12 min


def bad(change: Any) -> list[str]:
    doc = copy.deepcopy(DOC)
    change(doc)
    with pytest.raises(PolicyError) as err:
        parse_policy(doc)
    return err.value.problems


def test_invalid_policies_are_refused_with_every_reason() -> None:
    assert any("unknown clock" in p for p in bad(lambda d: d["defaults"].update(sigh_off={"hours": 1})))
    assert any("every clock" in p for p in bad(lambda d: d["defaults"].pop("reply")))
    assert any("unknown unit" in p for p in bad(lambda d: d["defaults"].update(reply={"weeks": 1})))
    assert any("0..60" in p for p in bad(lambda d: d["defaults"].update(reply={"working_days": 99})))
    assert any("leaves no time" in p for p in bad(lambda d: d["defaults"].update(sign_off={"hours": 0})))
    assert any("between 0 and 1" in p for p in bad(lambda d: d.update(due_soon_fraction=1.5)))
    assert any("used twice" in p for p in bad(lambda d: d["lanes"].append(copy.deepcopy(d["lanes"][0]))))
    assert any("unknown values" in p for p in bad(lambda d: d["lanes"][5]["when"][0].update(urgencies=["SOON"])))
    assert any("unknown conditions" in p for p in bad(lambda d: d["lanes"][0]["when"][1].update(tag_any=["x"])))
    assert any("unknown keys" in p for p in bad(lambda d: d.update(lane=[])))
    assert any("enterprise must be true or false" in p
               for p in bad(lambda d: d["case_lanes"][1]["when"][1].update(enterprise="yes")))
    assert any("used twice" in p for p in bad(lambda d: d["case_lanes"].append({"name": "normal", "when": {}})))
    assert any("lower_snake_case" in p for p in bad(lambda d: d["lanes"][0].update(name="Complex Lane")))
    both = bad(lambda d: (d.update(version=0), d["defaults"].update(reply={"days": -1})))
    assert both[:2] == ["version must be a positive integer", "defaults.reply: days must be an integer 0..60"]


ADMIN = Principal("admin:wang", Role.ADMIN)
AT = datetime(2026, 11, 26, 9, tzinfo=UTC)


def test_a_new_version_is_numbered_by_the_store_and_checked_by_parse_policy() -> None:
    first = PolicyVersion("sla_policy", DOC["version"], DOC, "system:supervision", AT, "shipped file")
    proposed = copy.deepcopy(DOC)
    proposed["defaults"]["reply"] = {"working_days": 7}
    proposed.pop("version")  # whatever the editor says, the store numbers it
    new = new_version(first, proposed, validate, first.version, ADMIN, AT, "缩短办理时限").state
    assert new is not None and new.version == first.version + 1 and new.doc["version"] == new.version
    policy = parse_policy(new.doc)
    assert policy.version == new.version and limits_for(facts(), policy).periods[SlaClock.REPLY] == Period(7, WD)
    assert limits_for(facts(), POLICY).periods[SlaClock.REPLY] == Period(5, WD)  # the old version is unchanged
    with pytest.raises(DomainError, match=f"you edited version {first.version}"):  # another change came first
        new_version(new, {**proposed, "max_extensions": 2}, validate, first.version, ADMIN, AT, "r")


def refusal(change: Any) -> PolicyInvalid:
    doc = copy.deepcopy(DOC)
    change(doc)
    with pytest.raises(PolicyInvalid) as caught:
        validate(doc)
    return caught.value


def test_a_refused_version_names_the_first_field_and_lists_every_problem() -> None:
    validate(DOC)
    validate({**DOC, "version": "anything"})  # the store numbers it
    one = refusal(lambda d: d["defaults"].update(reply={"working_days": 99}))
    assert one.field == "defaults.reply" and one.code == "invalid_argument"
    assert one.message.startswith("defaults.reply: working_days must be an integer 0..60; ")
    two = refusal(lambda d: (d["defaults"].update(reply={"weeks": 1}), d.update(due_soon_fraction=2)))
    assert two.field == "due_soon_fraction"
    assert two.message.startswith("due_soon_fraction must be a number between 0 and 1 (exclusive); "
                                  "defaults.reply: unknown unit 'weeks'")
    lane = refusal(lambda d: d["lanes"][1]["when"][0].update(tags_any="复杂"))
    assert lane.field == "lanes[1].when.tags_any" and "lanes[1] (utilities).when.tags_any must be" in lane.message
    assert refusal(lambda d: d.update(lane=[])).field == ""  # "unknown keys ['lane']": no field to name
    with pytest.raises(PolicyInvalid) as caught:
        validate([])
    assert caught.value.field == ""


def test_the_desks_dispatch_limit_is_the_sla_policys(tmp_path: Any) -> None:
    """One definition (issue #22): routing's 派单时限 is the policy's dispatch default."""
    from datetime import timedelta

    from services.routing.desk import DISPATCH_LIMIT, dispatch_limit

    assert DISPATCH_LIMIT == timedelta(minutes=POLICY.defaults[SlaClock.DISPATCH].amount) == timedelta(minutes=5)
    doc = copy.deepcopy(DOC)
    doc["defaults"]["dispatch"] = {"minutes": 10}
    path = tmp_path / "sla.json"
    path.write_text(json.dumps(doc), "utf-8")
    assert dispatch_limit(path) == timedelta(minutes=10)
