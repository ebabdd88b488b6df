"""The workbench's pure logic (no I/O): signed session cookies, countdowns, the case actions the
case API offers (supervision decides which a person may take: GET /cases/{ticket_id}/actions) and
gRPC errors as precise Chinese messages. The workbench imports nothing from the services."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import grpc

from hotline.auth import Principal
from hotline.policy import Role
from hotline.policy import roles as policy_roles
from hotline.v1 import events_pb2

ROLE_LABELS = {
    Role.UNIT: "承办单位", Role.OFFICE: "区热线办", Role.DEPUTY: "人大代表", Role.LIAISON: "人大联络员",
    Role.LEADER: "领导", Role.VIEWER: "查看", Role.ADMIN: "管理员",
}
_S = events_pb2
# The case states as the workbench shows them (display text is the workbench's own; a test keeps the states
# equal to the lifecycle's: tests/unit/test_workbench_display_names.py).
STATE_LABELS = {
    _S.CASE_STATE_AWAITING_SIGN_OFF: "待签收", _S.CASE_STATE_IN_PROGRESS: "办理中",
    _S.CASE_STATE_RETURN_REQUESTED: "退单申请中", _S.CASE_STATE_EXTENSION_REQUESTED: "延期申请中",
    _S.CASE_STATE_PARKED: "挂账", _S.CASE_STATE_REPLIED: "已反馈待审核", _S.CASE_STATE_SENT_BACK: "重办",
    _S.CASE_STATE_REPORTED: "已回传待回访", _S.CASE_STATE_EVALUATED: "已回访待决定", _S.CASE_STATE_ARCHIVED: "已归档",
}


# ---------------------------------------------------------------- session cookie


def sign(data: dict[str, Any], secret: str) -> str:
    """``data`` as a cookie value: base64 JSON and its HMAC-SHA256 (tamper-evident, not secret)."""
    body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def unsign(value: str, secret: str) -> dict[str, Any] | None:
    body, _, mac = value.rpartition(".")
    expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    if not body or not hmac.compare_digest(mac, expected):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------- deadlines


def countdown(due: datetime | None, now: datetime) -> tuple[str, bool]:
    """('剩余 1天3小时', False) or ('超期 2小时5分', True); ('—', False) without a deadline."""
    if due is None:
        return "—", False
    seconds = int((due - now).total_seconds())
    overdue = seconds < 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    text = f"{days}天{hours}小时" if days else f"{hours}小时{minutes}分" if hours else f"{minutes}分"
    return ("超期 " if overdue else "剩余 ") + text, overdue


# ---------------------------------------------------------------- actions


class Action(StrEnum):
    """The case actions by the names the case API answers with (supervision's lifecycle names them); the
    case page has a form for each, keyed by name. Which of them a person may take now is the API's answer."""

    SIGN_OFF = "sign_off"  # 签收
    ASSIST_SIGN_OFF = "assist_sign_off"  # 协办签收
    RECORD_CONTACT = "record_contact"  # 联系诉求人
    REPLY = "reply"  # 办结反馈
    REQUEST_EXTENSION = "request_extension"  # 申请延期
    DECIDE_EXTENSION = "decide_extension"  # 延期审批
    PARK = "park"  # 挂账申请
    DECIDE_PARK = "decide_park"  # 挂账审批 (the office)
    RESUME = "resume"  # 恢复办理
    REPORT_PROGRESS = "report_progress"  # 挂账进展
    REQUEST_RETURN = "request_return"  # 申请退单
    REVIEW = "review"  # 审核
    DECIDE_REDO = "decide_redo"  # 重办或结案
    CONTRIBUTE = "contribute"  # 协办意见
    WAIVE_ASSIST = "waive_assist"  # 免于协办
    DIRECT_ANSWER = "direct_answer"  # 直接答复 (offered with the matching articles, not as a form)


@dataclass(frozen=True)
class Offered:
    """The case API's answer: the actions the signed-in person may take now, and their labels."""

    names: tuple[str, ...]
    labels: Mapping[str, str]

    @classmethod
    def of(cls, answer: Mapping[str, Any]) -> Offered:
        items = [a for a in answer.get("actions", ()) if isinstance(a, Mapping) and a.get("name")]
        return cls(tuple(str(a["name"]) for a in items), {str(a["name"]): str(a.get("label", "")) for a in items})

    @property
    def forms(self) -> list[str]:
        """The actions shown as forms of the case page (直接答复 is offered with the matching articles instead)."""
        return [a for a in self.names if a != Action.DIRECT_ANSWER]

    def label(self, name: str) -> str:
        return self.labels.get(name) or ACTION_LABELS.get(name, name)


ACTION_LABELS: dict[str, str] = {
    Action.SIGN_OFF: "签收", Action.ASSIST_SIGN_OFF: "协办签收", Action.RECORD_CONTACT: "联系诉求人",
    Action.REPLY: "办结反馈", Action.REQUEST_EXTENSION: "申请延期", Action.DECIDE_EXTENSION: "延期审批",
    Action.PARK: "挂账", Action.REPORT_PROGRESS: "挂账进展", Action.REQUEST_RETURN: "申请退单",
    Action.REVIEW: "审核", Action.DECIDE_REDO: "重办或结案", Action.CONTRIBUTE: "提交协办意见",
    Action.WAIVE_ASSIST: "免于协办", Action.DIRECT_ANSWER: "直接答复", Action.DECIDE_PARK: "挂账审批",
    Action.RESUME: "恢复办理",
}  # the workbench's own text, for its messages; the case page shows the API's labels


# ---------------------------------------------------------------- errors

STATUS_TEXT = {
    grpc.StatusCode.INVALID_ARGUMENT: "填写的内容不符合要求",
    grpc.StatusCode.NOT_FOUND: "未找到，或不在您的办理范围内",
    grpc.StatusCode.FAILED_PRECONDITION: "当前状态下不能进行此操作",
    grpc.StatusCode.ALREADY_EXISTS: "已经存在",
    grpc.StatusCode.PERMISSION_DENIED: "您的角色无权进行此操作",
    grpc.StatusCode.UNAUTHENTICATED: "登录已失效，请重新登录",
    grpc.StatusCode.UNAVAILABLE: "服务暂时不可用，请稍后重试",
    grpc.StatusCode.DEADLINE_EXCEEDED: "服务响应超时，请稍后重试",
}
HTTP_STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
               403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
               409: grpc.StatusCode.FAILED_PRECONDITION,
               422: grpc.StatusCode.INVALID_ARGUMENT}
