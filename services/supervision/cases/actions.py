"""The actions a person may take on a case now (issue #20): what the case API answers
(``GET /cases/{ticket_id}/actions``), so the workbench renders its forms from the answer and
knows nothing of the lifecycle's rules. The answer is the lifecycle's own checks
(lifecycle.check_actor and check_state, i.e. ACTOR_OF and ALLOWED) plus the preconditions its
handlers enforce on sub-cases and park requests; the platform's own actions (routing, the city's
callback) are never offered to a person."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.v1 import case_pb2, events_pb2
from services.supervision.cases.lifecycle import (
    ACTOR_OF,
    ALLOWED,
    PARK_REQUESTED,
    SYSTEM,
    Action,
    check_actor,
    check_state,
)

LABELS: dict[Action, str] = {
    Action.SIGN_OFF: "签收", Action.ASSIST_SIGN_OFF: "协办签收", Action.RECORD_CONTACT: "联系诉求人",
    Action.REPLY: "办结反馈", Action.REQUEST_EXTENSION: "申请延期", Action.DECIDE_EXTENSION: "延期审批",
    Action.PARK: "挂账", Action.DECIDE_PARK: "挂账审批", Action.RESUME: "恢复办理",
    Action.REPORT_PROGRESS: "挂账进展", Action.REQUEST_RETURN: "申请退单", Action.REVIEW: "审核",
    Action.DECIDE_REDO: "重办或结案", Action.CONTRIBUTE: "提交协办意见", Action.WAIVE_ASSIST: "免于协办",
    Action.DIRECT_ANSWER: "直接答复",
    Action.REFUSE_RETURN: "不予退单", Action.REDISPATCH: "重新派单", Action.EVALUATE: "回访",  # the platform's
}
OPEN_ASSIST = (case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF, case_pb2.ASSIST_STATE_SIGNED_OFF)


@dataclass(frozen=True)
class Offered:
    action: Action
    label: str

    def as_json(self) -> dict[str, str]:
        return {"name": str(self.action), "label": self.label}


def _own_assist(case: events_pb2.Case, unit_id: str) -> int | None:
    return next((t.state for t in case.assists if t.unit_id == unit_id), None)


def _applies(action: Action, case: events_pb2.Case, who: Principal) -> bool:
    """The handlers' preconditions beyond the state table: a sub-case in the right state, a park
    request waiting (or not) for the office."""
    if action == Action.ASSIST_SIGN_OFF:  # the primary's SignOff is always its own (lifecycle.action_of)
        return who.unit_id != case.primary_unit.unit_id and \
            _own_assist(case, who.unit_id) == case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF
    if action == Action.CONTRIBUTE:
        return _own_assist(case, who.unit_id) == case_pb2.ASSIST_STATE_SIGNED_OFF
    if action == Action.WAIVE_ASSIST:
        return any(t.state in OPEN_ASSIST for t in case.assists)
    if action == Action.PARK:
        return case.park.status != PARK_REQUESTED
    if action == Action.DECIDE_PARK:
        return case.park.status == PARK_REQUESTED
    return True


def allowed(case: events_pb2.Case, who: Principal) -> list[Offered]:
    """Every action ``who`` may take on ``case`` now, in the lifecycle table's order, with its label."""
    out: list[Offered] = []
    for action in ALLOWED:
        if ACTOR_OF[action] == SYSTEM:
            continue
        try:
            check_actor(action, case, who)
            check_state(action, case)
        except DomainError:
            continue
        if _applies(action, case, who):
            out.append(Offered(action, LABELS[action]))
    return out
