"""The workbench's names (services/workbench/names.py) and case lists (day.py): units as their
directory names, the case history in Chinese, list addresses that keep the filters."""

from __future__ import annotations

from hotline.v1 import case_pb2, lifecycle_pb2
from services.workbench.day import Listing
from services.workbench.names import Names

NAMES = Names()


def test_units_are_shown_by_the_name_the_directory_gives() -> None:
    assert NAMES.unit("DP01") == "区市场监管局" and NAMES.full("DP01") == "区市场监督管理局"
    assert NAMES.unit("ST03") == "洪武路街道"
    assert NAMES.unit("XX99") == "XX99" and NAMES.unit("XX99", "外区单位") == "外区单位"  # unknown: what is known
    assert all(u.unit_type == "UNIT_TYPE_STREET" for u in NAMES.streets()) and NAMES.streets()
    assert not any(u.unit_type == "UNIT_TYPE_COMMUNITY" for u in NAMES.handling())


def test_ids_in_sentences_become_names_but_not_inside_other_codes() -> None:
    assert NAMES.humanize("assigned to DP01") == "派给 区市场监管局"
    assert NAMES.humanize("吹哨 ST03 -> DP03, DP06") == "吹哨 洪武路街道 -> 区城管委, 区生态环境局"
    assert NAMES.humanize("工单 CWDP01X 与 DP011") == "工单 CWDP01X 与 DP011"


def test_history_steps_are_chinese_with_names() -> None:
    opened = lifecycle_pb2.CaseHistoryEntry(action="open_case", reason="assigned to DP01",
                                            actor=case_pb2.Actor(role="system"))
    assert NAMES.step(opened) == {"what": "立案派单", "detail": "", "who": "系统", "reason": "派给 区市场监管局"}
    signed = lifecycle_pb2.CaseHistoryEntry(action="sign_off", detail="CaseSignedOff",
                                            actor=case_pb2.Actor(role="unit", unit_id="DP01"))
    assert NAMES.step(signed) == {"what": "签收", "detail": "", "who": "承办单位 区市场监管局", "reason": ""}
    english = lifecycle_pb2.CaseHistoryEntry(action="something_new", detail="a note in English")
    assert NAMES.step(english)["what"] == "处理"  # never the service's English


def test_list_addresses_keep_the_filters_and_flip_the_sort() -> None:
    listing = Listing(total=45, size=20, page=2, params={"q": "电饭煲", "street": "ST03", "sort": "due", "page": 2})
    assert listing.pages == 3
    assert listing.url(page=3) == "/search?q=%E7%94%B5%E9%A5%AD%E7%85%B2&street=ST03&sort=due&page=3"
    assert "desc=1" in listing.sort_url("due") and "page" not in listing.sort_url("due")
    assert "desc" not in listing.sort_url("received") and "sort=received" in listing.sort_url("received")
