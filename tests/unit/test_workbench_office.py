"""The district office's workbench pages without services: the pure helpers, the refusal of
every other role before any service is called, and the policy files' read view."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient

from hotline.auth import Principal
from hotline.policy import Role
from hotline.settings import REPO_ROOT, Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2, ticket_pb2
from services.workbench import core
from services.workbench.app import build
from services.workbench.clients import Refused, Services
from services.workbench.office import item_of
from tests.support import browser_client

OFFICE_PAGES = ("/office", "/office/queue", "/office/decisions", "/office/joint-reviews", "/office/supervision",
                "/office/warnings", "/office/list", "/office/list/edit", "/office/policies",
                "/office/policies/warning_rules")


def signed_in(role: str, **scope: str) -> TestClient:
    client = browser_client(build(Settings()))
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
                 "/office/joint-reviews/open", "/office/joint-reviews/decide", "/office/recategorize",
                 "/office/policies/warning_rules"):
        assert client.post(path, data={"reason": "x"}, follow_redirects=False).status_code == 403, path


def test_the_policy_page_shows_each_policy_file_with_its_version() -> None:
    r = signed_in("office").get("/office/policies")
    assert r.status_code == 200
    for title, path in core.POLICY_FILES:
        doc = json.loads((REPO_ROOT / path).read_text(encoding="utf-8"))
        assert title in r.text and path in r.text
        if "version" in doc:
            assert f"版本 {doc['version']}" in r.text
    assert "时限政策" in r.text and "重办时限（工作日，热线办未给时）" in r.text


class FakeServices:
    """Stands in for the services at the workbench's client boundary: records each call and
    answers from ``answers`` (a Refused is raised)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any, str]] = []

    async def call(self, token: str, service: str, method: str, request: Any, key: str = "") -> Any:
        self.calls.append((service, method, request, key))
        answer = self.answers[method]
        if isinstance(answer, Refused):
            raise answer
        return answer

    async def get(self, token: str, service: str, path: str, **params: Any) -> Any:
        if service == "supervision" and path.endswith("/actions"):  # the case API's 可办理的操作
            self.calls.append((service, path, params, ""))
            return FakeResponse(self.answers.get("actions", {"actions": []}))
        raise Refused(grpc.StatusCode.UNAVAILABLE, "not in this test")


def office_with(monkeypatch: pytest.MonkeyPatch, answers: dict[str, Any]) -> tuple[TestClient, FakeServices]:
    fake = FakeServices(answers)
    for name in ("call", "get"):
        monkeypatch.setattr(Services, name, lambda self, *a, _n=name, **k: getattr(fake, _n)(*a, **k))
    return signed_in("office"), fake


def flash_of(client: TestClient, response: Any) -> str:
    assert response.status_code == 303
    value = response.cookies.get("hotline_flash", "").strip('"')  # quoted when the value has "="
    data = core.unsign(value, Settings().workbench.session_secret.get_secret_value())
    assert data is not None
    return f"{'ok' if data['ok'] else 'bad'}: {data['message']}"


