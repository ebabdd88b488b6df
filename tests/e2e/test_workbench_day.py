"""A working day in the workbench (issue 23), in Chromium (Playwright, Debian's chromium) against
the five services and the workbench as processes on real Kafka and the real store.

A handling unit finds a case by words of its content (Chinese word segmentation in supervision's
case search) and signs it off. The district office finds the overdue cases of one street, opens a
whistle that the summoned department reports in to, merges two tickets from the suggestions and
prints a 督办 letter. On every page visited no unit id the directory knows is shown bare (ids only
as secondary text), and axe-core finds no serious or critical accessibility violation on the main
pages. With HOTLINE_WORKBENCH_SCREENSHOTS=1 the new pages are saved under docs/screenshots/.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from playwright.async_api import Browser, Page, expect

from hotline import pb
from hotline.settings import REPO_ROOT, Settings
from hotline.v1 import events_pb2, services_pb2, services_pb2_grpc, ticket_pb2
from services.workbench.names import Names
from tests.e2e.test_workbench import flash, shot, signed_in
from tests.support import channel, eventually, http, publish_tickets

pytestmark = pytest.mark.e2e

AXE = sorted((REPO_ROOT / ".tools" / "axe-core").glob("*/axe.min.js"))
NAMES = Names()
KNOWN_ID = re.compile(r"(?<![A-Za-z0-9-])(" + "|".join(sorted(NAMES.units, key=len, reverse=True))
                      + r")(?![A-Za-z0-9])")




async def get_case(settings: Settings, tid: str) -> events_pb2.Case | None:
    async with channel(settings, "supervision") as chan:
        try:
            found: events_pb2.Case = await services_pb2_grpc.SupervisionServiceStub(chan).GetCase(
                services_pb2.GetCaseRequest(ticket_id=tid))
            return found
        except grpc.aio.AioRpcError:
            return None


async def bare_ids(page: Page) -> list[str]:
    """Known unit ids shown as the main text of the page (not as secondary text: small.id)."""
    text = await page.evaluate("""() => {
        const copy = document.body.cloneNode(true);
        copy.querySelectorAll('small.id, script, style, option, datalist').forEach(e => e.remove());
        return copy.innerText;
    }""")
    return sorted(set(KNOWN_ID.findall(text)))


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of WCAG 2 A/AA on the page."""
    assert AXE, "axe-core is missing: scripts/bootstrap.sh fetches it into .tools/axe-core"
    # The workbench's CSP (script-src 'self') refuses an injected script, as it should: axe runs on the
    # same page (same session, same URL) opened in a context that lets the test inject it.
    browser = page.context.browser
    assert browser is not None
    context = await browser.new_context(bypass_csp=True, storage_state=await page.context.storage_state(),
                                        viewport=page.viewport_size, locale="zh-CN")
    try:
        return await _axe_on(await context.new_page(), page.url)
    finally:
        await context.close()


