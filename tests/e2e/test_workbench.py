"""The workbench in a real browser (Debian's Chromium driven by Playwright), against the five
services and the workbench running as processes on real Kafka and the real store.

A deputy submits a problem; the unit it was dispatched to signs off, is refused a reply before
contacting the citizen (with the precise reason), records the contact and replies; the office
passes the reply and the result reaches city.results.v1; the deputy sees the step in the
timeline; another unit is refused the case page. The office's desk: a ticket routing could not
decide is dispatched from the manual queue (after a refused dispatch that names the unknown unit),
a unit's return is approved and re-dispatched, and a unit is refused the office pages. Last (it
changes the SLA policy for the cases opened after it), an admin saves a new SLA policy version
after a refused one that keeps the text and names the field at fault. With
HOTLINE_WORKBENCH_SCREENSHOTS=1 the main pages are saved under docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from playwright.async_api import Browser, Page, expect

from hotline import pb
from hotline.settings import REPO_ROOT, Settings
from hotline.v1 import events_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from hotline_dev.simulator import generate
from services.workbench.names import Names
from tests.support import channel, eventually, http, publish_tickets, read_topic

pytestmark = pytest.mark.e2e

SHOTS = REPO_ROOT / "docs" / "screenshots"
DEPUTY = f"D-WB{uuid.uuid4().hex[:6]}"
NAMES = Names()


@pytest.fixture(scope="module")
def platform_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Routing with a small trained classifier (synthetic topics), so the manual queue shows its
    suggestion: the model abstains on these tickets, the keyword list decides the others."""
    from services.routing.classifier.training import TrainConfig, train
    from tests.unit.test_classifier import synth_rows, write_csv

    work = tmp_path_factory.mktemp("workbench-model")
    data = write_csv(work / "train.csv", synth_rows(30, seed=5))
    train(data, ["标题", "内容"], "类别", work / "model", config=TrainConfig(cv_folds=0, inner_folds=3))
    return {"HOTLINE_MODEL_DIR": str(work / "model")}


async def signed_in(browser: Browser, base: str, role: str, width: int = 1280, **scope: str) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.get_by_label("角色").select_option(role)
    labels = {"unit_id": "单位编号（承办单位）", "deputy_id": "代表编号（人大代表）"}
    for field, value in scope.items():
        await page.get_by_label(labels[field]).fill(value)
    await page.get_by_role("button", name="登录").click()
    return page