def test_each_office_action_sends_the_request_the_form_says_and_confirms_what_happened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assignment = events_pb2.Assignment(ticket_id="T1", primary_unit=events_pb2.Unit(unit_id="DP03", name="区城管局"),
                                       assisting_units=[events_pb2.Unit(unit_id="DP06")], category="城市管理",
                                       dispatch_round=2)
    client, fake = office_with(monkeypatch, {
        "Dispatch": assignment, "Recategorize": assignment,
        "DecideReturn": routing_pb2.PendingReturn(ticket_id="T1", dispatch_round=1, unit_id="DP17",
                                                  status=case_pb2.RETURN_STATUS_APPROVED, redispatched_to="DP18"),
        "DecideExtension": events_pb2.Case(ticket_id="T1", extension=case_pb2.Extension(granted_working_days=3)),
        "OpenJointReview": routing_pb2.JointReview(ticket_id="T1", unit_ids=["DP03", "DP06"]),
        "DecideJointReview": routing_pb2.JointReview(ticket_id="T1", primary_unit_id="DP06", list_version="v7"),
        "UpsertListItem": routing_pb2.ListItem(rule_id="城市管理-X1", item="充电柜"),
        "ListListItems": routing_pb2.ListListItemsResponse(list_version="v8"),
    })
    post = lambda path, **data: client.post(path, data=data, follow_redirects=False)  # noqa: E731
    said = flash_of(client, post("/office/queue/T1/dispatch", key="k1", primary_unit_id="DP03",
                                 assisting_unit_ids="DP06、DP07", category="城市管理", reason="人工研判"))
    assert said == "ok: 已派单：工单 T1，主办 区城管局（DP03），协办 DP06，类别 城市管理，第 2 轮"
    _, method, request, key = fake.calls[-1]
    assert (method, request.primary_unit_id, list(request.assisting_unit_ids), key) == (
        "Dispatch", "DP03", ["DP06", "DP07"], "k1")
    assert "已改类重派：工单 T1" in flash_of(client, post("/office/recategorize", ticket_id="T1", category="城市管理",
                                                         reason="属市容"))
    said = flash_of(client, post("/office/returns/T1", approved="1", reason="属医保局", primary_unit_id="DP18"))
    assert said == "ok: 已同意退单：工单 T1 已改派给 DP18（第 2 轮）"
    assert fake.calls[-1][2].approved and fake.calls[-1][2].primary_unit_id == "DP18"
    flash_of(client, post("/office/returns/T1", approved="0", reason="属本单位", primary_unit_id="DP18"))
    assert not fake.calls[-1][2].approved and fake.calls[-1][2].primary_unit_id == ""  # refusing names no units
    said = flash_of(client, post("/office/extensions/T1", approved="1", working_days="3", reason="同意"))
    assert said.startswith("ok: 已批准延期：工单 T1 延期 3 个工作日") and fake.calls[-1][0] == "supervision"
    assert "参加单位 DP03、DP06" in flash_of(client, post("/office/joint-reviews/open", ticket_id="T1",
                                                          unit_ids="DP03 DP06", reason="争议"))
    said = flash_of(client, post("/office/joint-reviews/decide", ticket_id="T1", primary_unit_id="DP06",
                                 reason="议定", item_rule_id="城市管理-X1", item_category="城市管理",
                                 item_item="充电柜", item_keywords="充电柜、起火", item_primary="DP06"))
    assert said == "ok: 已作出研判结论：工单 T1 由 DP06 主办，清单已更新为版本 v7"
    assert list(fake.calls[-1][2].list_change.keywords) == ["充电柜", "起火"]
    said = flash_of(client, post("/office/list", rule_id="城市管理-X1", category="城市管理", item="充电柜",
                                 primary="DP06", reason="联席会议", new="1"))
    assert said == "ok: 已保存清单事项 城市管理-X1（充电柜），清单版本 v8"


def test_a_refused_office_action_says_the_services_precise_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = office_with(monkeypatch, {
        "Dispatch": Refused(grpc.StatusCode.INVALID_ARGUMENT, "unknown handling units: XX99"),
        "DecideReturn": Refused(grpc.StatusCode.FAILED_PRECONDITION, "ticket T1 has no return waiting for a decision"),
    })
    r = client.post("/office/queue/T1/dispatch", data={"primary_unit_id": "XX99"}, follow_redirects=False)
    assert r.headers["location"] == "/office/queue"
    assert flash_of(client, r) == "bad: 人工派单未成功。填写的内容不符合要求：unknown handling units: XX99"
    r = client.post("/office/returns/T1", data={"approved": "0", "reason": "x"}, follow_redirects=False)
    assert flash_of(client, r) == ("bad: 退单审核未成功。当前状态下不能进行此操作："
                                   "ticket T1 has no return waiting for a decision")


def test_open_joint_reviews_are_listed_with_a_link_to_decide_each(monkeypatch: pytest.MonkeyPatch) -> None:
    client, fake = office_with(monkeypatch, {
        "ListListItems": routing_pb2.ListListItemsResponse(list_version="v8"),
        "ListJointReviews": routing_pb2.ListJointReviewsResponse(reviews=[
            routing_pb2.JointReview(ticket_id="T1", unit_ids=["DP03", "DP06"], reason="充电柜起火职责争议",
                                    status=routing_pb2.REVIEW_STATUS_OPEN)]),
        "GetCase": Refused(grpc.StatusCode.NOT_FOUND, "case 'T1' not found"),
    })
    r = client.get("/office/joint-reviews")
    assert r.status_code == 200
    asked = next(request for _, method, request, _ in fake.calls if method == "ListJointReviews")
    assert asked.status == routing_pb2.REVIEW_STATUS_OPEN
    assert "待研判（1 件）" in r.text and "区城管委、" in r.text and "充电柜起火职责争议" in r.text  # names, not ids
    assert 'href="/office/joint-reviews?ticket_id=T1#t-decide"' in r.text
    r = client.get("/office/joint-reviews?ticket_id=T1")
    assert "正在为工单 T1 作研判结论" in r.text and 'id="j-ticket" name="ticket_id" value="T1"' in r.text
    fake.answers["ListJointReviews"] = routing_pb2.ListJointReviewsResponse()
    assert "目前没有待研判的工单" in client.get("/office/joint-reviews").text


