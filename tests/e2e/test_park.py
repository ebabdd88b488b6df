"""挂账 through the running platform (issue #22): the unit's park request does not park the case
(its clocks keep running); the office approves, and the clocks the SLA policy's park_stops names
stop while the monthly progress report is timed; on resume they run again, later by the time
parked. A unit cannot approve its own parking."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hotline import pb
from hotline.settings import Settings
from tests.e2e.test_deadlines import city_ticket, stored_clocks
from tests.e2e.test_pipeline import cases_of as get_cases
from tests.support import eventually, http, publish_tickets

pytestmark = pytest.mark.e2e
TZ = ZoneInfo("Asia/Shanghai")


async def test_a_unit_asks_the_office_parks_and_the_clocks_stop_and_resume(platform: dict,
                                                                           settings: Settings) -> None:
    tag = uuid.uuid4().hex[:6]
    received = datetime.now(TZ).replace(microsecond=0) - timedelta(minutes=1)
    (tid,) = await publish_tickets(settings, [city_ticket(tag, "park", received, (), "物业管理", 0)])
    case = (await eventually(lambda: get_cases(settings, [tid]), lambda found: tid in found, timeout=90))[tid]
    base = f"http://{settings.bind_host}:{settings.ports.supervision_http}/cases/{tid}"
    unit = case.primary_unit.unit_id

    def key(name: str) -> dict[str, str]:
        return {"Idempotency-Key": f"{tag}-{name}"}
    async with http(settings, "unit", unit_id=unit) as me, http(settings, "office") as office:
        assert (await me.post(f"{base}/sign-off", json={"note": "收到"}, headers=key("s"))).status_code == 200
        target = (date.today() + timedelta(days=90)).isoformat()
        r = await me.post(f"{base}/park", json={"plan": "纳入改造计划", "target_date": target, "reason": "需立项"},
                          headers=key("p"))
        assert r.status_code == 200, r.text
        asked = r.json()
        assert asked["state"] == "CASE_STATE_IN_PROGRESS" and asked["park"]["status"] == "requested"
        assert set(await stored_clocks(settings, tid)) == {"contact", "reply"}  # no unit stops its own clock
        helpers = {k for k in await stored_clocks(settings, tid, assists=True) if k.startswith("assist_")}
        assert len(helpers) == 2 * len(case.assisting_units)  # each assisting unit signs off and contributes
        decision = {"approved": True, "reason": "同意挂账"}
        r = await me.post(f"{base}/park/decision", json=decision, headers=key("self"))
        assert r.status_code == 403, r.text  # the office's decision (role policy)

        r = await office.post(f"{base}/park/decision", json=decision, headers=key("d"))
        assert r.status_code == 200 and r.json()["state"] == "CASE_STATE_PARKED", r.text
        parked = r.json()
        assert parked["park"]["stopped_clocks"] == ["contact", "reply"]
        clocks = await stored_clocks(settings, tid)
        assert set(clocks) == {"park_progress"}  # contact and reply stopped; the monthly report is timed
        assert clocks["park_progress"] == datetime.fromisoformat(parked["park"]["next_report_due"])

        r = await me.post(f"{base}/resume", json={"reason": "资金到位"}, headers=key("r"))
        assert r.status_code == 200 and r.json()["state"] == "CASE_STATE_IN_PROGRESS", r.text
        resumed = r.json()
        moved = datetime.fromisoformat(resumed["reply_due"]) - pb.dt(case.reply_due)
        parked_for = datetime.fromisoformat(resumed["park"]["resumed_at"]) - \
            datetime.fromisoformat(parked["park"]["parked_at"])
        assert moved == parked_for  # the reply limit moved by the time parked
        clocks = await stored_clocks(settings, tid)
        assert set(clocks) == {"contact", "reply"}
        assert clocks["reply"] == datetime.fromisoformat(resumed["reply_due"])
