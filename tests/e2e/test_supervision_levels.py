"""End to end, through the running platform (real Kafka and store): four-level supervision
(督办) with its letter and gauges, level 1 raised automatically (once) by an unsatisfied city
evaluation, whistles (吹哨报到) within the summoned units' scope, and merged tickets (并单)
closing with their parent's result."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from google.protobuf import json_format

from hotline import pb
from hotline.settings import Settings
from hotline.v1 import (
    case_pb2,
    events_pb2,
    lifecycle_pb2,
    services_pb2,
    services_pb2_grpc,
    supervision_pb2_grpc,
    ticket_pb2,
)
from hotline.v1 import supervision_pb2 as sv
from hotline_dev.simulator import generate
from tests.support import channel, eventually, http, publish_raw, publish_tickets, read_topic

pytestmark = pytest.mark.e2e


def base(settings: Settings) -> str:
    return f"http://{settings.bind_host}:{settings.ports.supervision_http}"


async def open_cases(settings: Settings, seed: int, n: int) -> list[events_pb2.Case]:
    tickets = list(generate(n, seed=seed))
    now = datetime.now(UTC)
    for t in tickets:
        t.received_at.FromDatetime(now)
        t.dispatched_at.FromDatetime(now)
    await publish_tickets(settings, tickets)
    async with channel(settings, "supervision") as chan:
        stub = services_pb2_grpc.SupervisionServiceStub(chan)

        async def opened() -> list[Any]:
            out = []
            for t in tickets:
                try:
                    out.append(await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=t.city_ticket_id)))
                except Exception:
                    return []
            return out

        cases: list[events_pb2.Case] = await eventually(opened, lambda got: len(got) == n, timeout=120)
    return cases


async def post(client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str, status: int = 200) -> Any:
    r = await client.post(url, json=body, headers={"Idempotency-Key": key})
    assert r.status_code == status, (url, r.status_code, r.text)
    return r.json()


async def report(settings: Settings, case: events_pb2.Case, satisfied: bool) -> None:
    """Handle the case to a passed review, then the city's callback evaluation."""
    tid, unit = case.ticket_id, case.primary_unit.unit_id
    url = f"{base(settings)}/cases/{tid}"
    async with http(settings, "unit", unit_id=unit) as me, http(settings, "office") as office:
        await post(me, f"{url}/sign-off", {"note": "已签收"}, f"{tid}/sign")
        await post(me, f"{url}/contacts", {"channel": "CONTACT_CHANNEL_PHONE", "outcome": "CONTACT_OUTCOME_REACHED",
                                           "note": "已电话联系"}, f"{tid}/contact")
        for task in case.assists:
            await post(office, f"{url}/assists/{task.unit_id}/waive", {"reason": "主办单位可独立办结"},
                       f"{tid}/waive/{task.unit_id}")
        await post(me, f"{url}/reply", {"result": "REPLY_RESULT_RESOLVED", "text": "已现场处置完毕"}, f"{tid}/reply")
        reviewed = await post(office, f"{url}/review", {"passed": True}, f"{tid}/review")
    evaluation = lifecycle_pb2.CityEvaluation(
        evaluation_id=f"EV-{tid}", city_ticket_id=reviewed["city_ticket_id"], result_id=reviewed["result_id"],
        resolution=case_pb2.RESOLUTION_RESOLVED if satisfied else case_pb2.RESOLUTION_UNRESOLVED,
        satisfaction=case_pb2.SATISFACTION_SATISFIED if satisfied else case_pb2.SATISFACTION_UNSATISFIED,
        comment="满意" if satisfied else "问题仍然存在", evaluated_at=pb.ts(datetime.now(UTC)))
    value = json_format.MessageToJson(evaluation, indent=None).encode()
    for _ in range(2):  # the city sends it twice: level 1 is still raised once
        await publish_raw(settings, settings.topics.name("city_evaluations"), [(evaluation.city_ticket_id.encode(),
                                                                                value)])


@pytest.fixture(scope="module")
def platform_env() -> dict[str, str]:
    """The supervision-level gauges recounted every second (a minute by default): commands do not
    recount them, the background loop does."""
    return {"HOTLINE_SLA__LEVEL_GAUGE_SECONDS": "1"}


