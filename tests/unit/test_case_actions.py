"""The case API's 可办理的操作 (services/supervision/cases/actions.py, issue #20): the actions a person may
take on a case now, from the lifecycle's own rules; the workbench renders exactly these."""

from __future__ import annotations

from hotline.auth import Principal
from hotline.policy import Role
from hotline.v1 import case_pb2, events_pb2
from services.supervision.cases import actions
from services.supervision.cases.lifecycle import ALLOWED, PARK_REQUESTED, Action

UNIT = Principal("u", Role.UNIT, unit_id="DP01")
HELPER = Principal("h", Role.UNIT, unit_id="DP12")
OFFICE = Principal("o", Role.OFFICE)
LEADER = Principal("l", Role.LEADER)
AWAITING, HANDLING, REPLIED, PARKED = (events_pb2.CASE_STATE_AWAITING_SIGN_OFF, events_pb2.CASE_STATE_IN_PROGRESS,
                                       events_pb2.CASE_STATE_REPLIED, events_pb2.CASE_STATE_PARKED)


def case(state: int, assists: dict[str, int] | None = None, park: str = "") -> events_pb2.Case:
    return events_pb2.Case(ticket_id="T1", state=state, primary_unit=events_pb2.Unit(unit_id="DP01"),
                           assisting_units=[events_pb2.Unit(unit_id=u) for u in assists or {}],
                           assists=[case_pb2.AssistTask(unit_id=u, state=s) for u, s in (assists or {}).items()],
                           park=case_pb2.Park(status=park))


def names(who: Principal, c: events_pb2.Case) -> list[str]:
    return [o.action for o in actions.allowed(c, who)]


def forms(who: Principal, c: events_pb2.Case) -> list[str]:
    return [a for a in names(who, c) if a != Action.DIRECT_ANSWER]


def test_actions_follow_the_lifecycle_table_and_who_acts() -> None:
    assert forms(UNIT, case(AWAITING)) == [Action.SIGN_OFF, Action.REQUEST_RETURN]
    assert set(forms(UNIT, case(HANDLING))) == {Action.RECORD_CONTACT, Action.REPLY, Action.REQUEST_EXTENSION,
                                                Action.PARK, Action.REQUEST_RETURN}
    assert forms(UNIT, case(REPLIED)) == [] and forms(OFFICE, case(REPLIED)) == [Action.REVIEW]
    assert forms(OFFICE, case(AWAITING)) == []  # nothing of the unit's is offered to the office
    assert Action.DIRECT_ANSWER in names(OFFICE, case(AWAITING))  # 直接答复: the office's, offered with articles
    # an assisting unit: sign off its sub-case, then contribute; the office may waive it
    assert forms(HELPER, case(HANDLING, {"DP12": case_pb2.ASSIST_STATE_AWAITING_SIGN_OFF})) == [Action.ASSIST_SIGN_OFF]
    assert forms(HELPER, case(HANDLING, {"DP12": case_pb2.ASSIST_STATE_SIGNED_OFF})) == [Action.CONTRIBUTE]
    assert forms(OFFICE, case(HANDLING, {"DP12": case_pb2.ASSIST_STATE_SIGNED_OFF})) == [Action.WAIVE_ASSIST]
    assert forms(OFFICE, case(HANDLING, {"DP12": case_pb2.ASSIST_STATE_CONTRIBUTED})) == []
    assert forms(Principal("x", Role.UNIT, unit_id="DP99"), case(HANDLING)) == []  # not its case
    assert names(LEADER, case(HANDLING)) == [] and names(LEADER, case(REPLIED)) == []  # leaders read
    for who in (UNIT, OFFICE, HELPER):  # never an action the table forbids in the state, never the platform's
        for state in (*ALLOWED[Action.REVIEW], *ALLOWED[Action.SIGN_OFF], HANDLING, PARKED):
            got = names(who, case(state, {"DP12": case_pb2.ASSIST_STATE_SIGNED_OFF}))
            assert all(state in ALLOWED[a] for a in got)
            assert not {Action.REDISPATCH, Action.REFUSE_RETURN, Action.EVALUATE} & set(got)


def test_park_actions_are_offered_when_they_apply() -> None:
    """挂账: the unit asks (park) unless a request already waits; the office decides (decide_park) only a
    waiting request; a parked case resumes (resume) by the primary unit or the office."""
    waiting = case(HANDLING, park=PARK_REQUESTED)
    assert Action.DECIDE_PARK in names(OFFICE, waiting) and Action.DECIDE_PARK not in names(OFFICE, case(HANDLING))
    assert Action.PARK in names(UNIT, case(HANDLING)) and Action.PARK not in names(UNIT, waiting)
    assert Action.DECIDE_PARK not in names(UNIT, waiting)  # the office's decision
    assert Action.RESUME in names(UNIT, case(PARKED)) and Action.RESUME in names(OFFICE, case(PARKED))
    assert Action.RESUME not in names(UNIT, case(HANDLING))
    assert Action.RESUME not in names(HELPER, case(PARKED, {"DP12": case_pb2.ASSIST_STATE_SIGNED_OFF}))
    labels = {o.action: o.label for o in actions.allowed(case(PARKED), UNIT)}
    assert labels[Action.RESUME] == "恢复办理" and labels[Action.REPLY] == "办结反馈"
    assert actions.allowed(case(PARKED), UNIT)[0].as_json().keys() == {"name", "label"}
