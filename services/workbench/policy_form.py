"""A versioned policy (时限政策, 预警规则) as a form with one labelled field per value (pure).

The document's leaves become fields named by their path (``defaults.reply.working_days``), labelled
in Chinese where the key is known, grouped by their top-level key; a saved form is the edited
version's document with each field's text put back in the type it had (a number stays a number,
a list of words is written separated by commas). Values that are not of their type are refused
here, field by field; the service's validation then names the fields it refuses
(``defaults.reply: working_days must be an integer 0..60``) and the form marks them. New keys
and structure are the JSON view's (kept for experts)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from services.workbench.core import split_list

PREFIX = "f:"
LABELS = {
    "version": "版本号", "name": "名称", "effective_from": "生效日期", "due_soon_fraction": "临期提醒比例",
    "max_extensions": "最多延期次数", "defaults": "默认时限", "lanes": "特殊通道", "label": "名称",
    "when": "适用条件", "limits": "时限", "dispatch": "派单", "sign_off": "签收", "contact": "首次联系",
    "reply": "办理", "extension": "延期", "extension_decision": "延期审批", "return": "退单",
    "return_decision": "退单审核", "minutes": "分钟", "hours": "小时", "days": "天", "working_days": "工作日",
    "tags_any": "含任一标签", "tags_all": "含全部标签", "categories": "类别", "holiday": "节假日",
    "urgency": "紧急程度", "burst": "突发激增", "repeat": "重复来电", "mass_incident": "疑似群体性事件",
    "keywords": "舆情关键词", "address": "地址规范化", "window_hours": "时间窗（小时）",
    "window_days": "时间窗（天）", "baseline_days": "基线天数", "warmup_days": "预热天数",
    "baseline_floor_per_day": "每日基线下限", "min_count": "最少件数", "p_value": "显著性水平",
    "red_ratio": "红色倍数", "orange_count": "橙色件数", "min_callers": "最少来电人数",
    "red_callers": "红色来电人数", "text_similarity": "文本相似度", "red": "红色", "orange": "橙色",
    "yellow": "黄色", "blue": "蓝色", "placeholders": "视为无地址的写法", "unit_forms": "楼栋写法统一",
    "list_lanes": "清单事项通道", "list_lanes_none": "不属清单事项通道", "tags_none": "不含标签",
    "urgencies": "紧急程度", "enterprise": "企业诉求", "deputy": "人大代表转办", "received_on_rest_day": "休息日受理",
    "case_lanes": "案件通道认定", "park_stops": "挂账期间停止的时限", "park_progress": "挂账进展报告",
    "deputy_callback": "代表未评价时的回访",
}
SKIPPED = {"_comment", "description", "source", "note"}  # explanations: read in the JSON view


@dataclass(frozen=True)
class Field:
    path: str
    label: str
    kind: str  # int | float | bool | text | list
    value: str
    group: str

    @property
    def name(self) -> str:
        return PREFIX + self.path

    @property
    def id(self) -> str:
        return "pf-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.path)


def _label(key: str) -> str:
    return LABELS.get(key, key)


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list) and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
        return "list"
    return None


def fields(doc: Any) -> list[Field]:
    """Every editable leaf of ``doc``, in document order."""
    out: list[Field] = []

    def walk(value: Any, path: list[str], labels: list[str]) -> None:
        kind = _kind(value)
        if kind is not None and path:
            text = "、".join(str(v) for v in value) if kind == "list" else \
                ("1" if value else "") if kind == "bool" else str(value)
            out.append(Field(".".join(path), " · ".join(labels), kind, text, labels[0] if len(labels) > 1 else "基本"))
            return
        if isinstance(value, dict):
            for k, v in value.items():
                if k in SKIPPED:
                    continue
                walk(v, [*path, k], [*labels, _label(k)])
        elif isinstance(value, list):
            for i, v in enumerate(value):
                name = v.get("label") or v.get("name") if isinstance(v, dict) else None
                walk(v, [*path, str(i)], [*labels, str(name or f"第 {i + 1} 项")])

    walk(doc, [], [])
    return out


def groups(doc: Any) -> dict[str, list[Field]]:
    out: dict[str, list[Field]] = {}
    for f in fields(doc):
        out.setdefault(f.group, []).append(f)
    return out


def _set(doc: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def rebuild(doc: Any, form: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """``doc`` with the form's values (``f:<path>`` fields) in their types; and the refusals by path."""
    out = copy.deepcopy(doc)
    errors: dict[str, str] = {}
    for f in fields(doc):
        text = form.get(f.name, "").strip()
        try:
            if f.kind == "bool":
                value: Any = form.get(f.name) == "1"
            elif f.kind == "int":
                value = int(text)
            elif f.kind == "float":
                value = float(text)
            elif f.kind == "list":
                value = split_list(text)
            else:
                value = text
        except ValueError:
            errors[f.path] = "应填写整数" if f.kind == "int" else "应填写数字"
            continue
        _set(out, f.path, value)
    return out, errors


WORDS = [(re.compile(r"must be at least"), "不得小于"), (re.compile(r"must not exceed"), "不得大于"),
         (re.compile(r"must be an integer"), "须为整数"), (re.compile(r"must be a number"), "须为数字"),
         (re.compile(r"is required"), "必须填写"), (re.compile(r"is listed under (\w+) already"), r"已列在 \1 级别中")]


def chinese(why: str) -> str:
    """A service's validation sentence with its usual words in Chinese (the field paths kept)."""
    for pattern, words in WORDS:
        why = pattern.sub(words, why)
    return why


def refused_paths(message: str, doc: Any) -> dict[str, str]:
    """The fields a service's refusal names (``defaults.reply: ...``): each leaf under a named path."""
    out: dict[str, str] = {}
    for part in re.split(r";\s*", message):
        where, sep, why = part.partition(": ")
        where = where.strip().split("。")[-1].split("：")[-1].strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.\[\]]+", where):
            continue
        where = re.sub(r"\[(\d+)\]", r".\1", where).removeprefix("body.").removeprefix("doc.")
        for f in fields(doc):
            if f.path == where or f.path.startswith(where + "."):
                out[f.path] = chinese(why.strip())
    return out