async def gauges(client: httpx.AsyncClient, settings: Settings) -> dict[str, float]:
    """The per-level supervision gauges, e.g. {"open/2": 1.0, "ratio/3": 1.0} (empty until the first recount)."""
    text = (await client.get(f"{base(settings)}/metrics")).text
    found = re.findall(r'^hotline_supervision_(open|resolution_ratio)\{level="(\d)"\} (\S+)$', text, re.MULTILINE)
    return {f"{'open' if name == 'open' else 'ratio'}/{level}": float(value) for name, level, value in found}


async def test_four_levels_letter_visits_gauges_and_automatic_level_one(platform: dict, settings: Settings) -> None:
    (case,) = await open_cases(settings, 1010, 1)
    tid, unit = case.ticket_id, case.primary_unit.unit_id
    url = f"{base(settings)}/cases/{tid}"
    async with http(settings, "office") as office, http(settings, "unit", unit_id=unit) as me, \
            http(settings, "unit", unit_id=f"X{unit}") as other, http(settings, "leader") as leader:
        before = await eventually(lambda: gauges(office, settings), lambda g: len(g) == 8)  # the first recount
        await post(office, f"{url}/supervision", {"level": 1, "reason": "x"}, "l1", 400)  # the system's
        got = await post(office, f"{url}/supervision", {"level": 2, "reason": "逾期未反馈", "joint_discipline": True},
                         "l2")
        again = await post(office, f"{url}/supervision", {"level": 2, "reason": "逾期未反馈",
                                                          "joint_discipline": True}, "l2")
        assert got == again and got["level"] == 2 and got["joint_discipline"]  # a retry: the first answer
        await post(office, f"{url}/supervision", {"level": 2, "reason": "again"}, "l2b", 409)
        letter = await office.get(f"{url}/supervision/letter")
        assert letter.status_code == 200 and "督办函" in letter.text and "督字〔" in letter.text, letter.text
        assert "联合区纪委监委督办" in letter.text
        assert (await me.get(f"{url}/supervision")).json()["level"] == 2  # its own case
        assert (await other.get(f"{url}/supervision")).status_code == 404  # another unit's: not found
        await post(me, f"{url}/supervision", {"level": 3, "reason": "x"}, "u3", 403)

        async with channel(settings, "supervision", "office") as chan:
            stub = supervision_pb2_grpc.EscalationServiceStub(chan)
            key = [("idempotency-key", f"{tid}/l3")]
            s = await stub.RaiseSupervision(sv.RaiseSupervisionRequest(ticket_id=tid, level=3, reason="作风问题"),
                                            metadata=key)
            assert s.level == 3
            s = await stub.RecordVisit(sv.RecordVisitRequest(ticket_id=tid, supervisor="作风监督员08号", covert=True,
                                                             findings="窗口人员推诿"),
                                       metadata=[("idempotency-key", f"{tid}/visit")])
            assert s.records[-1].visits[0].covert
            cases = services_pb2_grpc.SupervisionServiceStub(chan)
            assert (await cases.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))).supervision_level == 3
            await stub.CloseSupervision(sv.CloseSupervisionRequest(ticket_id=tid, level=3, resolved=True,
                                                                   outcome="已整改"),
                                        metadata=[("idempotency-key", f"{tid}/c3")])
        await post(leader, f"{url}/supervision", {"level": 4, "reason": "群众反映强烈", "leader": "王副区长"}, "l4")
        await post(leader, f"{url}/supervision/close", {"level": 4, "resolved": False, "outcome": "需市级协调"},
                   "c4")
        s = (await office.get(f"{url}/supervision")).json()
        assert s["level"] == 2 and [r["level"] for r in s["records"]] == [2, 3, 4]
        async with channel(settings, "supervision", "office") as chan:
            assert (await services_pb2_grpc.SupervisionServiceStub(chan).GetCase(
                services_pb2.GetCaseRequest(ticket_id=tid))).supervision_level == 2
        # the gauges follow with the next recount: level 2 open once more, level 3 resolved, level 4 not
        assert before["ratio/3"] == 0.0 and before["ratio/4"] == 0.0  # nothing of levels 3 and 4 closed yet
        # (a recount may fall between closing level 3 and closing level 4: wait for one after both)
        after = await eventually(lambda: gauges(office, settings),
                                 lambda g: g["ratio/3"] == 1.0 and g["open/3"] == g["open/4"] == 0, timeout=30)
        assert after["ratio/4"] == 0.0
        assert after["open/2"] == before["open/2"] + 1

    # level 1: the system raises it when the city's evaluation is unsatisfied, once for the evaluation sent twice
    (poor,) = await open_cases(settings, 1011, 1)
    await report(settings, poor, satisfied=False)
    async with http(settings, "office") as office:
        async def supervision() -> dict[str, Any]:
            r = await office.get(f"{base(settings)}/cases/{poor.ticket_id}/supervision")
            return dict(r.json()) if r.status_code == 200 else {}

        s = await eventually(supervision, lambda s: s.get("level") == 1, timeout=120)
        assert len(s["records"]) == 1 and s["records"][0]["raised_by"]["role"] == "system"
        assert "不满意" in s["records"][0]["reason"] or "未解决" in s["records"][0]["reason"]
        history = (await office.get(f"{base(settings)}/cases/{poor.ticket_id}/history")).json()["entries"]
        assert [e["action"] for e in history].count("raise_supervision") == 1


