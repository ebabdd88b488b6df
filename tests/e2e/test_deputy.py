"""End to end (issue 12): a deputy's problem travels over Kafka into a routed, supervised ticket;
units and the office drive its lifecycle through supervision's API; the deputy reads the whole
timeline, rates and escalates the outcome; notifications and figures follow; deputies and liaison
officers see only their own; a month's list names the repeated problem of the deputy's area."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import json_format
from openpyxl import Workbook

from hotline import mongo, pb
from hotline.auth import grpc_channel
from hotline.settings import Settings
from hotline.v1 import (
    case_pb2,
    deputy_pb2,
    events_pb2,
    lifecycle_pb2,
    services_pb2,
    services_pb2_grpc,
    supervision_pb2,
    supervision_pb2_grpc,
    ticket_pb2,
)
from tests.e2e.test_pipeline import drained
from tests.support import channel, eventually, http, publish_raw, publish_tickets, read_topic, token

pytestmark = pytest.mark.e2e

CSV = ("代表编号,姓名,层级,街道,社区,联系方式类型,联系方式,联络员编号\n"
       "DE1,张代表,区,ST01,CM0101,wechat,zhang_wx,LO-E\n"
       "DE2,李代表,市,ST02,,sms,,LO-E\n").encode()


def base(settings: Settings, service: str) -> str:
    return f"http://{settings.bind_host}:{settings.ports.http(service)}"


def xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_registry_imports_and_validation(platform: dict, settings: Settings) -> None:
    liaison = base(settings, "deputy_liaison")
    async with http(settings, "admin") as admin, http(settings, "liaison", officer_id="LO-F") as officer_f:
        r = await admin.post(f"{liaison}/liaison-officers", headers={"Idempotency-Key": "lo-e"},
                             json={"officer_id": "LO-E", "name": "王联络", "street": "ST01"})
        assert r.status_code == 201, r.text
        r = await admin.post(f"{liaison}/deputies/import", headers={"Idempotency-Key": "imp-csv"},
                             files={"file": ("代表名册.csv", CSV, "text/csv")})
        assert r.status_code == 201 and r.json()["imported"] == 2, r.text
        again = await admin.post(f"{liaison}/deputies/import", headers={"Idempotency-Key": "imp-csv-2"},
                                 files={"file": ("代表名册.csv", CSV, "text/csv")})
        assert again.status_code == 409  # the same file twice is one import
        bad = xlsx([["代表编号", "姓名", "层级", "街道", "社区"], ["DX1", "赵代表", "乡", "ST01", ""],
                    ["DX2", "钱代表", "区", "ST01", "CM0201"]])
        r = await officer_f.post(f"{liaison}/deputies/import", headers={"Idempotency-Key": "imp-bad"},
                                 files={"file": ("bad.xlsx", bad, "application/octet-stream")})
        assert r.status_code in (400, 422) and "第2行" in r.text and "代表层级" in r.text and "第3行" in r.text, r.text
        good = xlsx([["代表编号", "姓名", "层级", "街道", "社区", "联络员编号"],
                     ["DF1", "孙代表", "省", "ST02", "", "LO-OTHER"]])
        r = await officer_f.post(f"{liaison}/deputies/import", headers={"Idempotency-Key": "imp-xlsx"},
                                 files={"file": ("f.xlsx", good, "application/octet-stream")})
        assert r.status_code == 201, r.text
        mine = (await officer_f.get(f"{liaison}/deputies")).json()
        assert [(d["deputy_id"], d["level"], d["liaison_officer_id"]) for d in mine] == [
            ("DF1", "provincial", "LO-F")]  # a liaison officer imports its own deputies only
        trail = (await admin.get(f"{liaison}/audit", params={"actor": "liaison:LO-F"})).json()["entries"]
        assert any(e["action"] == "import_deputies" for e in trail)
    async with http(settings, "deputy", deputy_id="DE1") as deputy:
        r = await deputy.post(f"{liaison}/submissions", headers={"Idempotency-Key": "too-long"},
                              json={"title": "标" * 501, "content": "内容足够长的群众诉求"})
        assert r.status_code == 422 and "内容过长" in r.text


async def test_an_officers_import_cannot_take_over_another_officers_deputy(platform: dict,
                                                                          settings: Settings) -> None:
    """Issue #19: the import upserted rows of another officer's deputies and made them the caller's."""
    liaison = base(settings, "deputy_liaison")
    theirs = ("代表编号,姓名,层级,街道,社区,联系方式类型,联系方式,联络员编号\n"
              "DG1,周代表,区,ST02,,sms,13800000001,LO-G\n").encode()
    async with http(settings, "admin") as admin, http(settings, "liaison", officer_id="LO-H") as officer_h:
        r = await admin.post(f"{liaison}/deputies/import", headers={"Idempotency-Key": "imp-g"},
                             files={"file": ("g.csv", theirs, "text/csv")})
        assert r.status_code == 201, r.text
        before = (await admin.get(f"{liaison}/deputies/DG1")).json()
        grab = xlsx([["代表编号", "姓名", "层级", "街道", "社区", "联系方式类型", "联系方式"],
                     ["DH1", "吴代表", "区", "ST02", "", "", ""],
                     ["DG1", "周代表", "区", "ST02", "", "sms", "13900000009"]])
        r = await officer_h.post(f"{liaison}/deputies/import", headers={"Idempotency-Key": "imp-grab"},
                                 files={"file": ("grab.xlsx", grab, "application/octet-stream")})
        assert r.status_code == 403 and "第3行" in r.text and "DG1" in r.text, r.text
        assert (await admin.get(f"{liaison}/deputies/DG1")).json() == before  # nothing changed
        assert (await admin.get(f"{liaison}/deputies/DH1")).status_code == 404  # not even the other row
        assert [d["deputy_id"] for d in (await officer_h.get(f"{liaison}/deputies")).json()] == []
        moved = theirs.replace(b"LO-G", b"LO-H")
        r = await admin.post(f"{liaison}/deputies/import", headers={"Idempotency-Key": "imp-move"},
                             files={"file": ("move.csv", moved, "text/csv")})
        assert r.status_code == 201, r.text  # the admin may reassign
        assert (await admin.get(f"{liaison}/deputies/DG1")).json()["liaison_officer_id"] == "LO-H"
    # the masking table: the citizen's contact only for the deputy who brought it, in a list as in one submission
    # (street ST02 at district level: the end-to-end test counts ST01's district figures)
    async with http(settings, "deputy", deputy_id="DG1") as deputy, http(settings, "office") as office, \
            http(settings, "liaison", officer_id="LO-H") as officer_h:
        r = await deputy.post(f"{liaison}/submissions", headers={"Idempotency-Key": "dg1-1"},
                              json={"title": "小区门口路灯不亮", "content": "小区门口路灯连续一周不亮，夜间出行不便",
                                    "address": "幸福路1号",
                                    "citizen": {"name": "周群众", "phone": "13812345678", "consent": True}})
        assert r.status_code in (200, 201), r.text
        own = (await deputy.get(f"{liaison}/deputies/DG1/submissions")).json()
        assert own[0]["citizen"] == {"name": "周群众", "phone": "13812345678"}
        for reader in (officer_h, office):
            listed = (await reader.get(f"{liaison}/deputies/DG1/submissions")).json()
            assert listed and all("citizen" not in x for x in listed), listed
            one = (await reader.get(f"{liaison}/submissions/{listed[0]['submission_id']}")).json()
            assert "citizen" not in one


