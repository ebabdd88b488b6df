"""The workbench's 挂账 forms and 事前提醒 (issue #22): the supervision calls the forms make, and the
reminders a unit's home page reads (a refusal leaves the card empty, not the page broken). Which park
actions are offered is the case API's (tests/unit/test_case_actions.py)."""

from __future__ import annotations

from typing import Any

import grpc
import httpx

from services.workbench import park_forms
from services.workbench.clients import Refused


class Supervision:
    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, str, Any, str]] = []
        self.refuse = refuse

    async def post(self, token: str, service: str, path: str, body: Any, key: str) -> httpx.Response:
        self.calls.append((service, path, body, key))
        if self.refuse:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, "no park request is waiting")
        return httpx.Response(200, json={})

    async def get(self, token: str, service: str, path: str, **params: Any) -> httpx.Response:
        self.calls.append((service, path, params, ""))
        if self.refuse:
            raise Refused(grpc.StatusCode.UNAVAILABLE, "down")
        return httpx.Response(200, json={"reminders": [{"ticket_id": "T1", "text": "【12345事前提醒】…"}]})


async def test_the_forms_call_supervisions_park_api() -> None:
    s = Supervision()
    ok, message = await park_forms.act(s, "tok", "T1", "decide_park",  # type: ignore[arg-type]
                                       {"approved": "0", "reason": "方案不具体", "key": "k1"})
    assert ok and "已驳回挂账申请" in message
    ok, message = await park_forms.act(s, "tok", "T1", "resume", {"reason": "资金到位", "key": "k2"})  # type: ignore[arg-type]
    assert ok and "已恢复办理" in message
    assert s.calls == [("supervision", "/cases/T1/park/decision", {"approved": False, "reason": "方案不具体"}, "k1"),
                       ("supervision", "/cases/T1/resume", {"reason": "资金到位"}, "k2")]
    ok, message = await park_forms.act(Supervision(refuse=True), "tok", "T1", "decide_park",  # type: ignore[arg-type]
                                       {"approved": "1"})
    assert not ok and message.startswith("挂账审批未成功")


async def test_the_home_page_reads_the_units_reminders() -> None:
    assert await park_forms.reminders(Supervision(), "tok") == [  # type: ignore[arg-type]
        {"ticket_id": "T1", "text": "【12345事前提醒】…"}]
    assert await park_forms.reminders(Supervision(refuse=True), "tok") == []  # type: ignore[arg-type]