async def _axe_on(page: Page, url: str) -> list[dict[str, Any]]:
    await page.goto(url)
    await page.add_script_tag(path=str(AXE[-1]))
    found = await page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target)}));
    }""")
    return [v for v in found if v["impact"] in ("serious", "critical")]


async def check(page: Page, what: str) -> None:
    assert await bare_ids(page) == [], f"{what}: bare unit ids"
    violations = await axe_violations(page)
    assert violations == [], f"{what}: {json.dumps(violations, ensure_ascii=False)}"


def city_ticket(tid: str, title: str, content: str, address: str, received: datetime) -> ticket_pb2.CityTicket:
    return ticket_pb2.CityTicket(
        city_ticket_id=tid, ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title=title, content=content,
        address=address, channel="phone", received_at=pb.ts(received), dispatched_at=pb.ts(received),
        caller=ticket_pb2.Caller(name="赵六", phone="13700001234"))


async def test_a_working_day_of_a_unit_and_the_office(workbench: str, browser: Browser, settings: Settings) -> None:
    run = uuid.uuid4().hex[:6]
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=12)  # its 5-working-day reply limit has passed
    found = city_ticket(f"CWD{run}F", "电饭煲质量问题", f"在洪武路商场买的电饭煲内胆掉漆{run}，商家拒绝退货。",
                        f"洪武路{run}号商场", now)
    late = city_ticket(f"CWD{run}L", "商品质量问题", "购买的电热水壶漏电，商家拒绝退货。", f"洪武路{run}号", old)
    twin_a = city_ticket(f"CWD{run}A", "微波炉质量问题", "常府街超市买的微波炉不加热，质量问题，商家拒绝退货。",
                         f"常府街{run}号超市", now - timedelta(hours=3))
    twin_b = city_ticket(f"CWD{run}B", "微波炉质量问题", "常府街超市买的微波炉不加热，质量问题，要求退货。",
                         f"常府街{run}号超市", now - timedelta(hours=2))
    tickets = [found, late, twin_a, twin_b]
    await publish_tickets(settings, tickets)
    cases = {t.city_ticket_id: await eventually(lambda t=t: get_case(settings, t.city_ticket_id),
                                                lambda c: c is not None, timeout=90) for t in tickets}
    unit = cases[found.city_ticket_id].primary_unit.unit_id  # type: ignore[union-attr]
    assert unit == "DP01" and {c.primary_unit.unit_id for c in cases.values()} == {unit}  # type: ignore[union-attr]
    async with http(settings, "unit", unit_id=unit) as client:  # the late one is signed off: its reply clock runs
        r = await client.post(f"http://{settings.bind_host}:{settings.ports.http('supervision')}/cases/"
                              f"{late.city_ticket_id}/sign-off", json={}, headers={"Idempotency-Key": run})
        assert r.status_code == 200, r.text

    # the unit: its home lists what falls due today and tomorrow (the late case first); it finds a
    # case by words of its content, opens it and signs it off
    worker = await signed_in(browser, workbench, "unit", unit_id=unit)
    await expect(worker.get_by_role("heading", name=re.compile("^待办案件"))).to_be_visible()
    due = worker.locator("section.due-soon")
    await expect(due.locator("tbody tr").first).to_contain_text(late.city_ticket_id)
    await expect(due.locator("tbody tr").first).to_contain_text("已超期")
    await expect(worker.locator("header")).to_contain_text("区市场监管局")
    await check(worker, "unit home")
    await shot(worker, "unit-home")

    await worker.get_by_role("link", name="案件查询").click()

    async def search_for_words() -> int:
        await worker.get_by_label("关键词（标题、内容、地址）").fill(f"电饭煲 掉漆{run}")
        await worker.get_by_role("button", name="查询").click()
        return await worker.locator("table.cases tbody tr", has_text=found.city_ticket_id).count()

    assert await eventually(search_for_words, lambda n: n == 1, timeout=60, every=1) == 1
    await expect(worker.locator("table.cases caption")).to_contain_text("共 1 件")
    row = worker.locator("table.cases tbody tr", has_text=found.city_ticket_id)
    await expect(row).to_contain_text("电饭煲质量问题")
    await expect(row).to_contain_text(f"洪武路{run}号商场")
    await expect(row).to_contain_text("洪武路街道")
    await expect(row).to_contain_text("区市场监管局")
    await expect(row).to_contain_text("待签收")
    await check(worker, "unit search")
    await shot(worker, "search-unit")
    await row.get_by_role("link").first.click()
    await expect(worker.get_by_role("heading", name=re.compile("电饭煲质量问题"))).to_be_visible()
    await worker.get_by_role("button", name="签收").click()
    assert "已签收" in await flash(worker)
    timeline = await worker.locator("ol.timeline").inner_text()
    assert "立案派单" in timeline and "签收" in timeline and "assigned" not in timeline, timeline
    await check(worker, "unit case page")

    # the office: the overdue cases of one street, from the search form
    office = await signed_in(browser, workbench, "office")
    await office.goto(f"{workbench}/search")
    await office.get_by_label("街道").select_option(label="洪武路街道")
    await office.get_by_label("只看已超期").check()
    await office.get_by_role("button", name="查询").click()
    rows = office.locator("table.cases tbody tr")
    await expect(rows.filter(has_text=late.city_ticket_id)).to_have_count(1)
    await expect(rows.filter(has_text=found.city_ticket_id)).to_have_count(0)  # not overdue
    assert all("已超期" in t for t in await rows.all_inner_texts())
    assert "street=ST03" in office.url and "overdue=1" in office.url
    await check(office, "office search")
    await shot(office, "search-office")
    # the supervision board lists the overdue case too, and what falls due today
    await office.goto(f"{workbench}/office/supervision?street=ST03")
    overdue = office.locator("table.cases", has=office.locator("caption", has_text="已超期案件"))
    await expect(overdue.locator("tbody tr", has_text=late.city_ticket_id)).to_have_count(1)
    await expect(office.locator("caption", has_text="今日到期案件")).to_be_visible()
    await check(office, "supervision board")
    await shot(office, "office-supervision-board")

    # a whistle: the office names the street and summons a department, which reports in
    await office.goto(f"{workbench}/whistles?ticket_id={late.city_ticket_id}")
    blow = office.get_by_role("form", name="吹哨")
    await blow.get_by_label("吹哨单位").select_option(label="洪武路街道")
    await blow.get_by_label("问题描述").fill("商场多起商品质量投诉，需城管、市场监管联合处置")
    await blow.get_by_label("召集的部门（可多选）").select_option(label="区城管委")
    await blow.get_by_role("button", name="吹哨").click()
    done = await flash(office)
    assert "已吹哨：洪武路街道召集 区城管委 报到" in done, done
    whistle_url = office.url
    await check(office, "whistle page")
    summoned = await signed_in(browser, workbench, "unit", unit_id="DP03")
    await summoned.goto(whistle_url)
    await summoned.get_by_label("报到说明").fill("已派执法中队到场")
    await summoned.get_by_role("button", name="报到").click()
    assert "已报到：区城管委" in await flash(summoned)
    await office.reload()
    await expect(office.locator("table tbody tr", has_text="区城管委")).to_contain_text("（按时）")
    await expect(office.get_by_role("heading", name=re.compile("已全部报到"))).to_be_visible()
    await shot(office, "whistle")
    await office.goto(f"{workbench}/whistles")
    await check(office, "whistles")
    await shot(office, "whistles")

    # a merge from the suggestions: the twin ticket is suggested on the other's case page
    async def suggested() -> int:
        await office.goto(f"{workbench}/cases/{twin_a.city_ticket_id}")
        return await office.locator("#merge tbody tr", has_text=twin_b.city_ticket_id).count()

    await eventually(suggested, lambda n: n == 1, timeout=60, every=1)
    suggestion = office.locator("#merge tbody tr", has_text=twin_b.city_ticket_id)
    await expect(suggestion).to_contain_text("同一地址")
    await suggestion.get_by_role("checkbox").check()
    await office.get_by_label("并单理由").fill("同一超市同一批微波炉质量问题")
    await office.get_by_role("button", name="并入本工单").click()
    done = await flash(office)
    assert f"已并单：{twin_b.city_ticket_id} 并入工单 {twin_a.city_ticket_id}" in done, done
    await expect(office.locator("#supervision")).to_contain_text(twin_b.city_ticket_id)
    await check(office, "case page (office)")
    await shot(office, "case-office-merge")

    # a 督办 letter: OA supervision of the late case, its letter printed from the case page
    await office.goto(f"{workbench}/cases/{late.city_ticket_id}")
    raise_form = office.get_by_role("form", name="发起督办")
    await raise_form.get_by_label("督办级别").select_option(label="OA督办（督办函）")
    await raise_form.get_by_label("督办事由").fill("超期未办结，发督办函")
    await raise_form.get_by_role("button", name="发起督办").click()
    assert "已发起OA督办" in await flash(office)
    async with office.context.expect_page() as opened:
        await office.get_by_role("link", name="打印督办函").click()
    letter = await opened.value
    await letter.wait_for_load_state()
    text = await letter.locator("body").inner_text()
    assert "督办函" in text and "区市场监督管理局" in text and late.city_ticket_id in text, text
    await expect(letter.get_by_role("button", name="打印督办函")).to_be_visible()
    await shot(letter, "supervision-letter")

    # 屡办不成 and the other pages: names, not ids; no serious accessibility violation
    for path, name in (("/office/recurring", "recurring"), ("/office", None), ("/kpis", None),
                       ("/office/decisions", None), ("/office/queue", None)):
        answer = await office.goto(f"{workbench}{path}")
        assert answer is not None and answer.status == 200, path
        await check(office, path)
        if name:
            await shot(office, name)
    # a policy as a form per field: a value refused here, one refused by the service (its reason on
    # the field), then a saved version
    await office.goto(f"{workbench}/office/policies/warning_rules")
    count = office.get_by_label("重复来电 · 橙色件数")
    await count.fill("五")
    await office.get_by_label("修改理由").fill("重复来电橙色预警门槛调整")
    await office.get_by_role("button", name="保存表单为新版本").click()
    await expect(office.get_by_role("alert")).to_contain_text("repeat.orange_count：应填写整数")
    await expect(office.get_by_label("重复来电 · 橙色件数")).to_have_attribute("aria-invalid", "true")
    await office.get_by_label("重复来电 · 橙色件数").fill("2")
    await office.get_by_role("button", name="保存表单为新版本").click()
    await expect(office.locator("#pf-repeat-orange_count-err")).to_contain_text("不得小于 repeat.min_count")
    await expect(office.get_by_label("修改理由")).to_have_value("重复来电橙色预警门槛调整")
    await check(office, "policy form")
    await shot(office, "office-policy-form")
    await office.get_by_label("重复来电 · 橙色件数").fill("6")
    await office.get_by_role("button", name="保存表单为新版本").click()
    assert "已保存预警规则为版本" in await flash(office)
    await expect(office.get_by_label("重复来电 · 橙色件数")).to_have_value("6")

    phone = await signed_in(browser, workbench, "unit", width=390, unit_id=unit)
    await phone.goto(f"{workbench}/search?q=电饭煲")
    await expect(phone.get_by_role("heading", name=re.compile("^案件查询"))).to_be_visible()
    await check(phone, "phone search")
    await shot(phone, "search-phone")
