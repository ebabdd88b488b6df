"""Versioned changes to the first-responsible list, and its CSV / XLSX import and export."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.directory import DIRECTORY_FILE
from services.routing.core import DATA_DIR
from services.routing.responsibility import (
    Change,
    ListChangeError,
    Listing,
    Rule,
    apply_change,
    from_csv,
    from_rows,
    from_xlsx,
    load_listing,
    seed,
    to_csv,
    to_xlsx,
)

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
UNITS = {u["unit_id"] for u in json.loads((DIRECTORY_FILE).read_text("utf-8"))["units"]}
NAMES = {u["unit_id"]: u["name"] for u in json.loads((DIRECTORY_FILE).read_text("utf-8"))["units"]}


@pytest.fixture(scope="module")
def listing() -> Listing:
    return load_listing(DATA_DIR / "responsibilities.json")


def new_item(**fields: object) -> Rule:
    base = Rule("停车管理-11", "停车管理", "校园周边停车", ("校门口停车", "接送孩子停车"), "@street", ("DP05", "DP07"))
    return replace(base, **fields)  # type: ignore[arg-type]


def test_adding_an_item_makes_a_new_version_with_its_log_entry(listing: Listing) -> None:
    item = new_item()
    change = Change("upsert", "联席研判 2026-11: 校门口停车由街道牵头", item=item)
    new, entry = apply_change(listing, change, "office:li", AT, UNITS)
    assert new.version == listing.version + 1 and len(new.items) == len(listing.items) + 1
    assert new.list_version != listing.list_version and new.list_version.startswith("2-")
    assert (entry.version, entry.list_version, entry.previous_version) == (2, new.list_version, listing.list_version)
    assert (entry.actor, entry.at, entry.op, entry.rule_id) == ("office:li", AT, "upsert", "停车管理-11")
    assert entry.reason.startswith("联席研判") and entry.before is None and entry.after == item.to_doc()
    # placed after its category's last item: the category's first item stays its default
    parking = [r.rule_id for r in new.items if r.category == "停车管理"]
    assert parking[0] == "停车管理-01" and parking[-1] == "停车管理-11"
    index = [r.rule_id for r in new.items].index("停车管理-11")
    assert new.items[index - 1].rule_id == "停车管理-10" and new.items[index + 1].category == "环境保护"
    assert listing.get("停车管理-11") is None  # the old version is untouched


def test_changing_and_removing_items_log_before_and_after(listing: Listing) -> None:
    old = listing.items[0]
    changed = replace(old, keywords=(*old.keywords, "美容卡"))
    v2, e2 = apply_change(listing, Change("upsert", "市民常说美容卡", item=changed), "admin:wang", AT, UNITS)
    assert v2.items[0] == changed and len(v2.items) == len(listing.items)
    assert (e2.before, e2.after) == (old.to_doc(), changed.to_doc())
    v3, e3 = apply_change(v2, Change("remove", "并入消费维权-02", rule_id="消费维权-06"), "admin:wang", AT, UNITS)
    assert v3.version == 3 and v3.get("消费维权-06") is None and len(v3.items) == len(listing.items) - 1
    assert (e3.op, e3.rule_id, e3.before, e3.after, e3.previous_version) == (
        "remove", "消费维权-06", listing.get("消费维权-06").to_doc(), None, v2.list_version)  # type: ignore[union-attr]


def test_an_item_is_normalised_before_it_is_stored(listing: Listing) -> None:
    messy = new_item(item=" 校园周边停车 ", keywords=(" 校门口停车", "校门口停车", ""), assisting=("DP05", "DP05"))
    new, _ = apply_change(listing, Change("upsert", "整理", item=messy), "office:li", AT, UNITS)
    assert new.get("停车管理-11") == new_item(keywords=("校门口停车",), assisting=("DP05",))


@pytest.mark.parametrize(("change", "actor", "message"), [
    (Change("upsert", "r", item=new_item(category="其他")), "a", "category '其他' is not one of the list's 10"),
    (Change("upsert", "r", item=new_item(keywords=(" ",))), "a", "keywords are empty"),
    (Change("upsert", "r", item=new_item(primary="DP99")), "a", "primary unit 'DP99' is not in the directory"),
    (Change("upsert", "r", item=new_item(assisting=("XX",))), "a", "assisting unit 'XX' is not in the directory"),
    (Change("upsert", "r", item=new_item(primary="DP05")), "a", "primary unit DP05 also assists"),
    (Change("upsert", "r", item=new_item(item="")), "a", "item name is empty"),
    (Change("upsert", "r", item=new_item(rule_id=" ")), "a", "rule_id is empty"),
    (Change("upsert", " ", item=new_item()), "a", "needs a reason"),
    (Change("upsert", "r", item=new_item()), "", "needs an actor"),
    (Change("upsert", "r"), "a", "upsert needs an item"),
    (Change("remove", "r", rule_id="nope"), "a", "no item nope"),
])
def test_invalid_changes_are_refused(listing: Listing, change: Change, actor: str, message: str) -> None:
    with pytest.raises(ListChangeError, match=message) as refused:
        apply_change(listing, change, actor, AT, UNITS)
    assert refused.value.code == "invalid_argument"  # 422 / INVALID_ARGUMENT through the command kit


def test_a_version_is_a_state_the_command_kit_can_audit(listing: Listing) -> None:
    import bson

    from hotline.commands import as_doc

    version = apply_change(listing, Change("remove", "并入", rule_id="消费维权-06"), "office:li", AT, UNITS)
    doc = as_doc(version)
    assert doc is not None and doc["entry"]["reason"] == "并入" and len(doc["listing"]["items"]) == 152
    assert bson.decode(bson.encode(doc))["entry"]["before"]["rule_id"] == "消费维权-06"  # storable as it is


def test_a_change_that_changes_nothing_is_refused(listing: Listing) -> None:
    with pytest.raises(ListChangeError, match="unchanged"):
        apply_change(listing, Change("upsert", "again", item=listing.items[5]), "a", AT, UNITS)
    with pytest.raises(ListChangeError, match="is the current list"):
        apply_change(listing, Change("replace", "same sheet", items=listing.items), "a", AT, UNITS)


def test_the_last_item_of_a_category_cannot_go(listing: Listing) -> None:
    current = listing
    traffic = [r.rule_id for r in listing.items if r.category == "交通出行"]
    for rule_id in traffic[:-1]:
        current, _ = apply_change(current, Change("remove", "test", rule_id=rule_id), "a", AT, UNITS)
    with pytest.raises(ListChangeError, match="category 交通出行 has no item left"):
        apply_change(current, Change("remove", "test", rule_id=traffic[-1]), "a", AT, UNITS)


def test_an_imported_sheet_replaces_the_items_and_logs_the_difference(listing: Listing) -> None:
    items = [r for r in listing.items if r.rule_id != "消费维权-18"]
    items[0] = replace(items[0], assisting=("DP12",))
    items.append(new_item())
    new, entry = apply_change(listing, Change("replace", "2027年清单", items=tuple(items)), "admin:wang", AT, UNITS)
    assert new.version == 2 and new.items == tuple(items)
    assert (entry.op, entry.added, entry.removed, entry.changed) == (
        "replace", ("停车管理-11",), ("消费维权-18",), ("消费维权-01",))
    broken = [*items, replace(items[1], rule_id="dup", primary="DP77")]
    with pytest.raises(ListChangeError, match="DP77"):
        apply_change(listing, Change("replace", "bad sheet", items=tuple(broken)), "a", AT, UNITS)


def test_the_content_hash_ignores_the_version_but_not_the_content(listing: Listing) -> None:
    assert replace(listing, version=7).content_hash == listing.content_hash
    assert replace(listing, items=listing.items[1:]).content_hash != listing.content_hash
    assert replace(listing, category_aliases={}).content_hash != listing.content_hash
    assert Listing.from_doc(listing.to_doc()) == listing
    first = seed(listing, "system:routing", AT)
    assert (first.entry.op, first.entry.previous_version) == ("seed", "")
    assert first.entry.list_version == listing.list_version


def test_csv_round_trip_of_the_shipped_list(listing: Listing) -> None:
    data = to_csv(listing, NAMES)
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheet programs read UTF-8 right
    text = data.decode("utf-8-sig")
    assert "预付卡、充值卡" in text and "区市场监督管理局" in text  # readable: 、-joined, unit names beside ids
    assert from_csv(data) == listing.items
    assert from_csv(to_csv(listing)) == listing.items


def test_xlsx_round_trip_of_the_shipped_list(listing: Listing) -> None:
    from openpyxl import load_workbook

    data = to_xlsx(listing, NAMES)
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet.title == "首接负责主协办清单" and sheet.max_row == 154
    assert sheet["H2"].value == "区市场监督管理局"  # primary_name, for reading
    assert from_xlsx(data) == listing.items
    assert from_xlsx(to_xlsx(listing)) == listing.items


def test_sheets_with_chinese_headers_and_other_separators_import() -> None:
    table = [
        ["事项编号", "类别", "事项", "关键词", "主办单位", "协办单位", "时限类别"],
        ["停车管理-11", "停车管理", "校园周边停车", "校门口停车，接送孩子停车", "@street", "DP05; DP07", ""],
        [None, None, None, None, None, None, None],  # blank rows are skipped
        ["水电气热-15", "水电气热", "热水", "热水 不热", "SE09", "", "water_power_gas_heat"],
    ]
    assert from_rows(table) == (new_item(), Rule("水电气热-15", "水电气热", "热水", ("热水", "不热"), "SE09", (),
                                                 "water_power_gas_heat"))
    with pytest.raises(ListChangeError, match="lacks columns keywords, primary"):
        from_rows([["rule_id", "category", "item", "assisting"]])
    with pytest.raises(ListChangeError, match="row 2: rule_id is empty"):
        from_rows([["rule_id", "category", "item", "keywords", "primary", "assisting"], ["", "c", "i", "k", "p", ""]])
    with pytest.raises(ListChangeError, match="not UTF-8"):
        from_csv("事项".encode("gbk"))
    with pytest.raises(ListChangeError, match="not an XLSX workbook"):
        from_xlsx(b"PK not really")


WORDS = st.text(alphabet=st.characters(categories=("Lo", "Nd", "Lu")), min_size=1, max_size=6)
RULES = st.builds(
    Rule,
    rule_id=WORDS, category=st.sampled_from(["消费维权", "停车管理"]), item=WORDS,
    keywords=st.lists(WORDS, min_size=1, max_size=5, unique=True).map(tuple),
    primary=st.sampled_from(["DP01", "@street", "@community"]),
    assisting=st.lists(st.sampled_from(["DP05", "SE08", "@street"]), max_size=3, unique=True).map(tuple),
    lane=st.sampled_from(["", "emergency", "complex"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(RULES, min_size=1, max_size=8, unique_by=lambda r: r.rule_id))
def test_any_list_survives_csv_and_xlsx(rules: list[Rule]) -> None:
    listing = Listing(1, ("消费维权", "停车管理"), tuple(rules))
    assert from_csv(to_csv(listing)) == listing.items
    assert from_xlsx(to_xlsx(listing)) == listing.items
