"""Issue #19: one masking table by role, read by every output."""

from __future__ import annotations

from hotline import masking
from hotline.policy import Role
from hotline.v1 import warnings_pb2

DOC = {"caller": {"name": "张三丰", "phone": "13812345678"}, "address": "幸福路街道幸福小区12栋3单元",
       "content": "请回电 13812345678", "title": "路灯不亮", "nested": [{"caller_phone": "13900001111"}]}


def test_the_table_gives_contact_and_addresses_in_clear_only_to_the_roles_it_names() -> None:
    office = masking.mask_doc(DOC, Role.OFFICE)
    assert office == DOC
    viewer = masking.mask_doc(DOC, Role.VIEWER)
    assert viewer["caller"] == {"name": "张**", "phone": "138****5678"}
    assert viewer["address"] == "幸福路街道幸福小区***" and "13812345678" not in viewer["content"]
    assert viewer["nested"][0]["caller_phone"] == "139****1111" and viewer["title"] == "路灯不亮"
    unit = masking.mask_doc(DOC, Role.UNIT)
    assert unit["address"] == DOC["address"] and unit["caller"]["phone"] == "138****5678"
    assert masking.mask_doc(DOC, Role.UNIT, own=True)["caller"] == DOC["caller"]  # the handling unit's own case
    assert masking.mask_doc(DOC, None)["caller"]["name"] == "张**"  # a file without a reader: masked


def test_warnings_show_a_repeat_callers_key_and_a_repeated_house_number_only_to_whom_the_table_allows() -> None:
    caller = warnings_pb2.EarlyWarning(kind="repeat_caller", subject="a" * 32, explanation="同一来电人7天内第3次")
    place = warnings_pb2.EarlyWarning(kind="repeat_address", subject="幸福路12号",
                                      explanation="同一地址（幸福路12号）7天内第3次反映诉求")
    assert masking.mask_warning(caller, Role.OFFICE).subject == "a" * 32
    assert masking.mask_warning(caller, Role.LEADER).subject == ""
    shown = masking.mask_warning(place, Role.LEADER)
    assert shown.subject == "幸福路***" and "12号" not in shown.explanation
    assert place.subject == "幸福路12号"  # the stored warning is not changed
    assert masking.mask_warning(place, Role.OFFICE).explanation == place.explanation


def test_audit_snapshots_keep_no_contact() -> None:
    assert masking.strip_contact(DOC) == {"address": DOC["address"], "content": DOC["content"],
                                          "title": "路灯不亮", "nested": [{}]}