async def drive(settings: Settings, tid: str, unit: str, assisting: list[str], evaluate: bool = True) -> None:
    """Unit and office through supervision's HTTP API, the callback centre over Kafka (unless
    ``evaluate`` is False: the test sent its evaluation itself)."""
    sup = base(settings, "supervision")
    async with http(settings, "unit", unit_id=unit) as u, http(settings, "office") as office:
        for helper in assisting:  # the office waives the assisting sub-cases (免于协办)
            r = await office.post(f"{sup}/cases/{tid}/assists/{helper}/waive", json={"reason": "无需协办"},
                                  headers={"Idempotency-Key": f"{tid}-waive-{helper}"})
            assert r.status_code == 200, r.text
        for path, body in (("sign-off", {"note": "已签收"}),
                           ("contacts", {"channel": "CONTACT_CHANNEL_PHONE", "outcome": "CONTACT_OUTCOME_REACHED",
                                         "note": "已电话联系群众"}),
                           ("reply", {"result": "REPLY_RESULT_RESOLVED", "text": "已维修路灯，恢复照明。"})):
            r = await u.post(f"{sup}/cases/{tid}/{path}", headers={"Idempotency-Key": f"{tid}-{path}"}, json=body)
            assert r.status_code == 200, (path, r.text)
        r = await office.post(f"{sup}/cases/{tid}/review", headers={"Idempotency-Key": f"{tid}-review"},
                              json={"passed": True})
        assert r.status_code == 200, r.text
        case = r.json()
    if not evaluate:
        return
    evaluation = lifecycle_pb2.CityEvaluation(
        evaluation_id=f"EV-{hashlib.sha1(tid.encode()).hexdigest()[:16]}", city_ticket_id=tid,
        result_id=case["result_id"], resolution=case_pb2.RESOLUTION_RESOLVED,
        satisfaction=case_pb2.SATISFACTION_SATISFIED, comment="满意", evaluated_at=pb.ts(datetime.now(UTC)))
    await publish_raw(settings, settings.topics.name("city_evaluations"),
                      [(tid.encode(), json_format.MessageToJson(evaluation, indent=None).encode())])


