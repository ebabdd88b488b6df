"""Deadlines through the running platform: city tickets published to Kafka, their cases read
through gRPC, due times by the rule for periods (24:00 of the N-th working day, Asia/Shanghai)
across 春节, 劳动节, 国庆, weekends and make-up Saturdays; past-due cases go to system
supervision (level 1) once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hotline import pb
from hotline.calendar import WorkCalendar
from hotline.settings import Settings
from hotline.v1 import events_pb2, ticket_pb2
from tests.e2e.test_pipeline import cases_of as get_cases
from tests.support import eventually, http, publish_tickets

pytestmark = pytest.mark.e2e
TZ = ZoneInfo("Asia/Shanghai")


def end_of(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=TZ) + timedelta(days=1)


URGENT = ticket_pb2.URGENCY_URGENT
# (received local, tags, category, urgency, city limit, expected reply_due local, expected lanes)
CASES = [
    ("thursday", datetime(2026, 11, 19, 10, tzinfo=TZ), (), "物业管理", 0, end_of(2026, 11, 26), ()),
    ("saturday", datetime(2026, 11, 21, 15, tzinfo=TZ), (), "物业管理", 0, end_of(2026, 11, 27), ()),
    ("spring_make_up_saturday", datetime(2026, 2, 13, 10, tzinfo=TZ), (), "物业管理", 0, end_of(2026, 2, 27), ()),
    ("spring_after", datetime(2026, 2, 25, 10, tzinfo=TZ), (), "物业管理", 0, end_of(2026, 3, 3), ()),
    ("labour_day", datetime(2026, 4, 30, 16, tzinfo=TZ), (), "物业管理", 0, end_of(2026, 5, 11), ()),
    ("make_up_sunday", datetime(2026, 9, 18, 10, tzinfo=TZ), (), "物业管理", 0, end_of(2026, 9, 24), ()),
    ("national_day", datetime(2026, 9, 30, 9, tzinfo=TZ), (), "物业管理", 0, end_of(2026, 10, 13), ()),
    ("holiday_tourist", datetime(2026, 10, 3, 11, tzinfo=TZ), ("旅游",), "文旅与政务服务", URGENT,
     end_of(2026, 10, 3), ("emergency", "holiday_tourist", "holiday_tourist_emergency")),
    ("utilities", datetime(2026, 11, 23, 10, tzinfo=TZ), (), "水电气热", 0, datetime(2026, 11, 24, 10, tzinfo=TZ),
     ("utilities",)),
    ("deputy_complex", datetime(2026, 11, 23, 10, tzinfo=TZ), ("人大代表", "复杂"), "物业管理", 0, end_of(2026, 12, 7),
     ("complex", "deputy", "deputy_complex")),
    ("enterprise", datetime(2026, 11, 19, 10, tzinfo=TZ), ("涉企",), "物业管理", 0, end_of(2026, 11, 24),
     ("enterprise",)),
]


def city_ticket(tag: str, name: str, received: datetime, tags: tuple[str, ...], category: str, urgency: int,
                ) -> ticket_pb2.CityTicket:
    return ticket_pb2.CityTicket(
        city_ticket_id=f"DL-{tag}-{name.replace('_', '-')}", ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT,
        title="小区电梯长期故障", content="瑞金北村12栋电梯故障一周无人维修，物业不处理", category=category,
        address=f"瑞金路街道瑞金北村{tag}-{name}", received_at=pb.ts(received),
        urgency=urgency or ticket_pb2.URGENCY_NORMAL,
        tags=list(tags))


async def test_reply_due_follows_the_rule_for_periods_through_the_service(platform: dict, settings: Settings) -> None:
    tag = uuid.uuid4().hex[:6]
    tickets = {name: city_ticket(tag, name, received, tags, category, urgency)
               for name, received, tags, category, urgency, _, _ in CASES}
    await publish_tickets(settings, tickets.values())
    ids = [t.city_ticket_id for t in tickets.values()]
    cases = await eventually(lambda: get_cases(settings, ids), lambda found: len(found) == len(ids), timeout=90)

    for name, received, _, _, urgency, due, lanes in CASES:
        case = cases[tickets[name].city_ticket_id]
        assert pb.dt(case.reply_due).astimezone(TZ) == due, name
        assert tuple(case.sla_lanes) == lanes, name
        assert case.policy_version >= 1
        assert pb.dt(case.received_at).astimezone(TZ) == received
        signed_within = pb.dt(case.sign_off_due) - pb.dt(case.opened_at)
        assert signed_within <= (timedelta(minutes=30) if urgency else timedelta(hours=24)), name
        assert pb.dt(case.contact_due) > pb.dt(case.opened_at) - timedelta(minutes=1)

    # a reply deadline in the past: the case goes to system supervision (level 1) at the next timer scan
    now = datetime.now(TZ)
    past = sorted(tickets[name].city_ticket_id for name, *_, due, _ in CASES if due < now)
    assert len(past) >= 8
    # an assisting unit's missed contribution limit is a missed deadline of the case too (issue #22)
    past = sorted({*past, *(tid for tid, c in cases.items()
                            if any(pb.dt(a.contribution_due) < now for a in c.assists))})

    def level(found: dict[str, events_pb2.Case]) -> dict[str, int]:
        return {tid: case.supervision_level for tid, case in found.items()}

    levels = await eventually(lambda: get_cases(settings, ids), lambda found: all(level(found)[t] == 1 for t in past),
                              timeout=60)
    assert {tid: n for tid, n in level(levels).items() if tid not in past} == dict.fromkeys(set(ids) - set(past), 0)


async def stored_clocks(settings: Settings, ticket_id: str, assists: bool = False) -> dict[str, datetime]:
    """The clocks a case runs, as stored in its document (hotline/timers.py, embedded); the
    assisting units' own clocks (``assist_*``, issue #22) only with ``assists``."""
    from hotline import mongo

    client = mongo.client(settings)
    try:
        doc = await mongo.database(client, settings, "supervision")["cases"].find_one({"_id": ticket_id})
    finally:
        await client.close()
    assert doc is not None
    return {kind: clock["due"] for kind, clock in ((doc.get("timers") or {}).get("clocks") or {}).items()
            if assists or not kind.startswith("assist_")}


