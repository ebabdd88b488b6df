"""Names for ids (名称): units, streets and communities from the district's directory
(hotline/directory.py's file), and the case history's steps in Chinese. Pure: the pages show a
unit as its name with the id only as secondary text, and never a bare id the directory knows."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.directory import DIRECTORY_FILE

UNIT_TYPES = {"UNIT_TYPE_DEPARTMENT": "职能部门", "UNIT_TYPE_STREET": "街道", "UNIT_TYPE_COMMUNITY": "社区",
              "UNIT_TYPE_SOE": "国有企业", "UNIT_TYPE_MUNICIPAL": "市属单位", "UNIT_TYPE_HOTLINE": "热线办"}

# The case history's steps (案件流转记录): audit actions and event names, in Chinese.
STEPS = {
    "open_case": "立案派单", "sign_off": "签收", "assist_sign_off": "协办签收", "record_contact": "联系诉求人",
    "reply": "办结反馈", "request_extension": "申请延期", "decide_extension": "延期审批", "park": "挂账",
    "report_progress": "报送挂账进展", "request_return": "申请退单", "refuse_return": "退单被驳回",
    "redispatch": "重新派单", "review": "审核", "evaluate": "回访评价", "decide_redo": "重办或结案",
    "contribute": "提交协办意见", "waive_assist": "免于协办", "close_with_parent": "随主单结案",
    "close_merged": "随主单结案",
    "raise_supervision": "督办", "close_supervision": "督办办结", "record_visit": "明察暗访",
    "set_joint_supervision": "联合督办", "schedule_meeting": "有请诉求人到场", "record_meeting": "到场会商结果",
    "merge": "并单", "merge_tickets": "并单", "blow_whistle": "吹哨", "report_in": "报到", "close_whistle": "吹哨办结",
    "system_supervision": "系统预警督办", "closed": "结案", "opened": "立案",
}
ROLES = {"unit": "承办单位", "office": "区热线办", "admin": "管理员", "leader": "领导", "deputy": "人大代表",
         "liaison": "人大联络员", "viewer": "查看", "system": "系统", "city": "市平台"}
PHRASES = [  # English sentences of the services -> Chinese (applied to history reasons and details)
    (re.compile(r"^assigned to (.+)$"), r"派给 \1"),
    (re.compile(r"^dispatch round already opened$"), "该轮派单已立案"),
    (re.compile(r"^return approved: the re-dispatch will close the case$"), "退单已同意，改派后本案结束"),
    (re.compile(r"\(late\)"), "（迟到）"),
    (re.compile(r"^closed, resolved$"), "已办结，问题已解决"),
    (re.compile(r"^closed, unresolved$"), "已办结，问题未解决"),
]
_EVENT = re.compile(r"^(?:hotline\.v1\.)?[A-Z][A-Za-z]+(?:; (?:hotline\.v1\.)?[A-Z][A-Za-z]+)*$")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Unit:
    unit_id: str
    name: str  # the short name people use (区市场监管局)
    full_name: str
    unit_type: str
    parent: str = ""


class Names:
    def __init__(self, path: Path = DIRECTORY_FILE) -> None:
        doc = json.loads(path.read_text("utf-8"))
        self.units = {u["unit_id"]: Unit(u["unit_id"], u.get("short_name") or u["name"], u["name"], u["unit_type"],
                                         u.get("parent", "")) for u in doc["units"]}
        ids = sorted(self.units, key=len, reverse=True)
        self._ids = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, ids)) + r")(?![A-Za-z0-9])") \
            if ids else None

    def unit(self, unit_id: str, fallback: str = "") -> str:
        """The unit's name; the name the service gave, or the id, when the directory does not know it."""
        known = self.units.get(unit_id)
        return known.name if known else (fallback or unit_id or "—")

    def full(self, unit_id: str) -> str:
        known = self.units.get(unit_id)
        return known.full_name if known else unit_id

    def of_type(self, *types: str) -> list[Unit]:
        return sorted((u for u in self.units.values() if u.unit_type in types), key=lambda u: u.unit_id)

    def streets(self) -> list[Unit]:
        return self.of_type("UNIT_TYPE_STREET")

    def handling(self) -> list[Unit]:
        """Units that handle cases (every unit but communities, which their street dispatches)."""
        return sorted((u for u in self.units.values() if u.unit_type != "UNIT_TYPE_COMMUNITY"),
                      key=lambda u: u.unit_id)

    def humanize(self, text: str) -> str:
        """A service's sentence with unit ids as names and its known English phrases in Chinese."""
        text = str(text or "")
        for pattern, chinese in PHRASES:
            text = pattern.sub(chinese, text)
        if self._ids is not None:
            text = self._ids.sub(lambda m: self.unit(m.group(1)), text)
        return text

    def step(self, entry: Any) -> dict[str, str]:
        """A case history entry as the page shows it: what happened, who, why (all Chinese)."""
        action = str(getattr(entry, "action", "") or "")
        detail = str(getattr(entry, "detail", "") or "")
        what = STEPS.get(action, "")
        shown = self.humanize(detail) if detail and not _EVENT.match(detail) else ""
        if shown and not _CJK.search(shown):
            shown = ""  # an English note of the service, not for the page
        actor = getattr(entry, "actor", None)
        role = str(getattr(actor, "role", "") or "")
        unit_id = str(getattr(actor, "unit_id", "") or "")
        who = ROLES.get(role, role or "系统")
        if unit_id:
            who = f"{who} {self.unit(unit_id)}"
        reason = self.humanize(str(getattr(entry, "reason", "") or ""))
        if what and shown.startswith(what):
            what, shown = shown, ""
        return {"what": what or shown or "处理", "detail": shown if what else "", "who": who, "reason": reason}