class FakeResponse:
    def __init__(self, body: Any) -> None:
        self.body = body

    def json(self) -> Any:
        return self.body


def editor_with(monkeypatch: pytest.MonkeyPatch, put: Any) -> tuple[TestClient, list[tuple[str, Any, str]]]:
    doc = json.loads((REPO_ROOT / "services/supervision/data/warning_rules.json").read_text(encoding="utf-8"))
    current = {"name": "warning_rules", "version": 2, "doc": doc, "actor": "office:li",
               "at": "2026-11-26T01:00:00+00:00", "reason": "复核"}
    sent: list[tuple[str, Any, str]] = []

    async def get(self: Any, token: str, service: str, path: str, **params: Any) -> FakeResponse:
        assert service == "supervision"
        if path.endswith("/versions"):
            return FakeResponse({"versions": [{**current, "doc": None},
                                              {**current, "version": 1, "reason": "shipped file"}]})
        return FakeResponse(current)

    async def put_(self: Any, token: str, service: str, path: str, body: Any, key: str) -> FakeResponse:
        sent.append((path, body, key))
        return put(body)

    monkeypatch.setattr(Services, "get", get)
    monkeypatch.setattr(Services, "put", put_)
    return signed_in("office"), sent


def test_the_policy_editor_shows_the_version_and_saves_a_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    client, sent = editor_with(monkeypatch, lambda body: FakeResponse({"version": 3}))
    r = client.get("/office/policies/warning_rules")
    assert r.status_code == 200 and "当前生效版本" in r.text and "版本 2" in r.text and "保存为版本 3" in r.text
    assert '<label for="p-doc">' in r.text and '<label for="p-reason">修改理由</label>' in r.text
    assert "shipped file" in r.text and "&#34;min_count&#34;: 6" in r.text  # history and the document shown
    assert 'href="/office/policies/warning_rules"' in client.get("/office/policies").text
    doc = {"repeat": {"min_count": 4}}
    said = flash_of(client, client.post("/office/policies/warning_rules", data={
        "doc": json.dumps(doc), "reason": "重复来电", "expected_version": "2", "key": "k9"}, follow_redirects=False))
    assert said == "ok: 已保存预警规则为版本 3（原版本 2），新规则即时生效"
    assert sent == [("/policies/warning_rules", {"doc": doc, "reason": "重复来电", "expected_version": 2}, "k9")]


def test_a_refused_policy_stays_in_the_editor_with_the_precise_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(body: Any) -> Any:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "burst.p_value: must be between 1e-09 and 0.5, not 2")

    client, sent = editor_with(monkeypatch, refuse)
    r = client.post("/office/policies/warning_rules", data={"doc": '{"burst":\n {"p_value": 2}}', "reason": "试",
                                                             "expected_version": "2"})
    assert r.status_code == 422 and "保存预警规则未成功" in r.text
    assert "burst.p_value: must be between 1e-09 and 0.5, not 2" in r.text
    assert "&#34;p_value&#34;: 2" in r.text and 'value="试"' in r.text and 'aria-invalid="true"' in r.text
    r = client.post("/office/policies/warning_rules", data={"doc": '{"burst":\n {"p_value": }}', "reason": "试"})
    assert r.status_code == 422 and "JSON 格式错误：第 2 行第 14 列" in r.text and len(sent) == 1  # not sent
    assert client.get("/office/policies/sla_nothing").status_code == 404


# ---------------------------------------------------------------- 时限政策 (the SLA policy, a versioned policy)

SLA_DOC = json.loads((REPO_ROOT / "hotline/data/sla_policy.json").read_text(encoding="utf-8"))