async def test_a_deputy_problem_end_to_end(platform: dict, settings: Settings) -> None:
    liaison = base(settings, "deputy_liaison")
    target = f"{settings.bind_host}:{settings.ports.grpc('deputy_liaison')}"
    request = services_pb2.SubmitProblemRequest(
        title="长干桥小区路灯不亮", content="群众反映长干桥小区路灯不亮已一个月，夜间出行不便，请尽快维修。",
        address="长干桥小区", ticket_type=ticket_pb2.TICKET_TYPE_HELP,
        details=deputy_pb2.DeputyProblemDetails(
            community="CM0101", citizen=deputy_pb2.CitizenContact(name="王五", phone="", consent=False),
            attachments=[case_pb2.Attachment(uri="https://files.example/deputy/1.jpg", name="照片.jpg")]))
    async with grpc_channel(target, token(settings, "deputy", deputy_id="DE1"),
                            metadata=[("idempotency-key", "e2e-1")]) as chan:
        answer = await services_pb2_grpc.DeputyLiaisonServiceStub(chan).SubmitProblem(request)
    sid, tid = answer.submission_id, answer.ticket_id
    async with http(settings, "deputy", deputy_id="DE1") as deputy, http(settings, "office") as office:
        opened = await eventually(lambda: deputy.get(f"{liaison}/submissions/{sid}"),
                                  lambda r: r.status_code == 200 and r.json()["status"] == "case_opened")
        sub = opened.json()
        assert sub["street"] == "ST01" and sub["citizen"] == {} and sub["attachments"][0]["name"] == "照片.jpg"
        ticket = (await office.get(f"{base(settings, 'intake')}/tickets/{tid}")).json()
        assert ticket["source"] == "deputy" and "人大代表" in ticket["tags"]
        attached = [(a["uri"], a["name"]) for a in ticket["attachments"]]
        assert attached == [("https://files.example/deputy/1.jpg", "照片.jpg")]
        case = (await office.get(f"{base(settings, 'supervision')}/cases/{tid}")).json()
        unit = case["primary_unit"]["unit_id"]
        assert unit and case["reply_due"]  # routed and supervised on the deputy lane's limits

        await drive(settings, tid, unit, [a["unit_id"] for a in case.get("assisting_units", [])])
        closed = await eventually(lambda: deputy.get(f"{liaison}/submissions/{sid}/timeline"),
                                  lambda r: "closed" in [e["status"] for e in r.json()], timeout=90)
        steps = [e["status"] for e in closed.json() if not e["status"].startswith("assist")]
        assert steps == ["case_opened", "signed_off", "contacted", "replied", "review_passed", "evaluated",
                         "closed"], steps
        assert all(e["status_text"] for e in closed.json())

        r = await deputy.post(f"{liaison}/submissions/{sid}/rating", headers={"Idempotency-Key": "rate-1"},
                              json={"rating": "不满意", "comment": "路灯修好后又坏了"})
        assert r.status_code == 200, r.text
        r = await deputy.post(f"{liaison}/submissions/{sid}/escalation", headers={"Idempotency-Key": "esc-1"},
                              json={"reason": "请热线办督办"})
        assert r.status_code == 200, r.text
        # supervision consumed the escalation: the deputy's timeline shows the case supervised (督办)
        supervised = await eventually(lambda: deputy.get(f"{liaison}/submissions/{sid}/timeline"),
                                      lambda r: "supervised" in [e["status"] for e in r.json()], timeout=60)
        entry = next(e for e in supervised.json() if e["status"] == "supervised")
        assert "督办级别 1" in entry["status_text"] and entry["reason"] == "deputy escalation", entry

        async with http(settings, "leader") as leader:
            rows = await eventually(lambda: leader.get(f"{liaison}/statistics"),
                                    lambda r: any(x["street"] == "ST01" for x in r.json()))
        row = next(x for x in rows.json() if (x["level"], x["street"]) == ("district", "ST01"))
        assert (row["submissions"], row["closed"], row["rated"], row["satisfied"], row["escalated"]) == (1, 1, 1, 0, 1)
        assert row["satisfaction_rate"] == 0.0
        metrics = (await deputy.get(f"{liaison}/metrics")).text
        assert 'hotline_deputy_submissions{level="district",street="ST01"} 1.0' in metrics

        # a deputy sees only their own; a liaison officer only its deputies'
        async with http(settings, "deputy", deputy_id="DE2") as other, \
                http(settings, "liaison", officer_id="LO-E") as officer_e, \
                http(settings, "liaison", officer_id="LO-F") as officer_f:
            for path in (f"/submissions/{sid}", f"/submissions/{sid}/timeline", "/deputies/DE1/submissions",
                         "/deputies/DE1"):
                assert (await other.get(liaison + path)).status_code == 404, path
                assert (await officer_f.get(liaison + path)).status_code == 404, path
                assert (await officer_e.get(liaison + path)).status_code == 200, path
            r = await other.post(f"{liaison}/submissions/{sid}/rating", headers={"Idempotency-Key": "x"},
                                 json={"rating": "满意"})
            assert r.status_code == 404

    escalated = [m for m in await read_topic(settings, settings.topics.name("deputy_events"), 3)
                 if dict(m.headers)["event_type"] == b"hotline.v1.DeputyEscalated"]
    escalations = [deputy_pb2.DeputyEscalated.FromString(m.value) for m in escalated]
    assert [(e.ticket_id, e.rating, e.comment) for e in escalations] == [(tid, "不满意", "请热线办督办")]
    await supervision_raised_once(settings, sid, tid, escalated[0])
    notes = [deputy_pb2.DeputyNotified.FromString(m.value)  # the topic also carries units' 事前提醒 (reminders)
             for m in await read_topic(settings, settings.topics.name("notifications"), expect=None, timeout=5)
             if dict(m.headers)["event_type"] == b"hotline.v1.DeputyNotified"]
    assert {n.step for n in notes if n.ticket_id == tid} >= {"case_opened", "signed_off", "closed"}
    assert all(n.channel == "wechat" and n.contact == "zhang_wx" for n in notes if n.deputy_id == "DE1")


