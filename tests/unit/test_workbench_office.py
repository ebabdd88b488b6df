"""The district office's workbench pages without services: the pure helpers, the refusal of
every other role before any service is called, and the policy files' read view."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from hotline.auth import Principal
from hotline.policy import Role
from hotline.settings import REPO_ROOT, Settings
from hotline.v1 import events_pb2
from services.workbench import core
from services.workbench.app import build
from services.workbench.office import item_of

OFFICE_PAGES = ("/office", "/office/queue", "/office/decisions", "/office/joint-reviews", "/office/supervision",
                "/office/warnings", "/office/list", "/office/list/edit", "/office/policies")


def signed_in(role: str, **scope: str) -> TestClient:
    client = TestClient(build(Settings()))
    r = client.post("/login/dev", data={"role": role, **scope}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    return client


def test_unit_lists_split_on_commas_enumeration_commas_and_spaces() -> None:
    assert core.split_list("DP03, DP06、DP07 DP08，DP03\nDP09") == ["DP03", "DP06", "DP07", "DP08", "DP09"]
    assert core.split_list("  ") == []
    item = item_of({"item_rule_id": "城市管理-X1", "item_category": "城市管理", "item_keywords": "充电柜、起火",
                    "item_primary": "DP06", "item_assisting": "DP03"}, "item_")
    assert (item.rule_id, list(item.keywords), item.primary, list(item.assisting)) == (
        "城市管理-X1", ["充电柜", "起火"], "DP06", ["DP03"])


def test_the_board_counts_open_cases_and_overdue_ones_per_level() -> None:
    cases = [(events_pb2.Case(ticket_id="a", supervision_level=0), False),
             (events_pb2.Case(ticket_id="b", supervision_level=2), True),
             (events_pb2.Case(ticket_id="c", supervision_level=2), False)]
    board = core.by_level(cases)
    assert set(board) == set(core.SUPERVISION_LEVELS)
    assert [c.ticket_id for c in board[2]["cases"]] == ["b", "c"]
    assert [c.ticket_id for c in board[2]["overdue"]] == ["b"]
    assert len(board[0]["cases"]) == 1 and board[4] == {"cases": [], "overdue": []}


def test_only_the_office_and_admin_may_open_the_office_pages() -> None:
    assert core.office_page(Principal("o", Role.OFFICE)) and core.office_page(Principal("a", Role.ADMIN))
    assert not any(core.office_page(Principal("x", r)) for r in Role if r not in core.OFFICE_ROLES)


@pytest.mark.parametrize(("role", "scope"), [("unit", {"unit_id": "DP01"}), ("deputy", {"deputy_id": "D1"}),
                                              ("leader", {})])
def test_other_roles_are_refused_every_office_page_before_any_service_is_called(role: str,
                                                                                  scope: dict[str, str]) -> None:
    client = signed_in(role, **scope)  # no service runs: a call would fail with 502, not 403
    for path in OFFICE_PAGES:
        r = client.get(path)
        assert r.status_code == 403, path
        assert "无权访问" in r.text and "区热线办页面仅供区热线办和管理员使用" in r.text, path
    for path in ("/office/queue/T1/dispatch", "/office/returns/T1", "/office/extensions/T1", "/office/list",
                 "/office/joint-reviews/open", "/office/joint-reviews/decide", "/office/recategorize"):
        assert client.post(path, data={"reason": "x"}, follow_redirects=False).status_code == 403, path


def test_the_policy_page_shows_each_policy_file_with_its_version() -> None:
    r = signed_in("office").get("/office/policies")
    assert r.status_code == 200
    for title, path in core.POLICY_FILES:
        doc = json.loads((REPO_ROOT / path).read_text(encoding="utf-8"))
        assert title in r.text and path in r.text
        if "version" in doc:
            assert f"版本 {doc['version']}" in r.text
    assert "签收时限（小时）" in r.text and "退单时限（工作日）" in r.text
