"""挂账 forms and 事前提醒 in the workbench (issue #22), in Chromium against the five services and the
workbench as processes on real Kafka and the real store.

A unit asks to park (挂账申请, its plan and target date); the district office sees the request with
its plan and target date in the 挂账审批 form of the case page and approves it; the unit resumes
the parked case (恢复办理) from its case page. When one of the unit's clocks comes due soon (its
due-soon moment is brought to now in the store: this module runs on the real clock) the timers fire
the reminder and the unit's home page lists it (事前提醒). axe-core finds no serious or critical
violation on those pages.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.async_api import Browser, expect

from hotline import mongo
from hotline.settings import Settings
from tests.e2e.test_deadlines import city_ticket
from tests.e2e.test_pipeline import cases_of as get_cases
from tests.e2e.test_workbench import flash, shot, signed_in
from tests.e2e.test_workbench_day import check
from tests.support import eventually, http, publish_tickets

pytestmark = pytest.mark.e2e


async def bring_due_soon(settings: Settings, ticket_id: str, kind: str) -> None:
    """Time passes for one clock of the case: its due-soon moment is now (the scan fires it)."""
    client = mongo.client(settings)
    try:
        cases = mongo.database(client, settings, "supervision")["cases"]
        now = datetime.now(UTC) - timedelta(seconds=30)
        r = await cases.update_one({"_id": ticket_id, f"timers.clocks.{kind}": {"$exists": True}},
                                   {"$set": {f"timers.clocks.{kind}.warn": now,
                                             f"timers.clocks.{kind}.stage": "due_soon", "timers.fire_at": now}})
        assert r.modified_count == 1
    finally:
        await client.close()


async def test_the_office_decides_a_park_the_unit_resumes_and_sees_its_reminders(
        workbench: str, browser: Browser, settings: Settings) -> None:
    tag = uuid.uuid4().hex[:6]
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    (tid,) = await publish_tickets(settings, [city_ticket(tag, "wbpark", received, (), "物业管理", 0)])
    case = (await eventually(lambda: get_cases(settings, [tid]), lambda found: tid in found, timeout=90))[tid]
    unit = case.primary_unit.unit_id
    base = f"http://{settings.bind_host}:{settings.ports.supervision_http}/cases/{tid}"
    target = (date.today() + timedelta(days=60)).isoformat()
    async with http(settings, "unit", unit_id=unit) as me:
        r = await me.post(f"{base}/sign-off", json={}, headers={"Idempotency-Key": f"{tag}-s"})
        assert r.status_code == 200, r.text
        r = await me.post(f"{base}/park", json={"plan": "纳入老旧小区电梯更新计划", "target_date": target,
                                                "reason": "需专项资金"}, headers={"Idempotency-Key": f"{tag}-p"})
        assert r.status_code == 200 and r.json()["park"]["status"] == "requested", r.text

    # the office: the request with its plan and target date, approved from the case page
    office = await signed_in(browser, workbench, "office")
    await office.goto(f"{workbench}/cases/{tid}")
    form = office.get_by_role("form", name="挂账审批")
    await expect(form).to_contain_text("纳入老旧小区电梯更新计划")
    await expect(form).to_contain_text(target)
    await check(office, "office case page with the park decision")
    await shot(office, "case-park-decision")
    await form.get_by_label("审批意见").fill("同意挂账，按月报送进展")
    await form.get_by_role("button", name="提交挂账审批").click()
    assert "已批准挂账" in await flash(office)
    await expect(office.locator("h1 .tag").first).to_have_text("挂账")
    await expect(office.get_by_role("form", name="挂账审批")).to_have_count(0)  # decided

    # the unit resumes its parked case
    worker = await signed_in(browser, workbench, "unit", unit_id=unit)
    await worker.goto(f"{workbench}/cases/{tid}")
    resume = worker.get_by_role("form", name="恢复办理")
    await expect(resume).to_contain_text("纳入老旧小区电梯更新计划")
    await check(worker, "unit case page with the resume form")
    await resume.get_by_label("恢复理由").fill("专项资金已到位")
    await resume.get_by_role("button", name="恢复办理").click()
    assert "已恢复办理" in await flash(worker)
    await expect(worker.locator("h1 .tag").first).to_have_text(re.compile("办理中"))
    await expect(worker.get_by_role("form", name="恢复办理")).to_have_count(0)

    # 事前提醒: the reply clock comes due soon; the timers fire its reminder; the home page lists it
    await bring_due_soon(settings, tid, "reply")

    async def listed() -> str:
        await worker.goto(f"{workbench}/inbox")
        return await worker.locator("section.reminders").inner_text()

    text = await eventually(listed, lambda t: tid in t, timeout=60, every=1)
    assert "办结反馈时限将于" in text and "请及时办理" in text, text
    await worker.locator("section.reminders").get_by_role("link", name=tid).click()
    await expect(worker.get_by_role("heading", name=re.compile(tid))).to_be_visible()
    await worker.goto(f"{workbench}/inbox")
    await check(worker, "unit home with reminders")
    await shot(worker, "unit-home-reminders")
    # another unit's home does not show it
    other = await signed_in(browser, workbench, "unit", unit_id="DP09" if unit != "DP09" else "DP08")
    await expect(other.locator("section.reminders")).not_to_contain_text(tid)