PAGE_STATUS = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.PERMISSION_DENIED: 403,
               grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.INVALID_ARGUMENT: 422,
               grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.ALREADY_EXISTS: 409}


def explain(code: grpc.StatusCode, details: str) -> str:
    """A Chinese sentence for a refused call, with the service's own words as the precise reason."""
    head = STATUS_TEXT.get(code, f"操作失败（{code.name}）")
    return f"{head}：{details}" if details else head


# ---------------------------------------------------------------- the district office's pages

OFFICE_ROLES = frozenset({Role.OFFICE, Role.ADMIN})
SUPERVISION_LEVELS = {0: "未督办", 1: "系统预警", 2: "OA督办", 3: "作风监督", 4: "领导督办"}
WARNING_KINDS = {"burst": "突发激增", "repeat_caller": "重复来电", "repeat_address": "同一地址反复",
                 "mass_incident": "疑似群体性事件", "keyword": "舆情关键词"}
WARNING_LEVELS = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
SUGGESTION_SOURCES = {"list": "主协办清单", "classifier": "分类模型"}


@dataclass(frozen=True)
class EditablePolicy:
    """A versioned policy edited in the workbench, served by its service as hotline/policies.py
    serves every policy (``/policies/<name>``). Who may save is the service's own rule
    (hotline/policy.py ``PUT /policies/<name>``)."""

    name: str  # the policy's name, in the page's address and the service's
    service: str
    title: str
    shipped: str  # the file shipped with the code (its first version)
    viewers: frozenset[Role]  # who may open the page
    effect: str  # what a saved version changes, said in the confirmation

    @property
    def path(self) -> str:
        """GET: the current version; PUT: save a new one; GET <path>/versions: the history."""
        return f"/policies/{self.name}"

    @property
    def editors(self) -> frozenset[Role]:
        return policy_roles(self.service, f"PUT {self.path}") or frozenset()