def sla_editor_with(monkeypatch: pytest.MonkeyPatch, put: Any, role: str = "admin",
                    **scope: str) -> tuple[TestClient, list[tuple[str, Any, str]], dict[str, Any]]:
    """The SLA policy as supervision serves it, like every versioned policy (hotline/policies.py)."""
    state: dict[str, Any] = {"version": 2}
    sent: list[tuple[str, Any, str]] = []

    def row(v: int) -> dict[str, Any]:
        return {"name": "sla_policy", "version": v, "actor": f"admin:{v}", "at": f"2026-11-26T0{v}:00:00+00:00",
                "reason": "随程序发布" if v == 1 else f"第 {v} 次调整"}

    async def get(self: Any, token: str, service: str, path: str, **params: Any) -> FakeResponse:
        assert service == "supervision"
        if path == "/policies/sla_policy/versions":
            return FakeResponse({"name": "sla_policy", "versions": [row(v) for v in range(state["version"], 0, -1)]})
        assert path == "/policies/sla_policy"
        return FakeResponse({**row(state["version"]), "doc": {**SLA_DOC, "version": state["version"]}})

    async def put_(self: Any, token: str, service: str, path: str, body: Any, key: str) -> FakeResponse:
        sent.append((path, body, key))
        return put(body)

    monkeypatch.setattr(Services, "get", get)
    monkeypatch.setattr(Services, "put", put_)
    return signed_in(role, **scope), sent, state


def test_the_sla_policy_editor_shows_the_version_and_history_and_saves_a_new_one_as_admin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, sent, _ = sla_editor_with(monkeypatch, lambda body: FakeResponse({"version": 3, "doc": body["doc"]}))
    r = client.get("/office/policies/sla_policy")
    assert r.status_code == 200 and "<h1>时限政策</h1>" in r.text
    assert "当前生效版本 <span class=\"tag\">版本 2</span>" in r.text and "保存为版本 3" in r.text
    assert "admin:2 于 2026-11-26 10:00 保存；理由：第 2 次调整" in r.text  # district time
    assert '<label for="p-doc">时限政策内容' in r.text and '<label for="p-reason">修改理由</label>' in r.text
    assert "随程序发布" in r.text and "&#34;sign_off&#34;: {" in r.text
    assert 'name="expected_version" value="2"' in r.text
    assert 'href="/office/policies/sla_policy"' in client.get("/office/policies").text
    doc = {**SLA_DOC, "max_extensions": 2}
    said = flash_of(client, client.post("/office/policies/sla_policy", data={
        "doc": json.dumps(doc), "reason": " 允许两次延期 ", "expected_version": "2", "key": "k7"},
        follow_redirects=False))
    assert said == "ok: 已保存时限政策为版本 3（原版本 2），此后新立案件按新版本计时，已立案件仍按其立案时的版本"
    assert sent == [("/policies/sla_policy", {"doc": doc, "expected_version": 2, "reason": "允许两次延期"}, "k7")]


def test_a_refused_sla_policy_keeps_the_text_and_lists_every_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = "defaults.reply: working_days must be an integer 0..60; lanes[0]: name must be lower_snake_case"

    def refuse(body: Any) -> Any:  # supervision answers 422 {"detail": every problem joined by "; ", "field"}
        raise Refused(core.HTTP_STATUS[422], problems)

    client, sent, _ = sla_editor_with(monkeypatch, refuse)
    text = '{"defaults":\n {"reply": {"working_days": 99}}}'
    r = client.post("/office/policies/sla_policy", data={"doc": text, "reason": "试", "expected_version": "2"})
    assert r.status_code == 422 and "保存时限政策未成功。填写的内容不符合要求：" + problems in r.text
    assert "&#34;working_days&#34;: 99" in r.text and 'value="试"' in r.text and 'aria-invalid="true"' in r.text
    assert 'name="expected_version" value="2"' in r.text and len(sent) == 1
    r = client.post("/office/policies/sla_policy", data={"doc": text, "reason": "  ", "expected_version": "2"})
    assert r.status_code == 422 and "请填写修改理由" in r.text and len(sent) == 1  # not sent without a reason


def test_a_stale_sla_edit_is_kept_and_rebased_on_the_version_that_came_first(monkeypatch: pytest.MonkeyPatch) -> None:
    def conflict(body: Any) -> Any:  # another admin saved version 3 meanwhile
        state["version"] = 3
        raise Refused(core.HTTP_STATUS[409], "the policy is at version 3 now (you edited version 2)")

    client, sent, state = sla_editor_with(monkeypatch, conflict)
    r = client.post("/office/policies/sla_policy", data={"doc": '{"max_extensions": 2}', "reason": "两次",
                                                          "expected_version": "2"})
    assert r.status_code == 409 and "the policy is at version 3 now (you edited version 2)" in r.text
    assert "当前生效的是版本 3" in r.text and "将保存为版本 4" in r.text
    assert "&#34;max_extensions&#34;: 2}" in r.text and 'value="两次"' in r.text  # the user's text kept
    assert 'name="expected_version" value="3"' in r.text and sent[0][1]["expected_version"] == 2