async def shot(page: Page, name: str) -> None:
    if os.environ.get("HOTLINE_WORKBENCH_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def flash(page: Page) -> str:
    return (await page.locator("#flash").inner_text()).strip()


async def test_unit_office_and_deputy_through_the_browser(
    workbench: str, browser: Browser, settings: Settings
) -> None:
    async with http(settings, "admin") as client:
        r = await client.post(f"http://{settings.bind_host}:{settings.ports.http('deputy_liaison')}/deputies",
                              json={"deputy_id": DEPUTY, "name": "王代表", "level": "区"},
                              headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 201, r.text

    # the sign-in page refuses a unit without a unit id, precisely
    page = await signed_in(browser, workbench, "unit")
    assert "承办单位登录需要填写单位编号" in await flash(page)
    await shot(page, "login")

    # a deputy submits a problem
    deputy = await signed_in(browser, workbench, "deputy", deputy_id=DEPUTY)
    await expect(deputy.get_by_role("heading", name="我转交的问题")).to_be_visible()
    await deputy.get_by_label("标题").fill("电饭煲质量问题商家拒绝退货")
    await deputy.get_by_label("问题内容").fill("群众反映在本区商场购买的电饭煲有质量问题，商家拒绝退货。")
    await deputy.get_by_label("地址").fill("幸福路1号")
    await deputy.get_by_role("button", name="提交").click()
    done = await flash(deputy)
    assert "已受理" in done, done
    ticket_id = re.search(r"工单 (RD-\w+)", done).group(1)  # type: ignore[union-attr]

    async def case(tid: str) -> object:
        async with channel(settings, "supervision") as chan:
            try:
                return await services_pb2_grpc.SupervisionServiceStub(chan).GetCase(
                    services_pb2.GetCaseRequest(ticket_id=tid))
            except grpc.aio.AioRpcError:
                return None

    # a city ticket about the same kind of problem (商品质量与退换货: DP01 alone, no assisting units)
    city = next(generate(1, seed=1313))
    city.city_ticket_id = f"CWB{uuid.uuid4().hex[:10]}"
    city.title, city.category = "电饭煲质量问题", ""
    city.content = "在商场购买的电饭煲有质量问题，商家拒绝退货。"
    city.received_at.FromDatetime(datetime.now(UTC))
    city.dispatched_at.FromDatetime(datetime.now(UTC))
    await publish_tickets(settings, [city])
    cases = {tid: await eventually(lambda tid=tid: case(tid), lambda c: c is not None, timeout=60)
             for tid in (city.city_ticket_id, ticket_id)}
    unit = cases[ticket_id].primary_unit.unit_id  # type: ignore[attr-defined]
    assert {c.primary_unit.unit_id for c in cases.values()} == {unit}  # type: ignore[attr-defined]
    assert not any(c.assists for c in cases.values())  # type: ignore[attr-defined]

    # the unit: inbox ordered by deadline, the case page (with the caller's contact), sign off,
    # a refused reply (the precise reason), the contact, the reply
    worker = await signed_in(browser, workbench, "unit", unit_id=unit)
    await expect(worker.get_by_role("heading", name="待办案件")).to_be_visible()
    # the session's other modules leave hundreds of this unit's cases: the newest first brings these two up
    await worker.goto(f"{workbench}/inbox?sort=received&desc=1")
    await expect(worker.get_by_role("link", name=ticket_id).first).to_be_visible()
    await shot(worker, "inbox")
    await worker.get_by_role("link", name=city.city_ticket_id).first.click()
    await expect(worker.get_by_role("heading", name="签收", exact=True)).to_be_visible()
    assert await worker.get_by_role("heading", name="办结反馈").count() == 0  # not offered before sign-off
    await expect(worker.get_by_text(city.caller.phone)).to_be_visible()
    await shot(worker, "case-unit")
    await worker.get_by_role("button", name="签收").click()
    assert "已签收" in await flash(worker)
    await worker.get_by_label("办理情况").fill("已联系商家，同意退货退款。")
    await worker.get_by_role("button", name="提交办结反馈").click()
    refused = await flash(worker)
    assert "办结反馈未成功" in refused and "当前状态下不能进行此操作" in refused and "联系诉求人" in refused, refused
    for tid in (city.city_ticket_id, ticket_id):
        await worker.goto(f"{workbench}/cases/{tid}")
        if await worker.get_by_role("button", name="签收").count():
            await worker.get_by_role("button", name="签收").click()
            assert "已签收" in await flash(worker)
        await worker.get_by_label("情况说明").fill("电话联系诉求人，说明处理方案。")
        await worker.get_by_role("button", name="记录联系").click()
        assert "已记录联系情况" in await flash(worker)
        await worker.get_by_label("办理情况").fill("已联系商家，同意退货退款，诉求人认可。")
        await worker.get_by_role("button", name="提交办结反馈").click()
        assert "已办结反馈" in await flash(worker)
    await shot(worker, "case-replied")

    # the office: both replies wait for review; pass them
    office = await signed_in(browser, workbench, "office")
    await expect(office.get_by_text("待审核的办结反馈")).to_be_visible()
    await shot(office, "office")
    for tid in (city.city_ticket_id, ticket_id):
        await office.goto(f"{workbench}/office")
        await office.get_by_role("link", name=tid).first.click()
        await office.get_by_label("审核意见（不通过时必填）").fill("办理到位")
        await office.get_by_role("button", name="提交审核").click()
        assert "审核通过" in await flash(office)
    await office.goto(f"{workbench}/responsibilities")
    await expect(office.get_by_role("heading", name="首接负责主协办清单")).to_be_visible()
    await shot(office, "responsibilities")

    # the city ticket's result reached the city (a deputy's ticket has no city to report to)
    async def results() -> list[dict]:
        records = await read_topic(settings, settings.topics.name("city_results"), expect=None, timeout=3)
        return [r for r in (json.loads(m.value) for m in records) if r.get("ticketId") == city.city_ticket_id]

    sent = await eventually(results, lambda rs: len(rs) == 1, timeout=60)
    assert sent[0]["resultId"] == f"{city.city_ticket_id}/result/1/0" and sent[0]["text"].startswith("已联系商家")

    # the deputy sees the step in the timeline
    await deputy.goto(f"{workbench}/deputy")
    await deputy.get_by_role("link", name="电饭煲质量问题商家拒绝退货").click()

    async def timeline() -> str:
        await deputy.reload()
        return await deputy.locator("ol.timeline").inner_text()

    steps = await eventually(timeline, lambda t: "审核通过，办理结果已回传" in t, timeout=60, every=1)
    assert "承办单位已签收" in steps and "承办单位已办结反馈" in steps
    await shot(deputy, "deputy-timeline")

    # another unit: the case is refused (the service's 404 becomes a page), nothing leaks
    other = await signed_in(browser, workbench, "unit", unit_id="DP99")
    answer = await other.goto(f"{workbench}/cases/{ticket_id}")
    assert answer is not None and answer.status == 404
    await expect(other.get_by_role("heading", name="未找到或无权查看")).to_be_visible()
    assert "电饭煲" not in await other.content()
    # a deputy may not open the office pages: the services refuse, the workbench says so
    answer = await deputy.goto(f"{workbench}/office")
    assert answer is not None and answer.status == 403
    await expect(deputy.get_by_role("heading", name="无权访问")).to_be_visible()

    # a leader: KPI charts and the ranking; a phone-width inbox
    leader = await signed_in(browser, workbench, "leader")
    await expect(leader.get_by_role("heading", name="考核指标")).to_be_visible()
    await expect(leader.locator("svg.chart").first).to_be_visible()
    await shot(leader, "kpis")
    phone = await signed_in(browser, workbench, "unit", width=390, unit_id=unit)
    await expect(phone.get_by_role("heading", name="待办案件")).to_be_visible()
    await shot(phone, "inbox-phone")


async def test_the_office_dispatches_from_the_queue_and_decides_a_return(
    workbench: str, browser: Browser, settings: Settings
) -> None:
    run = uuid.uuid4().hex[:8].upper()
    now = datetime.now(UTC)

    def ticket(n: int, title: str, content: str) -> ticket_pb2.CityTicket:
        return ticket_pb2.CityTicket(
            city_ticket_id=f"CWQ{run}{n}", ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title=title,
            content=content, channel="phone", received_at=pb.ts(now - timedelta(minutes=1)),
            dispatched_at=pb.ts(now), caller=ticket_pb2.Caller(name="李四", phone="13912340000"))

    manual = ticket(1, "咨询", "请问这个事情怎么办理，谢谢")  # routing cannot decide: the manual queue
    returned = ticket(2, "医保报销", "医保报销比例咨询，异地就医备案")
    loud = ticket(3, "路灯不亮", "小区门口路灯坏了不亮，再不修就找媒体曝光")  # a public-opinion keyword (预警)
    await publish_tickets(settings, [manual, returned, loud])

    async def case(tid: str) -> events_pb2.Case | None:
        async with channel(settings, "supervision") as chan:
            try:
                found: events_pb2.Case = await services_pb2_grpc.SupervisionServiceStub(chan).GetCase(
                    services_pb2.GetCaseRequest(ticket_id=tid))
                return found
            except grpc.aio.AioRpcError:
                return None

    first = {t.city_ticket_id: await eventually(lambda t=t: case(t.city_ticket_id), lambda c: c is not None,
                                                 timeout=60) for t in (manual, returned)}
    assert first[manual.city_ticket_id].primary_unit.unit_id == "HOTLINE"  # type: ignore[union-attr]
    unit = first[returned.city_ticket_id].primary_unit.unit_id  # type: ignore[union-attr]
    assert unit and unit != "DP18"

    # the office: the ticket waits in the manual queue with its suggestions
    office = await signed_in(browser, workbench, "office")

    async def queued() -> int:
        await office.goto(f"{workbench}/office/queue")
        return await office.locator("section.queue-entry", has_text=manual.city_ticket_id).count()

    await eventually(queued, lambda n: n == 1, timeout=60, every=1)
    await expect(office.get_by_role("heading", name="人工派单队列")).to_be_visible()
    await shot(office, "office-queue")
    entry = office.locator("section.queue-entry", has_text=manual.city_ticket_id)
    # the classifier's suggestion (it abstained: too unsure to decide) fills the form when taken
    suggestion = entry.locator("tbody tr", has_text="分类模型")
    await expect(suggestion).to_have_count(1)
    await suggestion.get_by_role("button", name="采用此建议").click()
    assert await entry.get_by_label("类别", exact=True).input_value() == "环境保护"
    assert (await entry.get_by_label("清单事项编号").input_value()).startswith("环境保护-")
    await expect(entry.get_by_label("派单说明")).to_be_focused()
    # a dispatch to a unit that does not exist: refused with routing's precise reason
    await entry.get_by_label("主办单位编号").fill("XX99")
    await entry.get_by_role("button", name="派单", exact=True).click()
    refused = await flash(office)
    assert "人工派单未成功" in refused and "填写的内容不符合要求" in refused and "XX99" in refused, refused
    entry = office.locator("section.queue-entry", has_text=manual.city_ticket_id)
    await entry.get_by_label("主办单位编号").fill("DP03")
    await entry.get_by_label("协办单位编号").fill("DP06")
    await entry.get_by_label("类别", exact=True).fill("城市管理")
    await entry.get_by_label("清单事项编号").fill("")
    await entry.get_by_role("button", name="派单", exact=True).click()
    done = await flash(office)
    assert f"已派单：工单 {manual.city_ticket_id}" in done and "DP03" in done and "第 2 轮" in done, done
    assert await office.locator("section.queue-entry", has_text=manual.city_ticket_id).count() == 0
    moved = await eventually(lambda: case(manual.city_ticket_id), lambda c: c is not None and c.dispatch_round == 2)
    assert moved is not None and moved.primary_unit.unit_id == "DP03"
    assert [a.unit_id for a in moved.assists] == ["DP06"]

    # the unit asks to return its ticket; the office approves and re-dispatches it to DP18
    worker = await signed_in(browser, workbench, "unit", unit_id=unit)
    await worker.goto(f"{workbench}/cases/{returned.city_ticket_id}")
    await worker.get_by_label("退单理由").fill("不属于本单位职责，应由区医保局办理")
    await worker.get_by_role("button", name="申请退单").click()
    assert "已提交退单申请" in await flash(worker)

    async def pending() -> int:
        await office.goto(f"{workbench}/office/decisions")
        asked = f"{returned.city_ticket_id} · {NAMES.unit(unit)} 申请退单"
        return await office.locator("section", has_text=asked).count()

    await eventually(pending, lambda n: n == 1, timeout=60, every=1)
    await shot(office, "office-decisions")
    section = office.locator("section", has_text=f"{returned.city_ticket_id} · {NAMES.unit(unit)} 申请退单")
    await section.get_by_label("审核意见").fill("属区医保局职责")
    await section.get_by_label("改派主办单位编号").fill("DP18")
    await section.get_by_role("button", name="提交退单审核").click()
    done = await flash(office)
    assert f"已同意退单：工单 {returned.city_ticket_id} 已改派给 DP18" in done, done
    moved = await eventually(lambda: case(returned.city_ticket_id),
                             lambda c: c is not None and c.dispatch_round == 2)
    assert moved is not None and moved.primary_unit.unit_id == "DP18"
    await expect(office.get_by_role("cell", name=returned.city_ticket_id)).to_be_visible()  # among the decided

    # the warnings list shows the keyword warning raised by the third ticket, with its letter (预警函)
    async def warned() -> int:
        await office.goto(f"{workbench}/office/warnings?kind=keyword")
        return await office.locator("tbody tr", has_text=loud.city_ticket_id).count()

    await eventually(warned, lambda n: n == 1, timeout=60, every=1)
    row = office.locator("tbody tr", has_text=loud.city_ticket_id)
    await expect(row).to_contain_text("舆情关键词")
    await shot(office, "office-warnings")
    async with office.expect_navigation():
        await row.get_by_role("link", name="预警函").click()
    await expect(office.get_by_role("heading", name="区12345热线办 预警函")).to_be_visible()
    assert loud.city_ticket_id in await office.content()

    # 联席研判: the office opens a review; routing lists it (ListJointReviews) with a link to decide it
    await office.goto(f"{workbench}/office/joint-reviews")
    opening = office.get_by_role("region", name="发起联席研判")
    await opening.get_by_label("工单编号").fill(loud.city_ticket_id)
    await opening.get_by_label("争议单位编号（至少两个，逗号分隔）").fill("DP03, DP06")
    await opening.get_by_label("研判事由").fill("路灯产权不清，两单位均认为不属本单位")
    await opening.get_by_role("button", name="发起研判").click()
    done = await flash(office)
    assert f"已发起联席研判：工单 {loud.city_ticket_id}，参加单位 DP03、DP06" in done, done
    await office.goto(f"{workbench}/office/joint-reviews")
    listed = office.get_by_role("region", name=re.compile(r"^待研判"))
    await expect(listed.get_by_role("row", name=re.compile(loud.city_ticket_id))).to_contain_text(
        f"{NAMES.unit('DP03')}、{NAMES.unit('DP06')}")  # names from the directory, not ids
    await listed.get_by_role("link", name=f"作出研判结论：工单 {loud.city_ticket_id}").click()
    await expect(office.get_by_role("region", name="研判结论").get_by_label("工单编号")).to_have_value(
        loud.city_ticket_id)

    # the other office pages render (and are what the README shows)
    for path, heading, name in (("/office/joint-reviews", "联席研判", "office-joint-reviews"),
                                ("/office/supervision?level=0", "督办看板", "office-supervision"),
                                ("/office/list?category=环境保护", "主协办清单维护", "office-list"),
                                ("/office/policies", "政策文件", "office-policies"),
                                ("/office/policies/warning_rules", "预警规则", "office-policy-editor")):
        answer = await office.goto(f"{workbench}{path}")
        assert answer is not None and answer.status == 200, path
        await expect(office.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        await shot(office, name)
        if name == "office-joint-reviews":  # the open reviews, listed by routing (ListJointReviews)
            await expect(office.get_by_role("heading", name=re.compile(r"^待研判（\d+ 件）$"))).to_be_visible()
        if name == "office-policy-editor":  # served by supervision's versioned policy, version 1 or later
            await expect(office.get_by_role("heading", name=re.compile(r"^当前生效版本 版本 \d+$"))).to_be_visible()
            await expect(office.get_by_label("修改理由")).to_be_visible()
    phone = await signed_in(browser, workbench, "office", width=390)
    await phone.goto(f"{workbench}/office/decisions")
    await expect(phone.get_by_role("heading", name="退单与延期审批")).to_be_visible()
    await shot(phone, "office-decisions-phone")

    # a unit is refused the office pages, before anything is read
    for path in ("/office", "/office/queue", "/office/decisions", "/office/list"):
        answer = await worker.goto(f"{workbench}{path}")
        assert answer is not None and answer.status == 403, path
        await expect(worker.get_by_role("heading", name="无权访问")).to_be_visible()
        assert manual.city_ticket_id not in await worker.content()


async def test_an_admin_saves_a_new_sla_policy_version_after_a_refused_one(
    workbench: str, browser: Browser, settings: Settings
) -> None:
    url = f"http://{settings.bind_host}:{settings.ports.supervision_http}/policies/sla_policy"
    async with http(settings, "admin") as client:
        before = (await client.get(url)).json()
    admin = await signed_in(browser, workbench, "admin")
    await admin.goto(f"{workbench}/office/policies/sla_policy")
    await expect(admin.get_by_role("heading", name=f"当前生效版本 版本 {before['version']}")).to_be_visible()
    await admin.get_by_text("专家模式（JSON）", exact=True).click()  # the JSON view, kept for experts beside the form
    editor = admin.get_by_label(re.compile("^时限政策内容"))
    doc = json.loads(await editor.input_value())
    doc["defaults"]["reply"] = {"working_days": 99}  # beyond 60: refused, with the field named
    await editor.fill(json.dumps(doc, ensure_ascii=False, indent=2))
    await admin.get_by_label("修改理由").fill("办理时限调整")
    await admin.get_by_role("button", name="保存为新版本").click()
    error = (await admin.get_by_role("alert").inner_text()).strip()
    assert "保存时限政策未成功" in error and "defaults.reply: working_days must be an integer 0..60" in error, error
    kept = json.loads(await admin.get_by_label(re.compile("^时限政策内容")).input_value())
    assert kept["defaults"]["reply"] == {"working_days": 99}
    await expect(admin.get_by_label("修改理由")).to_have_value("办理时限调整")
    kept["defaults"]["reply"] = {"working_days": 5}
    kept["due_soon_fraction"] = 0.75
    await admin.get_by_label(re.compile("^时限政策内容")).fill(json.dumps(kept, ensure_ascii=False, indent=2))
    await admin.get_by_role("button", name="保存为新版本").click()
    done = await flash(admin)
    assert f"已保存时限政策为版本 {before['version'] + 1}（原版本 {before['version']}）" in done, done
    await expect(admin.get_by_role("heading", name=f"当前生效版本 版本 {before['version'] + 1}")).to_be_visible()
    await expect(admin.get_by_role("row", name=re.compile("办理时限调整"))).to_have_count(1)  # in the history
    await shot(admin, "office-sla-policy")
    async with http(settings, "admin") as client:
        after = (await client.get(url)).json()
    assert after["version"] == before["version"] + 1 and after["doc"]["due_soon_fraction"] == 0.75
