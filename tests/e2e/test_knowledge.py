"""End to end: the knowledge base (知识库, 聊天办) through the running platform, then in a browser.

Through the APIs: the office saves an article; a complaint is handled by its unit and resolved
(its reply names the caller); a consultation answered directly from the article (直接答复) is
reviewed, reaches the city with the article, is evaluated and closes like any case, and the 直接答复率
moves; a second one evaluated unsatisfied flags the article for review; the unit of a new similar
complaint sees the resolved case (masked, no caller contact) and the article, another unit is refused.

In Chromium (Playwright): the office writes an article in the editor (a refused save keeps the text
and names the field), the unit's case page shows the similar-case panel, the office answers a
consultation from the panel, and the dispatch queue shows the panel. With
HOTLINE_WORKBENCH_SCREENSHOTS=1 the pages are saved under docs/screenshots/.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from playwright.async_api import Browser, expect

from hotline import pb
from hotline.settings import Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from hotline_dev.simulator import generate
from tests.e2e.test_workbench import flash, shot, signed_in
from tests.support import channel, eventually, http, publish_raw, publish_tickets, read_topic

pytestmark = pytest.mark.e2e

TAG = uuid.uuid4().hex[:6].upper()
CALLER_PHONE, CALLER_NAME = "13812345678", "张三丰"
ARTICLE = {"title": "家电退换货指南", "question": "买的电饭煲有质量问题商家不给退怎么办",
           "answer": "依据“三包”规定，购买七日内出现质量问题可退货，十五日内可换货。请携带购物凭证与商家协商，"
                     "协商不成可向区市场监管局投诉。",
           "where": "区市场监管局消费者权益保护科", "hours": "工作日 9:00-17:00", "materials": ["购物凭证", "身份证"],
           "links": [{"label": "全国12315平台", "url": "https://www.12315.cn", "kind": "link"}],
           "category": "消费维权", "unit_id": "DP01", "unit_name": "区市场监管局", "review_on": "2027-06-30"}


def base(settings: Settings, service: str) -> str:
    return f"http://{settings.bind_host}:{settings.ports.http(service)}"


def city_ticket(n: int, title: str, content: str, kind: int = ticket_pb2.TICKET_TYPE_COMPLAINT,
                address: bool = True) -> ticket_pb2.CityTicket:
    t = next(generate(1, seed=2500 + n))
    t.city_ticket_id = f"KB{TAG}{n}"
    t.title, t.content, t.category, t.ticket_type = title, content, "", kind
    t.caller.name, t.caller.phone = CALLER_NAME, CALLER_PHONE
    if not address:
        t.address, t.street = "", ""
    now = datetime.now(UTC)
    t.received_at.FromDatetime(now)
    t.dispatched_at.FromDatetime(now)
    return t


async def get_case(settings: Settings, tid: str) -> events_pb2.Case | None:
    async with channel(settings, "supervision") as chan:
        try:
            found: events_pb2.Case = await services_pb2_grpc.SupervisionServiceStub(chan).GetCase(
                services_pb2.GetCaseRequest(ticket_id=tid))
            return found
        except grpc.aio.AioRpcError:
            return None


async def evaluate(settings: Settings, tid: str, result_id: str, satisfaction: int) -> None:
    evaluation = lifecycle_pb2.CityEvaluation(
        evaluation_id=f"EV-{hashlib.sha1(tid.encode()).hexdigest()[:16]}", city_ticket_id=tid, result_id=result_id,
        resolution=case_pb2.RESOLUTION_RESOLVED if satisfaction == case_pb2.SATISFACTION_SATISFIED
        else case_pb2.RESOLUTION_UNRESOLVED, satisfaction=satisfaction, comment="回访", evaluated_at=pb.ts(
            datetime.now(UTC)))
    await publish_raw(settings, settings.topics.name("city_evaluations"),
                      [(tid.encode(), json_format.MessageToJson(evaluation, indent=None).encode())])


def direct_rate(kpis: dict[str, Any]) -> tuple[float, int]:
    rate = next(r for r in kpis["total"]["rates"] if r["name"] == "direct_answer")
    return float(rate.get("numerator", 0)), int(rate.get("denominator", 0))


async def test_a_direct_answer_closes_like_any_case_and_a_unit_sees_similar_resolved_cases(
        platform: dict, settings: Settings) -> None:
    sup, met = base(settings, "supervision"), base(settings, "metrics")
    article_id = f"KA-{TAG}"
    history = city_ticket(1, "电饭煲质量问题商家拒绝退货",
                          f"我叫{CALLER_NAME}，电话{CALLER_PHONE}，在商场买的电饭煲有质量问题，商家拒绝退货。")
    consult = ticket_pb2.TICKET_TYPE_CONSULTATION
    asked = city_ticket(2, "咨询电饭煲质量问题怎么退货", "买的电饭煲有质量问题，想咨询怎么退货", consult)
    asked2 = city_ticket(3, "咨询家电质量问题退货", "电视机有质量问题，咨询退货的规定", consult)
    query = city_ticket(4, "电饭煲质量问题商场不给退货", "新买的电饭煲有质量问题，商场拒绝退货，请处理。")
    tickets = [history, asked, asked2, query]
    async with http(settings, "office") as office, http(settings, "unit", unit_id="DP01") as dp01:
        r = await office.put(f"{met}/knowledge/articles/{article_id}", headers={"Idempotency-Key": f"a-{TAG}"},
                             json={"article": ARTICLE, "expected_version": 0, "reason": "新建"})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 1
        assert (await dp01.put(f"{met}/knowledge/articles/{article_id}", headers={"Idempotency-Key": f"u-{TAG}"},
                               json={"article": ARTICLE, "expected_version": 1})).status_code == 403
        before = direct_rate((await office.get(f"{met}/kpis")).json())

        await publish_tickets(settings, tickets)
        cases = {t.city_ticket_id: await eventually(lambda t=t: get_case(settings, t.city_ticket_id),
                                                    lambda c: c is not None, timeout=90) for t in tickets}
        unit = cases[history.city_ticket_id].primary_unit.unit_id  # type: ignore[union-attr]
        assert unit == "DP01" and all(c.primary_unit.unit_id == unit and not c.assists  # type: ignore[union-attr]
                                      for c in cases.values())

        # the complaint: handled and resolved by its unit (the reply names the caller)
        hid = history.city_ticket_id
        for path, body in (("sign-off", {"note": "已签收"}),
                           ("contacts", {"channel": "CONTACT_CHANNEL_PHONE", "outcome": "CONTACT_OUTCOME_REACHED"}),
                           ("reply", {"result": "REPLY_RESULT_RESOLVED",
                                      "text": f"已约谈商家，为{CALLER_NAME}（{CALLER_PHONE}）办理退货退款。"})):
            r = await dp01.post(f"{sup}/cases/{hid}/{path}", headers={"Idempotency-Key": f"{hid}-{path}"}, json=body)
            assert r.status_code == 200, (path, r.text)
        r = await office.post(f"{sup}/cases/{hid}/review", headers={"Idempotency-Key": f"{hid}-rv"},
                              json={"passed": True})
        assert r.status_code == 200, r.text
        await evaluate(settings, hid, r.json()["result_id"], case_pb2.SATISFACTION_SATISFIED)

        # 直接答复: only the office, only a consultation, with an article
        ref = {"article_id": article_id, "version": 1, "title": ARTICLE["title"], "unit_id": "DP01"}
        qid, cid, cid2 = query.city_ticket_id, asked.city_ticket_id, asked2.city_ticket_id
        r = await dp01.post(f"{sup}/cases/{cid}/direct-answer", headers={"Idempotency-Key": f"{cid}-u"},
                            json={"article": ref, "text": ARTICLE["answer"]})
        assert r.status_code == 403, r.text
        r = await office.post(f"{sup}/cases/{qid}/direct-answer", headers={"Idempotency-Key": f"{qid}-da"},
                              json={"article": ref, "text": ARTICLE["answer"]})
        assert r.status_code == 409 and "咨询" in r.json()["detail"], r.text
        results = {}
        for tid in (cid, cid2):
            r = await office.post(f"{sup}/cases/{tid}/direct-answer", headers={"Idempotency-Key": f"{tid}-da"},
                                  json={"article": ref, "text": ARTICLE["answer"]})
            assert r.status_code == 200, r.text
            answered = r.json()
            assert answered["state"] == "CASE_STATE_REPLIED"
            assert answered["reply"]["article"]["article_id"] == article_id
            r = await office.post(f"{sup}/cases/{tid}/review", headers={"Idempotency-Key": f"{tid}-rv"},
                                  json={"passed": True})  # reviewed like any reply
            assert r.status_code == 200 and r.json()["state"] == "CASE_STATE_REPORTED", r.text
            results[tid] = r.json()["result_id"]

        async def sent() -> dict[str, dict[str, Any]]:
            records = await read_topic(settings, settings.topics.name("city_results"), expect=None, timeout=3)
            return {r["ticketId"]: r for r in (json.loads(m.value) for m in records) if r.get("ticketId") in results}

        to_city = await eventually(sent, lambda rs: len(rs) == 2, timeout=60)
        assert to_city[cid]["article"]["articleId"] == article_id and to_city[cid]["text"] == ARTICLE["answer"]

        await evaluate(settings, cid, results[cid], case_pb2.SATISFACTION_SATISFIED)
        await evaluate(settings, cid2, results[cid2], case_pb2.SATISFACTION_UNSATISFIED)
        closed = await eventually(lambda: get_case(settings, cid),
                                  lambda c: c is not None and c.state == events_pb2.CASE_STATE_ARCHIVED, timeout=60)
        assert closed is not None and closed.closure == case_pb2.CLOSURE_SATISFIED  # closes like any case

        # the answer rate moved: both consultations closed (passed review) from the knowledge base
        after = await eventually(lambda: office.get(f"{met}/kpis"),
                                 lambda r: direct_rate(r.json())[1] >= before[1] + 2, timeout=60)
        num, den = direct_rate(after.json())
        assert (num - before[0], den - before[1]) == (2, 2), (before, num, den)

        # the unsatisfied answer flagged the article for review (待复核)
        flagged = await eventually(lambda: office.get(f"{met}/knowledge/articles", params={"flagged": "true"}),
                                   lambda r: any(a["article_id"] == article_id for a in r.json()["articles"]),
                                   timeout=60)
        mine = next(a for a in flagged.json()["articles"] if a["article_id"] == article_id)
        assert [f["ticket_id"] for f in mine["flags"]] == [cid2] and mine["answered_count"] == 2

        # the unit's new complaint: the similar resolved cases (masked, no contact) and the article
        async def similar() -> dict[str, Any]:
            r = await dp01.get(f"{met}/knowledge/cases/{qid}/similar")
            assert r.status_code == 200, r.text
            return dict(r.json())

        panel = await eventually(similar, lambda p: hid in [c["ticket_id"] for c in p["cases"]], timeout=60)
        assert len(panel["cases"]) <= 5 and qid not in [c["ticket_id"] for c in panel["cases"]]
        shown = next(c for c in panel["cases"] if c["ticket_id"] == hid)
        assert "退货退款" in shown["reply"] and shown["satisfaction"] == "满意"
        text = json.dumps(panel, ensure_ascii=False)
        leaks = [text[max(0, i - 120):i + 20] for w in (CALLER_PHONE, CALLER_NAME) if (i := text.find(w)) >= 0]
        assert not leaks and "138****5678" in text, leaks
        assert "caller" not in text and "address" not in text
        assert panel["articles"][0]["article_id"] == article_id
        async with http(settings, "unit", unit_id="ST01") as other:
            assert (await other.get(f"{met}/knowledge/cases/{qid}/similar")).status_code == 404
            assert (await other.get(f"{met}/knowledge/search", params={"q": "电饭煲"})).status_code == 200
        r = await office.get(f"{met}/knowledge/search", params={"q": "电饭煲退货", "kind": "case", "unit_id": "ST01"})
        assert r.status_code == 200 and r.json()["results"] == []  # filtered by unit


async def test_article_editor_and_similar_case_panel_in_the_browser(
        workbench: str, browser: Browser, settings: Settings) -> None:  # noqa: F811 - fixtures
    office = await signed_in(browser, workbench, "office")
    await office.goto(f"{workbench}/knowledge")
    await expect(office.get_by_role("heading", name="知识库（聊天办）")).to_be_visible()
    await office.get_by_role("link", name="新建文章").click()
    await office.get_by_label("标题").fill("小家电三包退换货")
    await office.get_by_label("常见问法").fill("小家电坏了能退吗")
    await office.get_by_label("答复内容（直接答复时发送给市民）").fill(
        "七日内质量问题可退货，十五日内可换货，请携带购物凭证。")
    await office.get_by_label("所需材料（每行一项）").fill("购物凭证\n身份证")
    await office.locator("#kb-l0-label").fill("12315")
    await office.locator("#kb-l0-url").fill("ftp://12315.cn")  # refused: not http(s)
    await office.get_by_label("归属单位编号").fill("DP01")
    await office.get_by_label("归属单位名称").fill("区市场监管局")
    await office.get_by_label("类别").fill("消费维权")
    await office.get_by_role("button", name="保存为新版本").click()
    error = (await office.locator("#kb-error").inner_text()).strip()
    assert "保存未成功" in error and "links[0].url" in error, error
    assert await office.get_by_label("标题").input_value() == "小家电三包退换货"  # the text is kept
    await office.locator("#kb-l0-url").fill("https://www.12315.cn")
    await office.locator("#kb-l0-kind").select_option("qr")
    await shot(office, "knowledge-editor")
    await office.get_by_role("button", name="保存为新版本").click()
    assert "第 1 版" in await flash(office)
    await expect(office.get_by_role("heading", name="小家电三包退换货")).to_be_visible()
    await office.get_by_role("link", name="编辑（保存即复核）").click()
    await office.get_by_label("办理时间").fill("工作日 9:00-17:00")
    await office.get_by_label("修改说明").fill("补充办理时间")
    await office.get_by_role("button", name="保存为新版本").click()
    assert "第 2 版" in await flash(office)
    await expect(office.get_by_text("补充办理时间")).to_be_visible()
    await shot(office, "knowledge-article")

    # a resolved case, then a similar complaint and a consultation (routed to DP01), one left for manual dispatch
    resolved = city_ticket(11, "电水壶质量问题商家拒绝退货", f"电话{CALLER_PHONE}，电水壶有质量问题，商家拒绝退货。")
    similar = city_ticket(12, "电水壶漏电质量问题", "买的电水壶有质量问题漏电，要求退货。")
    asked = city_ticket(13, "咨询小家电质量问题退货", "小家电有质量问题能退货吗", ticket_pb2.TICKET_TYPE_CONSULTATION)
    queued = city_ticket(14, "电水壶买来就坏了", "电水壶买来三天就坏了，店家说不归他们管，该找谁", address=False)
    await publish_tickets(settings, [resolved, similar, asked, queued])
    for t in (resolved, similar, asked):
        await eventually(lambda t=t: get_case(settings, t.city_ticket_id), lambda c: c is not None, timeout=90)
    sup, rid = base(settings, "supervision"), resolved.city_ticket_id
    async with http(settings, "unit", unit_id="DP01") as dp01, http(settings, "office") as api:
        for path, body in (("sign-off", {}), ("contacts", {"channel": "CONTACT_CHANNEL_PHONE",
                                                           "outcome": "CONTACT_OUTCOME_REACHED"}),
                           ("reply", {"result": "REPLY_RESULT_RESOLVED", "text": "经协调商家已为诉求人退货。"})):
            r = await dp01.post(f"{sup}/cases/{rid}/{path}", headers={"Idempotency-Key": f"{rid}-{path}"}, json=body)
            assert r.status_code == 200, r.text
        r = await api.post(f"{sup}/cases/{rid}/review", headers={"Idempotency-Key": f"{rid}-rv"},
                           json={"passed": True})
        assert r.status_code == 200, r.text

    # the unit's case page: the similar resolved case (its reply, no caller contact) and the article
    unit = await signed_in(browser, workbench, "unit", unit_id="DP01")

    async def panel() -> str:
        await unit.goto(f"{workbench}/cases/{similar.city_ticket_id}")
        return await unit.locator("section.similar").inner_text() if await unit.locator("section.similar").count() \
            else ""

    text = await eventually(panel, lambda t: "经协调商家已为诉求人退货" in t, timeout=60, every=1)
    assert "小家电三包退换货" in text and CALLER_PHONE not in text and CALLER_NAME not in text
    assert await unit.locator("form.direct-answer").count() == 0  # the office's, for consultations
    await shot(unit, "case-similar-unit")

    # the office answers the consultation from the panel: reviewed like any reply
    await office.goto(f"{workbench}/cases/{asked.city_ticket_id}")
    form = office.locator('form.direct-answer[aria-label="用《小家电三包退换货》直接答复"]')
    await expect(form).to_be_visible()
    await shot(office, "case-direct-answer")
    await form.get_by_role("button", name="直接答复（提交审核）").click()
    assert "已用知识库文章直接答复" in await flash(office)
    await expect(office.get_by_text("直接答复 知识库《小家电三包退换货》v2")).to_be_visible()

    # the dispatch queue shows the panel for a ticket waiting for manual dispatch
    async def queue() -> str:
        await office.goto(f"{workbench}/office/queue")
        return await office.content()

    await eventually(queue, lambda c: queued.city_ticket_id in c, timeout=60, every=1)
    entry = office.locator("section.queue-entry").filter(has_text=queued.city_ticket_id)
    await entry.locator("details.similar-panel summary").click()
    await expect(entry.locator("section.similar")).to_be_visible()
    assert CALLER_PHONE not in await entry.locator("section.similar").inner_text()
    await shot(office, "queue-similar")