def test_the_office_and_leaders_may_read_the_sla_policy_but_only_admins_save_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for role in ("office", "leader"):
        client, sent, _ = sla_editor_with(monkeypatch, lambda body: FakeResponse({"version": 3}), role)
        r = client.get("/office/policies/sla_policy")
        assert r.status_code == 200 and "版本 2" in r.text and "&#34;sign_off&#34;" in r.text, role
        assert "<textarea" not in r.text and "保存新版本须由管理员进行" in r.text, role
        assert ('<a href="/office/policies/sla_policy">时限政策</a>' in r.text) == (role == "leader")  # leader's nav
        r = client.post("/office/policies/sla_policy", data={"doc": "{}", "reason": "x", "expected_version": "2"})
        assert r.status_code == 403 and "时限政策只能由管理员保存" in r.text and sent == [], role
    client, sent, _ = sla_editor_with(monkeypatch, lambda body: FakeResponse({"version": 3}), "unit", unit_id="DP01")
    assert client.get("/office/policies/sla_policy").status_code == 403
    r = client.post("/office/policies/sla_policy", data={"doc": "{}", "reason": "x", "expected_version": "2"})
    assert r.status_code == 403 and "区热线办页面仅供区热线办和管理员使用" in r.text and sent == []


def test_a_request_validation_error_reads_as_one_line_per_field() -> None:
    detail = [{"loc": ["body", "reason"], "msg": "String should have at least 1 character", "type": "x"},
              {"loc": ["body", "based_on"], "msg": "Field required"}]
    assert core.http_detail(detail) == ("body.reason: String should have at least 1 character; "
                                        "body.based_on: Field required")
    assert core.http_detail("policy changed") == "policy changed" and core.HTTP_STATUS[400].name == "INVALID_ARGUMENT"


def test_the_case_page_links_a_deputys_attachments(monkeypatch: pytest.MonkeyPatch) -> None:
    ticket = ticket_pb2.Ticket(ticket_id="RD-1", title="路灯不亮", content="小区路灯不亮", source="deputy",
                               attachments=[case_pb2.Attachment(uri="https://files.example/deputy/1.jpg",
                                                                name="照片.jpg", content_type="image/jpeg")])
    client, _ = office_with(monkeypatch, {
        "GetCase": events_pb2.Case(ticket_id="RD-1", state=events_pb2.CASE_STATE_IN_PROGRESS),
        "GetTicket": ticket, "GetCaseHistory": lifecycle_pb2.CaseHistory()})
    page = client.get("/cases/RD-1")
    assert page.status_code == 200, page.text
    assert '<a href="https://files.example/deputy/1.jpg" target="_blank" rel="noopener noreferrer">照片.jpg</a>' \
        in page.text


def test_the_case_page_renders_the_forms_the_case_api_offers_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workbench decides nothing about who may act (issue #20): it shows a form for each action the case
    API answers with, under the API's label, and none for an action it was not offered."""
    client, fake = office_with(monkeypatch, {
        "GetCase": events_pb2.Case(ticket_id="RD-2", state=events_pb2.CASE_STATE_IN_PROGRESS),
        "GetTicket": ticket_pb2.Ticket(ticket_id="RD-2", title="占道经营"),
        "GetCaseHistory": lifecycle_pb2.CaseHistory(),
        "actions": {"ticket_id": "RD-2", "state": "CASE_STATE_IN_PROGRESS", "actions": [
            {"name": "waive_assist", "label": "免于协办"}, {"name": "decide_park", "label": "挂账审批（API）"},
            {"name": "direct_answer", "label": "直接答复"}]}})
    page = client.get("/cases/RD-2")
    assert page.status_code == 200, page.text
    assert ("supervision", "/cases/RD-2/actions", {}, "") in fake.calls
    assert 'action="/cases/RD-2/waive_assist"' in page.text and '挂账审批（API）' in page.text
    for absent in ("review", "reply", "sign_off", "decide_extension", "direct_answer"):  # not offered: no form
        assert f'action="/cases/RD-2/{absent}"' not in page.text
    fake.answers["actions"] = {"actions": []}
    page = client.get("/cases/RD-2")
    assert "当前状态下您没有可进行的操作" in page.text and 'action="/cases/RD-2/waive_assist"' not in page.text
