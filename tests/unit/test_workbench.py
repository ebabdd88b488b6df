"""The workbench's pure parts and its sign-in pages (no services needed)."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

import grpc

from hotline.auth import Principal, Verifier
from hotline.policy import Role
from hotline.settings import Settings
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


def test_the_case_apis_answer_becomes_the_case_pages_forms() -> None:
    """Which actions: the case API's answer (tests/unit/test_case_actions.py); the workbench only shows them."""
    offered = core.Offered.of({"actions": [{"name": "sign_off", "label": "签收"}, {"name": "direct_answer"},
                                           {"name": "resume", "label": "恢复办理"}, {"label": "no name"}]})
    assert offered.names == ("sign_off", "direct_answer", "resume")
    assert offered.forms == ["sign_off", "resume"]  # 直接答复 comes with the matching articles, not as a form
    assert offered.label("resume") == "恢复办理" and offered.label("direct_answer") == "直接答复"  # its own text
    assert core.Offered.of({}).names == () and core.Action.DECIDE_PARK == "decide_park"


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