async def supervision_raised_once(settings: Settings, sid: str, tid: str, escalated: Any) -> None:
    """The escalation raised the case's supervision (gRPC case API, the case history, the KPI
    facts by supervision level); the same DeputyEscalated record delivered again changes nothing."""

    async def state() -> tuple[Any, list[str], list[str], Any, Any]:
        async with channel(settings, "supervision") as chan:
            stub = services_pb2_grpc.SupervisionServiceStub(chan)
            case = await stub.GetCase(services_pb2.GetCaseRequest(ticket_id=tid))
            history = await stub.GetCaseHistory(lifecycle_pb2.GetCaseHistoryRequest(ticket_id=tid))
            supervision = await supervision_pb2_grpc.EscalationServiceStub(chan).GetSupervision(
                supervision_pb2.GetSupervisionRequest(ticket_id=tid))
        async with http(settings, "deputy", deputy_id="DE1") as deputy:
            timeline = (await deputy.get(f"{base(settings, 'deputy_liaison')}/submissions/{sid}/timeline")).json()
        client = mongo.client(settings)
        try:
            fact = await client[f"{settings.mongo.database_prefix}_metrics"]["kpi_dispatches"].find_one(
                {"_id": f"{tid}|1"})
        finally:
            await client.close()
        return case, [e.action for e in history.entries], [e["status"] for e in timeline], fact, supervision

    await drained(settings)
    case, actions, steps, fact, supervision = await eventually(state, lambda s: s[3] is not None and
                                                               s[3].get("supervision_level") == 1)
    assert case.supervision_level == 1 and case.state == events_pb2.CASE_STATE_ARCHIVED  # closed, and supervised
    assert actions.count("deputy_escalation") == 1 and steps.count("supervised") == 1, (actions, steps)
    # the level's one writer, the four-level supervision, keeps its record (open for the office: raised after closing)
    (record,) = supervision.records
    assert (record.level, record.state, supervision.level) == (1, supervision_pb2.SUPERVISION_STATE_OPEN, 1)
    assert record.reason == "人大代表提请督办（请热线办督办）" and record.raised_by.role == "system", record

    # at least once: the same record again (a redelivery or a replay) finds the first answer
    await publish_raw(settings, settings.topics.name("deputy_events"), [(escalated.key, escalated.value)],
                      headers=list(escalated.headers))
    await drained(settings)
    again, actions_again, steps_again, fact_again, supervision_again = await state()
    assert again == case and actions_again == actions and steps_again == steps and fact_again == fact
    assert supervision_again == supervision
    raised = [m for m in await read_topic(settings, settings.topics.name("case_events"), None, timeout=5)
              if m.key == tid.encode() and dict(m.headers)["event_type"] == b"hotline.v1.CaseEscalatedByDeputy"]
    assert len({dict(m.headers)["event_id"] for m in raised}) == 1


