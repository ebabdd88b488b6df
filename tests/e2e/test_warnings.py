"""End to end: tickets published to the city's topic raise stored early warnings (预警) that the
office reads through the API, with their warning letter (预警函); a replayed ticket raises nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hotline import pb
from hotline.settings import Settings
from hotline.v1 import ticket_pb2, warnings_pb2
from tests.support import eventually, http, publish_tickets, read_topic

pytestmark = pytest.mark.e2e


def ticket(tid: str, at: datetime, text: str, address: str, phone: str) -> ticket_pb2.CityTicket:
    return ticket_pb2.CityTicket(
        city_ticket_id=tid, ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title=text[:10], content=text,
        address=address, caller=ticket_pb2.Caller(name="李四", phone=phone), received_at=pb.ts(at),
        dispatched_at=pb.ts(at + timedelta(minutes=2)))


async def test_published_tickets_raise_stored_warnings(platform: dict, settings: Settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    run = now.strftime("%H%M%S")
    tickets = [
        ticket(f"W{run}1", now - timedelta(days=12), "楼上装修噪音扰民", "中华路1号", "13711112222"),
        ticket(f"W{run}2", now - timedelta(days=5), "夜间施工噪音", "雨花路8号", "13711112222"),
        ticket(f"W{run}3", now - timedelta(hours=2), "广场舞音响太吵，再不管就找媒体曝光", "长干里9号", "13711112222"),
    ]
    await publish_tickets(settings, tickets)
    await publish_tickets(settings, tickets[2:])  # the city sends the last one twice
    base = f"http://{settings.bind_host}:{settings.ports.supervision_http}"
    async with http(settings, "office") as office, http(settings, "unit", unit_id="ST01") as unit:
        async def ours() -> list[dict[str, Any]]:
            r = await office.get(f"{base}/warnings", params={"limit": 500})
            assert r.status_code == 200, r.text
            return [x for x in r.json()["warnings"] if x["ticket_ids"][-1] == f"W{run}3"]

        found = await eventually(ours, lambda ws: len(ws) >= 2, timeout=60)
        kinds = sorted(x["kind"] for x in found)
        assert kinds == ["keyword", "repeat_caller"], found
        repeat = next(x for x in found if x["kind"] == "repeat_caller")
        assert repeat["ticket_ids"] == [f"W{run}1", f"W{run}2", f"W{run}3"]
        assert "13711112222" not in str(repeat) and repeat["level"] == "yellow"
        assert "30天内第3次" in repeat["explanation"]

        r = await office.get(f"{base}/warnings/{repeat['warning_id']}/letter")
        assert r.status_code == 200 and "预警函" in r.text and f"W{run}1" in r.text
        r = await office.get(f"{base}/warnings/{repeat['warning_id']}")
        assert r.status_code == 200 and r.json()["warning_id"] == repeat["warning_id"]
        assert (await office.get(f"{base}/warnings/no-such")).status_code == 404
        assert (await unit.get(f"{base}/warnings")).status_code == 403

    async def published() -> list[str]:
        events = await read_topic(settings, settings.topics.name("warning_events"), expect=None, timeout=2)
        return [warnings_pb2.WarningRaised.FromString(e.value).warning.warning_id for e in events]

    await eventually(published, lambda ids: repeat["warning_id"] in ids, timeout=60)
    async with http(settings, "office") as office:  # the duplicate ticket stored no second warning
        r = await office.get(f"{base}/warnings", params={"limit": 500})
        assert sorted(x["kind"] for x in r.json()["warnings"] if f"W{run}3" in x["ticket_ids"]) == kinds


async def test_a_saved_version_of_the_rules_is_served_and_used_for_the_next_ticket(
    platform: dict, settings: Settings
) -> None:
    """预警规则 as a versioned policy: a refused document is 422 naming its field; a saved one is a
    new version, served back, audited, and the next ticket is assessed with it (its new red keyword)."""
    base = f"http://{settings.bind_host}:{settings.ports.supervision_http}/policies/warning_rules"
    run = f"{datetime.now(UTC):%H%M%S}"
    word = f"测试风险词{run}"
    async with http(settings, "office") as office, http(settings, "leader") as leader, \
            http(settings, "unit", unit_id="ST01") as unit:
        r = await office.get(base)
        assert r.status_code == 200, r.text
        current = r.json()
        assert current["version"] >= 1 and "burst" in current["doc"]
        assert (await unit.get(base)).status_code == 403

        doc = {**current["doc"], "keywords": {**current["doc"]["keywords"]}}
        broken = {**doc, "burst": {**doc["burst"], "p_value": 2}}
        r = await office.put(base, json={"doc": broken, "reason": "试", "expected_version": current["version"]},
                             headers={"Idempotency-Key": f"bad-{run}"})
        assert r.status_code == 422 and r.json()["field"] == "burst.p_value", r.text
        doc["keywords"]["red"] = [*doc["keywords"]["red"], word]
        body = {"doc": doc, "reason": "新增红色关键词", "expected_version": current["version"]}
        assert (await leader.put(base, json=body, headers={"Idempotency-Key": f"l-{run}"})).status_code == 403
        r = await office.put(base, json=body, headers={"Idempotency-Key": f"ok-{run}"})
        assert r.status_code == 200, r.text
        saved = r.json()
        assert saved["version"] == current["version"] + 1 and saved["doc"]["version"] == f"v{saved['version']}"
        r = await office.put(base, json=body, headers={"Idempotency-Key": f"again-{run}"})
        assert r.status_code == 409 and "reload" in r.json()["detail"]  # made from a version no longer newest

        served = (await office.get(base)).json()
        assert served["version"] == saved["version"] and word in served["doc"]["keywords"]["red"]
        versions = (await leader.get(f"{base}/versions")).json()["versions"]
        assert [v["version"] for v in versions][:2] == [saved["version"], current["version"]]
        older = (await office.get(f"{base}/versions/{current['version']}")).json()
        assert word not in older["doc"]["keywords"]["red"]
        trail = (await office.get(f"http://{settings.bind_host}:{settings.ports.supervision_http}/audit",
                                  params={"ticket_id": "warning_rules"})).json()["entries"]
        assert trail[0]["action"] == "save_warning_rules" and trail[0]["reason"] == "新增红色关键词"

        now = datetime.now(UTC).replace(microsecond=0)
        tid = f"WR{now:%H%M%S}"
        await publish_tickets(settings, [ticket(tid, now, f"小区门口有人说要{word}", "中山路3号", "13900001111")])

        async def raised() -> list[dict[str, Any]]:
            r = await office.get(f"http://{settings.bind_host}:{settings.ports.supervision_http}/warnings",
                                 params={"kind": "keyword", "limit": 500})
            return [x for x in r.json()["warnings"] if x["ticket_ids"] == [tid]]

        found = await eventually(raised, lambda ws: len(ws) == 1, timeout=60)
        assert found[0]["level"] == "red" and found[0]["rules_version"] == f"v{saved['version']}", found
        assert word in found[0]["explanation"]
