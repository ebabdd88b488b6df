"""挂账 forms of the case page and 事前提醒 of the unit's home page (issue #22). A pure client of
supervision's HTTP API: ``POST /cases/{id}/park/decision`` (the office approves or refuses a unit's
挂账申请), ``POST /cases/{id}/resume`` (恢复办理, the primary unit or the office) and
``GET /reminders`` (the unit's due-soon clocks). Nothing of services.* is imported.

The actions are named as the case API names them (``decide_park``, ``resume``); the case page
renders a form per action name; the case API (``GET /cases/{id}/actions``) decides which are offered."""

from __future__ import annotations

import urllib.parse
from typing import Any

from services.workbench.clients import Refused, Services

DECIDE_PARK, RESUME = "decide_park", "resume"
LABELS = {DECIDE_PARK: "挂账审批", RESUME: "恢复办理"}


async def act(services: Services, token: str, ticket_id: str, action: str, form: dict[str, str]) -> tuple[bool, str]:
    """Run one park form; (done, the message for the person)."""
    path = f"/cases/{urllib.parse.quote(ticket_id)}"
    if action == DECIDE_PARK:
        approved = form.get("approved") == "1"
        body: dict[str, Any] = {"approved": approved, "reason": form.get("reason", "")}
        path, done = f"{path}/park/decision", "已批准挂账，相关时限暂停计时" if approved else "已驳回挂账申请"
    else:
        body = {"reason": form.get("reason", "")}
        path, done = f"{path}/resume", "已恢复办理，暂停的时限恢复计时"
    try:
        await services.post(token, "supervision", path, body, form.get("key", ""))
    except Refused as exc:
        return False, f"{LABELS[action]}未成功。{exc.message}"
    return True, f"{done}（工单 {ticket_id}）"


async def reminders(services: Services, token: str) -> list[dict[str, Any]]:
    """The signed-in unit's 事前提醒 (empty when supervision refuses or is away: a page part)."""
    try:
        response = await services.get(token, "supervision", "/reminders")
    except Refused:
        return []
    found = response.json().get("reminders", [])
    return [r for r in found if isinstance(r, dict)]