async def test_whistles_within_scope(platform: dict, settings: Settings) -> None:
    url = f"{base(settings)}/whistles"
    async with http(settings, "unit", unit_id="ST01") as street, http(settings, "unit", unit_id="DP01") as dp01, \
            http(settings, "unit", unit_id="DP02") as dp02, http(settings, "unit", unit_id="DP09") as dp09:
        by_dp = await post(dp01, url, {"problem": "执法协同", "unit_ids": ["DP02"]}, "w-dp")  # departments whistle too
        assert by_dp["street_unit_id"] == "DP01"
        w = await post(street, url, {"problem": "菜场周边占道经营屡禁不止", "unit_ids": ["DP01", "DP02"]}, "w-1")
        wid = w["whistle_id"]
        assert w["state"] == "WHISTLE_STATE_OPEN" and [s["unit_id"] for s in w["summoned"]] == ["DP01", "DP02"]
        assert (await dp02.get(f"{url}/{wid}")).json()["overdue_units"] == []  # within the limit
        assert (await dp09.get(f"{url}/{wid}")).status_code == 404
        assert wid not in {x["whistle_id"] for x in (await dp09.get(url)).json()["whistles"]}
        assert wid in {x["whistle_id"] for x in (await dp02.get(url)).json()["whistles"]}
        await post(dp09, f"{url}/{wid}/report-in", {}, "r-9", 404)
        await post(dp01, f"{url}/{wid}/report-in", {"note": "执法队已到场"}, "r-1")
        await post(dp01, f"{url}/{wid}/report-in", {}, "r-1b", 409)
        async with channel(settings, "supervision", "unit", unit_id="DP02") as chan:
            got = await supervision_pb2_grpc.EscalationServiceStub(chan).ReportIn(
                sv.ReportInRequest(whistle_id=wid, note="已到场"), metadata=[("idempotency-key", "r-2")])
        assert got.state == sv.WHISTLE_STATE_REPORTED and all(s.on_time for s in got.summoned)
        await post(dp01, f"{url}/{wid}/close", {"outcome": "x"}, "c-1", 403)
        closed = await post(street, f"{url}/{wid}/close", {"resolved": True, "outcome": "联合执法，已清理"}, "c-2")
        assert closed["state"] == "WHISTLE_STATE_CLOSED" and closed["resolved"]