async def test_monthly_list_of_a_deputy_area(platform: dict, settings: Settings) -> None:
    """Three complaints about one place of DE1's community this month: the list pushed to DE1
    names it; DE1 adopts it and is invited to a whistle meeting on it."""
    now = datetime.now(UTC)
    month = now.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m")
    tickets = [ticket_pb2.CityTicket(
        city_ticket_id=f"MONTH-{i}", ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title="垃圾站异味",
        content="长干桥小区垃圾站垃圾堆放不清运，异味很大，影响居民生活。", address="长干桥小区垃圾站",
        caller=ticket_pb2.Caller(name="居民"), received_at=pb.ts(now), dispatched_at=pb.ts(now)) for i in range(3)]
    ids = await publish_tickets(settings, tickets)
    client = mongo.client(settings)
    facts = client[f"{settings.mongo.database_prefix}_deputy_liaison"]["ticket_facts"]

    async def categorised() -> set[str]:  # each ticket's receipt (street) and category facts stored
        docs = await facts.find({"ticket_id": {"$in": ids}}).to_list()
        return {d["ticket_id"] for d in docs if "street" in d} & {d["ticket_id"] for d in docs if "category" in d}
    try:
        await eventually(categorised, lambda found: len(found) == 3, timeout=90)
    finally:
        await client.close()
    liaison = base(settings, "deputy_liaison")
    async with http(settings, "office") as office, http(settings, "deputy", deputy_id="DE1") as deputy:
        r = await office.post(f"{liaison}/monthly-lists", headers={"Idempotency-Key": f"month-{month}"},
                              json={"month": month})
        assert r.status_code == 201, r.text
        listed = (await deputy.get(f"{liaison}/deputies/DE1/monthly-lists/{month}")).json()
        repeated = [i for i in listed["items"] if i["kind"] == "repeated"]
        assert len(repeated) == 1 and set(ids) <= set(repeated[0]["ticket_ids"]), listed
        assert "长干桥小区垃圾站" in repeated[0]["summary"] and repeated[0]["community"] == "CM0101"
        page = await deputy.get(f"{liaison}/deputies/DE1/monthly-lists/{month}/document")
        assert page.status_code == 200 and "每月问题清单" in page.text and "长干桥小区垃圾站" in page.text
        item = repeated[0]["item_id"]
        r = await deputy.post(f"{liaison}/deputies/DE1/monthly-lists/{month}/items/{item}/adoption",
                              headers={"Idempotency-Key": "adopt"})
        assert r.status_code == 200, r.text
        async with http(settings, "deputy", deputy_id="DE2") as other:
            assert (await other.get(f"{liaison}/deputies/DE1/monthly-lists/{month}")).status_code == 404
            r = await other.post(f"{liaison}/deputies/DE1/monthly-lists/{month}/items/{item}/adoption",
                                 headers={"Idempotency-Key": "adopt"})
            assert r.status_code == 404
        r = await office.post(f"{liaison}/whistle-meetings/invitations", headers={"Idempotency-Key": "whistle"},
                              json={"deputy_id": "DE1", "month": month, "item_id": item,
                                    "meeting_at": "2030-01-05T09:30:00", "place": "中华门街道会议室",
                                    "topic": "长干桥小区垃圾站清运"})
        assert r.status_code == 201, r.text
        invited = (await deputy.get(f"{liaison}/deputies/DE1/invitations")).json()
        assert [i["item_id"] for i in invited] == [item]
    # rated, escalated (delivered twice by the end-to-end test), one list per deputy with a constituency
    # (DE1, DE2, DF1, and DG1 of the import test), adopted, invited
    records = await read_topic(settings, settings.topics.name("deputy_events"), 3 + 4 + 1 + 1)
    kinds = {dict(m.headers)["event_type"] for m in records}
    assert {b"hotline.v1.MonthlyListPublished", b"hotline.v1.MonthlyItemAdopted",
            b"hotline.v1.WhistleMeetingInvited"} <= kinds
