"""A versioned policy as a form per field (services/workbench/policy_form.py): every value a
labelled field, the saved form back in the document's types, refusals marked on their fields."""

from __future__ import annotations

import json

from hotline.settings import REPO_ROOT
from services.workbench.policy_form import fields, groups, rebuild, refused_paths

SLA = json.loads((REPO_ROOT / "hotline/data/sla_policy.json").read_text("utf-8"))
RULES = json.loads((REPO_ROOT / "services/supervision/data/warning_rules.json").read_text("utf-8"))


def test_every_value_is_a_labelled_field_and_explanations_are_left_to_the_json_view() -> None:
    by_path = {f.path: f for f in fields(SLA)}
    assert by_path["defaults.reply.working_days"].label == "默认时限 · 办理 · 工作日"
    assert by_path["defaults.reply.working_days"].kind == "int"
    assert by_path["due_soon_fraction"].kind == "float"
    assert by_path["lanes.0.when.0.tags_any"].label == "特殊通道 · 疑难复杂件 · 适用条件 · 第 1 项 · 含任一标签"
    assert by_path["lanes.0.when.0.tags_any"].value == "复杂、疑难复杂"
    assert by_path["lanes.0.when.1.list_lanes"].label == "特殊通道 · 疑难复杂件 · 适用条件 · 第 2 项 · 清单事项通道"
    assert "_comment" not in by_path and "source" not in by_path
    assert set(groups(RULES)) >= {"基本", "突发激增", "重复来电", "舆情关键词"}


def test_a_saved_form_keeps_the_types_and_refuses_what_is_not_a_number() -> None:
    form = {f.name: f.value for f in fields(SLA)}
    form["f:defaults.reply.working_days"] = "7"
    form["f:lanes.0.when.0.tags_any"] = "复杂，疑难"
    doc, wrong = rebuild(SLA, form)
    assert wrong == {} and doc["defaults"]["reply"] == {"working_days": 7}
    assert doc["lanes"][0]["when"][0]["tags_any"] == ["复杂", "疑难"] and doc["_comment"] == SLA["_comment"]
    assert SLA["defaults"]["reply"] == {"working_days": 5}  # the original is not changed
    form["f:defaults.reply.working_days"] = "五"
    form["f:due_soon_fraction"] = "x"
    _, wrong = rebuild(SLA, form)
    assert wrong == {"defaults.reply.working_days": "应填写整数", "due_soon_fraction": "应填写数字"}


def test_the_services_refusal_is_marked_on_the_fields_it_names() -> None:
    marked = refused_paths("填写的内容不符合要求：repeat.orange_count: must be at least repeat.min_count (3)", RULES)
    assert marked == {"repeat.orange_count": "不得小于 repeat.min_count (3)"}
    marked = refused_paths("defaults.reply: working_days must be an integer 0..60", SLA)
    assert set(marked) == {"defaults.reply.working_days"}
    assert refused_paths("服务暂时不可用", SLA) == {}
