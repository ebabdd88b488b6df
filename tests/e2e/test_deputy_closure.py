"""Deputies' tickets close (issue #22), through the running platform: a deputy's problem is
submitted, routed, replied, reviewed; the deputy rates the result 基本满意; that rating is the
case's evaluation (回访) and the case closes (归档); the deputy's satisfaction rate in deputy
liaison's statistics equals the KPI engine's for the same ticket (基本满意 weighs 0.8). The
office's own callback is refused while the deputy may still rate."""

from __future__ import annotations

import uuid

import pytest

from hotline.settings import Settings
from hotline.v1 import kpis_pb2, services_pb2_grpc
from tests.e2e.test_deputy import base, drive
from tests.support import channel, eventually, http

pytestmark = pytest.mark.e2e


ITEM = "消费维权-01"  # 预付卡退费: no other e2e test sends a deputy's ticket there


async def kpi_satisfaction(settings: Settings) -> kpis_pb2.Rate | None:
    """The KPI engine's satisfaction rate of the deputy lane's tickets of the list item."""
    async with channel(settings, "metrics") as chan:
        result = await services_pb2_grpc.MetricsServiceStub(chan).GetKpis(kpis_pb2.GetKpisRequest(
            group_by=["list_item"], filters=[kpis_pb2.KpiFilter(dimension="lane", values=["deputy"])]))
    group = next((g for g in result.groups if g.key["list_item"] == ITEM), None)
    rate = next((r for r in group.rates if r.name == "satisfaction"), None) if group else None
    return rate if rate is not None and rate.has_value else None


async def test_a_deputy_rating_closes_the_case_and_weighs_as_in_the_kpis(platform: dict, settings: Settings) -> None:
    tag = uuid.uuid4().hex[:6]
    liaison, sup = base(settings, "deputy_liaison"), base(settings, "supervision")
    deputy_id, address = f"DC{tag}", f"长干桥小区{tag}号"
    async with http(settings, "admin") as admin:
        r = await admin.post(f"{liaison}/deputies", headers={"Idempotency-Key": f"{tag}-reg"},
                             json={"deputy_id": deputy_id, "name": "周代表", "level": "provincial", "street": "ST07"})
        assert r.status_code == 201, r.text
    async with http(settings, "deputy", deputy_id=deputy_id) as deputy, http(settings, "office") as office:
        r = await deputy.post(f"{liaison}/submissions", headers={"Idempotency-Key": f"{tag}-sub"}, json={
            "title": "预付卡无法退卡", "content": "群众反映在健身房办的预付卡无法退卡，商家拒绝退费，请协调。",
            "address": address, "street": "ST01"})
        assert r.status_code == 201, r.text
        sid, tid = r.json()["submission_id"], r.json()["ticket_id"]
        await eventually(lambda: deputy.get(f"{liaison}/submissions/{sid}"),
                         lambda r: r.status_code == 200 and r.json()["status"] == "case_opened", timeout=90)
        case = (await office.get(f"{sup}/cases/{tid}")).json()
        assert case["lane"] == "deputy"  # the deputy lane by its origin, the complex item's deputy limit
        assert case["sla_lanes"] == ["complex", "deputy", "deputy_complex"], case["sla_lanes"]
        await drive(settings, tid, case["primary_unit"]["unit_id"],
                    [a["unit_id"] for a in case.get("assisting_units", [])], evaluate=False)
        reported = (await office.get(f"{sup}/cases/{tid}")).json()
        assert reported["state"] == "CASE_STATE_REPORTED"  # 已回传: the city never calls back on a deputy's ticket

        # the office may not call back while the deputy may still rate
        r = await office.post(f"{sup}/cases/{tid}/callback", headers={"Idempotency-Key": f"{tag}-cb"},
                              json={"resolution": "RESOLUTION_RESOLVED", "satisfaction": "SATISFACTION_SATISFIED"})
        assert r.status_code == 409 and "the deputy may rate" in r.text, r.text

        await eventually(lambda: deputy.get(f"{liaison}/submissions/{sid}"),
                         lambda r: r.json()["status"] == "review_passed", timeout=60)
        r = await deputy.post(f"{liaison}/submissions/{sid}/rating", headers={"Idempotency-Key": f"{tag}-rate"},
                              json={"rating": "基本满意", "comment": "路灯已修好"})
        assert r.status_code == 200, r.text

        closed = await eventually(lambda: office.get(f"{sup}/cases/{tid}"),
                                  lambda r: r.json()["state"] == "CASE_STATE_ARCHIVED", timeout=60)
        c = closed.json()
        assert c["closure"] == "CLOSURE_SATISFIED"
        assert c["evaluation"]["satisfaction"] == "SATISFACTION_BASICALLY_SATISFIED"
        assert c["evaluation"]["resolution"] == "RESOLUTION_RESOLVED"
        timeline = await eventually(lambda: deputy.get(f"{liaison}/submissions/{sid}/timeline"),
                                    lambda r: "closed" in [e["status"] for e in r.json()], timeout=60)
        steps = [e["status"] for e in timeline.json() if not e["status"].startswith("assist")]
        assert steps[-2:] == ["evaluated", "closed"], steps

    rate = await eventually(lambda: kpi_satisfaction(settings), lambda r: r is not None, timeout=60)
    assert rate is not None and rate.value == pytest.approx(0.8)  # 基本满意 x 0.8 (KPI policy)
    assert rate.counts["basic"] == 1 and rate.denominator == 1
    async with http(settings, "leader") as leader:
        rows = await eventually(lambda: leader.get(f"{liaison}/statistics"),
                                lambda r: any((x["level"], x["street"]) == ("provincial", "ST07") for x in r.json()))
    row = next(x for x in rows.json() if (x["level"], x["street"]) == ("provincial", "ST07"))
    assert (row["submissions"], row["closed"], row["rated"], row["satisfied"]) == (1, 1, 1, 1)
    assert row["satisfaction_rate"] == pytest.approx(rate.value)  # one definition: the KPI engine's
