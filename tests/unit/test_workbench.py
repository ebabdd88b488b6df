"""The workbench's pure parts and its sign-in pages (no services needed)."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

import grpc

from hotline.auth import Principal, Verifier
from hotline.policy import Role
from hotline.settings import Settings
from hotline.v1 import events_pb2
from services.supervision.cases.lifecycle import ALLOWED, Action
from services.workbench import core
from services.workbench.app import COOKIE, build
from tests.support import browser_client

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
UNIT = Principal("u", Role.UNIT, unit_id="DP01")
HELPER = Principal("h", Role.UNIT, unit_id="DP12")
OFFICE = Principal("o", Role.OFFICE)


def test_session_cookie_is_signed_and_tamper_evident() -> None:
    value = core.sign({"token": "abc"}, "s1")
    assert core.unsign(value, "s1") == {"token": "abc"}
    assert core.unsign(value, "s2") is None
    body, mac = value.split(".")
    assert core.unsign(f"{body}x.{mac}", "s1") is None and core.unsign("", "s1") is None


def test_countdown_marks_overdue() -> None:
    assert core.countdown(NOW + timedelta(days=1, hours=3), NOW) == ("剩余 1天3小时", False)
    assert core.countdown(NOW - timedelta(hours=2, minutes=5), NOW) == ("超期 2小时5分", True)
    assert core.countdown(None, NOW) == ("—", False)


def view(state: int, assists: dict[str, int] | None = None) -> core.CaseView:
    return core.CaseView(state, "DP01", assists or {})


def test_actions_follow_the_lifecycle_table_and_who_acts() -> None:
    awaiting, handling, replied = (events_pb2.CASE_STATE_AWAITING_SIGN_OFF, events_pb2.CASE_STATE_IN_PROGRESS,
                                   events_pb2.CASE_STATE_REPLIED)
    assert core.actions(UNIT, view(awaiting)) == [Action.SIGN_OFF, Action.REQUEST_RETURN]
    assert set(core.actions(UNIT, view(handling))) == {Action.RECORD_CONTACT, Action.REPLY, Action.REQUEST_EXTENSION,
                                                       Action.PARK, Action.REQUEST_RETURN}
    assert core.actions(UNIT, view(replied)) == [] and core.actions(OFFICE, view(replied)) == [Action.REVIEW]
    assert core.actions(OFFICE, view(awaiting)) == []  # nothing of the unit's is offered to the office
    # an assisting unit: sign off its sub-case, then contribute; the office may waive it
    assert core.actions(HELPER, view(handling, {"DP12": 1})) == [Action.ASSIST_SIGN_OFF]
    assert core.actions(HELPER, view(handling, {"DP12": 2})) == [Action.CONTRIBUTE]
    assert core.actions(OFFICE, view(handling, {"DP12": 2})) == [Action.WAIVE_ASSIST]
    assert core.actions(Principal("x", Role.UNIT, unit_id="DP99"), view(handling)) == []
    for who in (UNIT, OFFICE):  # never an action the table forbids in the state
        for state in ALLOWED[Action.REVIEW] | ALLOWED[Action.SIGN_OFF] | {handling}:
            assert all(state in ALLOWED[a] for a in core.actions(who, view(state)))


def test_errors_become_precise_chinese_messages() -> None:
    message = core.explain(grpc.StatusCode.FAILED_PRECONDITION, "record the contact before replying")
    assert message == "当前状态下不能进行此操作：record the contact before replying"
    assert core.explain(grpc.StatusCode.NOT_FOUND, "") == "未找到，或不在您的办理范围内"


def settings(**workbench: str) -> Settings:
    return Settings.model_validate({"workbench": {"oidc_authorize_url": "https://idp.example/auth",
                                                  "oidc_token_url": "https://idp.example/token",
                                                  "oidc_redirect_url": "https://wb.example/auth/callback",
                                                  **workbench}})


def test_development_sign_in_sets_a_signed_httponly_cookie_with_a_valid_token() -> None:
    s = settings()
    client = browser_client(build(s), base_url="https://testserver")  # https: Secure cookies
    r = client.post("/login/dev", data={"role": "unit", "unit_id": "DP01", "deputy_id": "D1"}, follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    data = core.unsign(r.cookies[COOKIE], s.workbench.session_secret.get_secret_value())
    assert data is not None
    assert Verifier(s.auth).verify(data["token"]) == Principal("unit:DP01", Role.UNIT, unit_id="DP01")
    r = client.post("/login/dev", data={"role": "deputy"}, follow_redirects=False)
    assert r.headers["location"] == "/login" and COOKIE not in r.cookies


def test_oidc_sign_in_redirects_with_state_and_refuses_a_foreign_state() -> None:
    client = browser_client(build(settings()), base_url="https://testserver")
    r = client.get("/login/oidc", follow_redirects=False)
    target = urllib.parse.urlparse(r.headers["location"])
    query = urllib.parse.parse_qs(target.query)
    assert target.netloc == "idp.example" and query["response_type"] == ["code"]
    assert query["client_id"] == ["hotline-workbench"] and query["state"][0]
    r = client.get("/auth/callback", params={"code": "c", "state": "not-ours"}, follow_redirects=False)
    assert r.headers["location"] == "/login"  # never exchanged: the state does not match
    assert client.get("/inbox", follow_redirects=False).headers["location"] == "/login"