async def test_the_policy_admin_api_versions_and_the_lifecycle_moves_the_clocks(platform: dict,
                                                                                 settings: Settings) -> None:
    """The administrator replaces the SLA policy (a new version, for cases opened from then on:
    a lane, and two extensions a round); the lifecycle's transitions arm, move and stop the case's
    timers in the running service; the case keeps its version after the policy is restored."""
    tag = uuid.uuid4().hex[:6]
    url = f"http://{settings.bind_host}:{settings.ports.supervision_http}/policies/sla_policy"
    probe = f"sla-probe-{tag}"  # a lane only this test's ticket matches

    def key(name: str) -> dict[str, str]:
        return {"Idempotency-Key": f"{tag}-{name}"}
    async with http(settings, "admin") as admin, http(settings, "office") as office:
        r = await office.get(url)
        assert r.status_code == 200, r.text
        current = r.json()
        doc = {k: v for k, v in current["doc"].items() if k != "version"}  # the store numbers it
        lane = {"name": f"probe_{tag}", "label": "e2e", "when": {"tags_any": [probe]},
                "limits": {"reply": {"working_days": 2}}}
        change = {"doc": {**doc, "lanes": [*doc["lanes"], lane], "max_extensions": 2},
                  "expected_version": current["version"], "reason": "e2e: a lane of 2 working days, 2 extensions"}
        assert (await office.put(url, json=change, headers=key("office"))).status_code == 403  # the administrator's
        bad = {**change, "doc": {**change["doc"], "defaults": {"reply": {"weeks": 1}}}}
        r = await admin.put(url, json=bad, headers=key("bad"))
        assert r.status_code == 422 and "unknown unit" in r.text, r.text  # every problem named
        assert r.json()["field"] == "defaults.reply", r.text  # and the first field at fault
        r = await admin.put(url, json=change, headers=key("change"))
        assert r.status_code == 200, r.text
        version = r.json()["version"]
        assert version == current["version"] + 1
        again = await admin.put(url, json=change, headers=key("change"))  # a retried form: the first answer
        assert again.status_code == 200 and again.json()["version"] == version, again.text
        assert (await admin.put(url, json=change, headers=key("stale"))).status_code == 409  # not current
        versions = (await office.get(f"{url}/versions")).json()["versions"]
        assert versions[0]["version"] == version and versions[0]["reason"] == change["reason"]
        assert (await office.get(f"{url}/versions/{current['version']}")).json()["doc"] == current["doc"]
        assert current["doc"]["max_extensions"] == 1  # the shipped policy: one extension a round

    # received now, so that no clock falls due (and fires) while the test reads them; the rule
    # itself is checked on fixed dates above
    calendar = WorkCalendar()
    received = datetime.now(TZ).replace(microsecond=0) - timedelta(minutes=1)
    due = calendar.working_days_end(received, 2)
    extended = calendar.working_days_end(due - timedelta(milliseconds=1), 3)  # from the day the old one ended
    ticket = city_ticket(tag, "policy_probe", received, (probe,), "物业管理", 0)
    (tid,) = await publish_tickets(settings, [ticket])
    case = (await eventually(lambda: get_cases(settings, [tid]), lambda found: tid in found, timeout=90))[tid]
    assert case.policy_version == version and list(case.sla_lanes) == [f"probe_{tag}"]
    assert pb.dt(case.reply_due) == due
    assert set(await stored_clocks(settings, tid)) == {"sign_off", "contact", "reply"}

    base = f"http://{settings.bind_host}:{settings.ports.supervision_http}/cases/{tid}"
    unit = case.primary_unit.unit_id
    async with http(settings, "unit", unit_id=unit) as me, http(settings, "office") as office:
        r = await me.post(f"{base}/sign-off", json={"note": "收到"}, headers={"Idempotency-Key": f"{tag}-s"})
        assert r.status_code == 200, r.text
        assert set(await stored_clocks(settings, tid)) == {"contact", "reply"}  # signed off: that clock stopped
        r = await me.post(f"{base}/extension", json={"working_days": 3, "reason": "需协调"},
                          headers={"Idempotency-Key": f"{tag}-e"})
        assert r.status_code == 200, r.text
        assert set(await stored_clocks(settings, tid)) == {"contact", "reply", "extension_decision"}
        r = await office.post(f"{base}/extension/decision", json={"approved": True, "reason": "同意"},
                              headers={"Idempotency-Key": f"{tag}-d"})
        assert r.status_code == 200, r.text
        clocks = await stored_clocks(settings, tid)
        assert set(clocks) == {"contact", "reply"}  # the office decided: its clock stopped
        assert clocks["reply"] == extended  # moved: 3 working days after the day the old limit ended

        # the administrator restores one extension a round; this case keeps its version's two
        async with http(settings, "admin") as admin:
            restore = {"doc": {**doc, "max_extensions": 1, "lanes": change["doc"]["lanes"]},
                       "expected_version": version, "reason": "e2e: one extension again"}
            r = await admin.put(url, json=restore, headers=key("restore"))
            assert r.status_code == 200 and r.json()["version"] == version + 1, r.text
        ask = {"working_days": 2, "reason": "仍需协调"}
        r = await me.post(f"{base}/extension", json=ask, headers={"Idempotency-Key": f"{tag}-e2"})
        assert r.status_code == 200 and r.json()["extension"]["number"] == 2, r.text
        r = await office.post(f"{base}/extension/decision", json={"approved": False, "reason": "不同意"},
                              headers={"Idempotency-Key": f"{tag}-d2"})
        assert r.status_code == 200, r.text
        r = await me.post(f"{base}/extension", json=ask, headers={"Idempotency-Key": f"{tag}-e3"})
        assert r.status_code == 409 and "may ask 2 extension" in r.text, r.text
    final = (await get_cases(settings, [tid]))[tid]
    assert pb.dt(final.reply_due) == extended  # the rejected one moved nothing
    assert final.extension.approved_before == 1  # and the approved one still counts
