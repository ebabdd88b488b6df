"""One decision of a case's limits, through the running platform (issue #22): city tickets with no
urgency and no tags whose text routes them to the responsibility list's emergency items get the
emergency sign-off and first-contact limits (the assignment carries the item's lane); a
``caller.enterprise`` ticket gets the enterprise lane on the case and in the KPIs; a tourism item
received on a rest day gets the same-day reply limit. The KPI ``lane`` dimension is the case's
lane (one definition: the SLA policy's ``case_lanes``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hotline import pb
from hotline.settings import Settings
from hotline.v1 import kpis_pb2, services_pb2_grpc, ticket_pb2
from tests.e2e.test_pipeline import cases_of as get_cases
from tests.support import channel, eventually, publish_tickets

pytestmark = pytest.mark.e2e
TZ = ZoneInfo("Asia/Shanghai")
SUNDAY = datetime(2026, 6, 14, 10, tzinfo=TZ)  # a rest day no other e2e test receives tickets on
DAY = "2026-06-14"

# name -> (category the city names, text, list item it must route to, expected SLA lanes)
EMERGENCY_ITEMS = {
    "lift": ("物业管理", "电梯困人，一位老人被困在电梯里出不来", "物业管理-08", ("emergency",)),
    "gas": ("水电气热", "楼道里燃气味很重，怀疑燃气泄漏，漏气", "水电气热-04", ("utilities", "emergency")),
    "burst": ("水电气热", "小区水管爆裂，爆管跑水", "水电气热-10", ("utilities", "emergency")),
    "outage": ("水电气热", "整栋楼停电，变压器线路烧毁", "水电气热-11", ("utilities", "emergency")),
}


def city_ticket(tag: str, name: str, category: str, text: str, enterprise: bool = False) -> ticket_pb2.CityTicket:
    return ticket_pb2.CityTicket(
        city_ticket_id=f"LN-{tag}-{name}", ticket_type=ticket_pb2.TICKET_TYPE_HELP, title=text[:8], content=text,
        category=category, address=f"瑞金路街道瑞金北村{tag}", received_at=pb.ts(SUNDAY),
        urgency=ticket_pb2.URGENCY_NORMAL, caller=ticket_pb2.Caller(enterprise=enterprise))


async def counts_by(settings: Settings, dimension: str) -> dict[str, int]:
    async with channel(settings, "metrics") as chan:
        stub = services_pb2_grpc.MetricsServiceStub(chan)
        result = await stub.GetKpis(kpis_pb2.GetKpisRequest(period=DAY, group_by=[dimension]))
    return {g.key[dimension]: g.tickets for g in result.groups if g.tickets}


async def test_list_lanes_enterprise_callers_and_rest_day_tourism_reach_the_clocks_and_the_kpis(
        platform: dict, settings: Settings) -> None:
    tag = uuid.uuid4().hex[:6]
    tickets = {name: city_ticket(tag, name, category, text) for name, (category, text, _, _) in EMERGENCY_ITEMS.items()}
    tickets["company"] = city_ticket(tag, "company", "物业管理", "公司所在园区物业乱收费，企业经营受影响",
                                     enterprise=True)
    tickets["tourist"] = city_ticket(tag, "tourist", "文旅与政务服务", "景区游客太多，门票售完仍放人进入")
    ids = await publish_tickets(settings, tickets.values())
    cases = await eventually(lambda: get_cases(settings, ids), lambda found: len(found) == len(ids), timeout=90)

    for name, (_, _, item, lanes) in EMERGENCY_ITEMS.items():
        case = cases[tickets[name].city_ticket_id]
        assert tuple(case.sla_lanes) == lanes, (name, item)
        assert case.lane == "emergency", name
        assert case.urgency == ticket_pb2.URGENCY_NORMAL  # no urgency: the list item's lane alone
        opened = pb.dt(case.opened_at)
        for due in (case.sign_off_due, case.contact_due):  # 2 h from the assignment (just before opening)
            assert timedelta(hours=2) - timedelta(minutes=5) <= pb.dt(due) - opened <= timedelta(hours=2), name

    company = cases[tickets["company"].city_ticket_id]
    assert company.lane == "enterprise" and list(company.sla_lanes) == ["enterprise"]
    opened = pb.dt(company.opened_at)
    assert timedelta(hours=11, minutes=55) <= pb.dt(company.sign_off_due) - opened <= timedelta(hours=12)
    assert timedelta(hours=7, minutes=55) <= pb.dt(company.contact_due) - opened <= timedelta(hours=8)

    tourist = cases[tickets["tourist"].city_ticket_id]
    assert tourist.lane == "tourist" and list(tourist.sla_lanes) == ["holiday_tourist"]
    assert pb.dt(tourist.reply_due).astimezone(TZ) == datetime(2026, 6, 15, tzinfo=TZ)  # 当日办结: 24:00 that day

    # the KPI lane dimension is the case's lane: the same tickets, the same lanes
    expected = {"emergency": len(EMERGENCY_ITEMS), "enterprise": 1, "tourist": 1}
    counts = await eventually(lambda: counts_by(settings, "lane"), lambda found: found == expected, timeout=60)
    assert counts == expected
    items = await counts_by(settings, "list_item")  # each ticket went to the emergency item its text names
    assert {item for _, _, item, _ in EMERGENCY_ITEMS.values()} <= set(items), items