# Policies edited in the workbench as versions, by name.
EDITABLE_POLICIES = {p.name: p for p in (
    EditablePolicy("warning_rules", "supervision", "预警规则", "services/supervision/data/warning_rules.json",
                   OFFICE_ROLES, "新规则即时生效"),
    EditablePolicy("sla_policy", "supervision", "时限政策", "hotline/data/sla_policy.json",
                   OFFICE_ROLES | {Role.LEADER}, "此后新立案件按新版本计时，已立案件仍按其立案时的版本"),
)}
POLICY_FILES = (
    ("时限政策（签收、联系、办理、延期、退单、派单）", "hotline/data/sla_policy.json"),
    ("预警规则", "services/supervision/data/warning_rules.json"),
    ("考核口径", "hotline/data/kpi_policy.json"),
    ("节假日调整（时限日历）", "hotline/data/calendar_overrides.json"),
    ("分类标签映射", "services/routing/data/label_map.json"),
    ("数据保留期限", "hotline/data/retention.json"),
)
LIMIT_LABELS = {  # hotline.settings.LimitSettings: the limits beyond the SLA policy file (时限政策)
    "redo_working_days": "重办时限（工作日，热线办未给时）",  # 协办时限: the SLA policy's assist_contribution
    "park_report_days": "挂账进展报告周期（天）",
}


def office_page(who: Principal) -> bool:
    """Whether ``who`` may open the district office's pages (the services still decide each call)."""
    return who.role in OFFICE_ROLES


def split_list(text: str) -> list[str]:
    """'DP03, DP06、DP07 DP08' -> ['DP03', 'DP06', 'DP07', 'DP08'] (order kept, no repeats)."""
    for sep in "，、;；\n\t":
        text = text.replace(sep, ",")
    out: list[str] = []
    for part in text.replace(" ", ",").split(","):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out


def by_level(cases: Any) -> dict[int, dict[str, list[Any]]]:
    """Open cases (not archived) by supervision level: {level: {"cases": [...], "overdue": [...]}},
    every level of SUPERVISION_LEVELS present. A case is overdue when ``overdue(case)`` says so."""
    board: dict[int, dict[str, list[Any]]] = {level: {"cases": [], "overdue": []} for level in SUPERVISION_LEVELS}
    for c, late in cases:
        row = board.setdefault(c.supervision_level, {"cases": [], "overdue": []})
        row["cases"].append(c)
        if late:
            row["overdue"].append(c)
    return board


def policy_summary(name: str, path: str, doc: Any) -> dict[str, Any]:
    """A policy file as the read view shows it: title, path, version, description."""
    doc = doc if isinstance(doc, dict) else {}
    note = doc.get("description") or doc.get("note") or doc.get("_comment") or ""
    return {"title": name, "path": path, "version": str(doc.get("version", "")) or "（未标注版本）",
            "note": str(note)}


def json_error(exc: ValueError) -> str:
    """Where a JSON text is broken, in Chinese (line and column, as an editor shows them)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"JSON 格式错误：第 {exc.lineno} 行第 {exc.colno} 列（{exc.msg}）"
    return f"JSON 格式错误：{exc}"


def http_detail(detail: Any) -> str:
    """An HTTP error's ``detail`` as one line: the service's sentence, or each field a request
    validation refused ("body.reason: String should have at least 1 character")."""
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg', '')}" if isinstance(d, dict)
                         else str(d) for d in detail)
    return detail if isinstance(detail, str) else str(detail)
