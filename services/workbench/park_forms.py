"""挂账 forms of the case page and 事前提醒 of the unit's home page (issue #22). A pure client of
supervision's HTTP API: ``POST /cases/{id}/park/decision`` (the office approves or refuses a unit's
挂账申请), ``POST /cases/{id}/resume`` (恢复办理, the primary unit or the office) and
``GET /reminders`` (the unit's due-soon clocks). Nothing of services.* is imported.

The actions are named as the case API names them (``decide_park``, ``resume``); the case page
renders a form per action name, whoever decided the action is offered (here, until the case API
answers the allowed actions itself: then :func:`actions` goes)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from hotline.auth import Principal
from hotline.policy import Role
from hotline.v1 import events_pb2
from services.workbench.clients import Refused, Services

DECIDE_PARK, RESUME = "decide_park", "resume"
LABELS = {DECIDE_PARK: "挂账审批", RESUME: "恢复办理"}
REQUESTED = "requested"  # Park.status of a 挂账申请 waiting for the office
HANDLING = (events_pb2.CASE_STATE_IN_PROGRESS, events_pb2.CASE_STATE_SENT_BACK)


def labels(lifecycle: Mapping[Any, str]) -> dict[str, str]:
    """Action name -> Chinese label of every form the case page renders (the lifecycle's and these)."""
    return {**{str(k): v for k, v in lifecycle.items()}, **LABELS}


def actions(who: Principal, case: events_pb2.Case) -> list[str]:
    """挂账审批 for the office while a unit's request waits; 恢复办理 of a parked case for the office
    or its primary unit."""
    office = who.role in (Role.OFFICE, Role.ADMIN)
    out = []
    if office and case.state in HANDLING and case.park.status == REQUESTED:
        out.append(DECIDE_PARK)
    if case.state == events_pb2.CASE_STATE_PARKED and (
            office or (who.role == Role.UNIT and who.unit_id == case.primary_unit.unit_id)):
        out.append(RESUME)
    return out


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