async def test_merged_tickets_close_with_the_parent(platform: dict, settings: Settings) -> None:
    parent, c1, c2 = await open_cases(settings, 1012, 3)
    async with http(settings, "office") as office:
        r = await office.get(f"{base(settings)}/cases/{parent.ticket_id}/merge-suggestions")
        assert r.status_code == 200 and isinstance(r.json()["suggestions"], list), r.text
        body = {"parent_ticket_id": parent.ticket_id, "ticket_ids": [c1.ticket_id, c2.ticket_id], "reason": "同一事件"}
        merged = await post(office, f"{base(settings)}/merges", body, "m-1")
        assert merged["merged"] == [c1.ticket_id, c2.ticket_id]
        await post(office, f"{base(settings)}/merges", body | {"parent_ticket_id": c1.ticket_id,
                                                                "ticket_ids": [c2.ticket_id]}, "m-2", 409)
        await post(office, f"{base(settings)}/cases/{parent.ticket_id}/meeting",
                   {"scheduled_at": "2026-12-01T02:00:00Z", "place": "街道会议室"}, "meet")
        await post(office, f"{base(settings)}/cases/{parent.ticket_id}/supervision", {"level": 2, "reason": "群众反映"},
                   "p-l2")
    await report(settings, parent, satisfied=True)
    async with channel(settings, "supervision") as chan:
        stub = services_pb2_grpc.SupervisionServiceStub(chan)

        async def children() -> list[events_pb2.Case]:
            return [await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=c.ticket_id)) for c in (c1, c2)]

        done = await eventually(children, lambda cs: all(c.state == events_pb2.CASE_STATE_ARCHIVED for c in cs),
                                timeout=120)
        assert all(c.closure == case_pb2.CLOSURE_MERGED and c.reply.text == "已现场处置完毕" for c in done)
        history = await stub.GetCaseHistory(lifecycle_pb2.GetCaseHistoryRequest(ticket_id=c1.ticket_id))
        assert [e.action for e in history.entries].count("close_merged") == 1
    results = await read_topic(settings, settings.topics.name("city_results"), expect=None, timeout=5)
    reported = [json.loads(m.value) for m in results if m.key.decode() == c1.city_ticket_id]
    assert len(reported) == 1 and reported[0]["text"] == "已现场处置完毕", reported  # 回传 once, the parent's reply
    async with http(settings, "office") as office:  # the parent's open supervision closed with it, resolved
        s = (await office.get(f"{base(settings)}/cases/{parent.ticket_id}/supervision")).json()
        assert s["meeting"]["place"] == "街道会议室" and s["merged"] == [c1.ticket_id, c2.ticket_id]
        assert s.get("level", 0) == 0 and [r["state"] for r in s["records"]] == ["SUPERVISION_STATE_RESOLVED"]


async def test_recurring_unresolved_problems_listed_and_tracked(platform: dict, settings: Settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    run = now.strftime("%H%M%S")
    address = f"中华路{run}号"
    tickets = [ticket_pb2.CityTicket(
        city_ticket_id=f"R{run}{i}", ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title="占道经营",
        content=f"门口占道经营，第{i}次反映", address=address,
        caller=ticket_pb2.Caller(name="张三", phone="13900001111"),
        received_at=pb.ts(now - timedelta(hours=3 - i)), dispatched_at=pb.ts(now - timedelta(hours=3 - i)))
        for i in range(3)]
    await publish_tickets(settings, tickets)
    month = now.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m")
    url = f"{base(settings)}/recurring-lists/{month}"
    async with http(settings, "office") as office, http(settings, "leader") as leader:
        async def ours() -> list[dict[str, Any]]:
            got = await post(office, url, {}, f"gen-{run}-{datetime.now(UTC).timestamp()}")
            return [i for i in got.get("items", []) if i["ticket_ids"][0] == tickets[0].city_ticket_id]

        (item,) = await eventually(ours, lambda items: len(items) == 1, timeout=120, every=2)
        assert item["ticket_ids"] == [t.city_ticket_id for t in tickets] and item["state"] == "RECURRING_STATE_OPEN"
        digest = item["item_id"].split("/", 1)[1]
        done = await post(office, f"{url}/items/{digest}/resolution", {"outcome": "联合执法已取缔"}, f"res-{run}")
        assert done["state"] == "RECURRING_STATE_RESOLVED"
        await post(office, f"{url}/items/{digest}/resolution", {"outcome": "again"}, f"res2-{run}", 409)
        listed = (await leader.get(url)).json()
        assert next(i for i in listed["items"] if i["item_id"] == item["item_id"])["outcome"] == "联合执法已取缔"
        assert (await office.get(f"{base(settings)}/recurring-lists/2026-13")).status_code == 400
