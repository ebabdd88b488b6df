"""The shipped responsibility list and directory are sound and at the district's size."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from hotline.directory import DIRECTORY_FILE
from hotline.v1 import events_pb2, ticket_pb2
from services.routing.core import DATA_DIR, MANUAL_UNIT, Directory, Router
from services.routing.responsibility import PLACE_RULES, Listing, load_listing, validate

CATEGORIES = ("消费维权", "城市管理", "水电气热", "社会保障与就业", "文旅与政务服务", "物业管理", "停车管理",
              "环境保护", "教育卫生", "交通出行")
LANES = {"", "water_power_gas_heat", "emergency", "complex", "tourism"}  # what the SLA policy resolves
# the gazetteer before the communities came: tests and the simulator's history use these names
EARLIER_PLACES = {
    "中华门街道": "ST01", "中华路": "ST01", "雨花路": "ST01", "长干里": "ST01", "来凤街": "ST01", "五老村街道": "ST02",
    "太平南路": "ST02", "户部街": "ST02", "文昌巷": "ST02", "五老村": "ST02", "洪武路街道": "ST03", "洪武路": "ST03",
    "常府街": "ST03", "长白街": "ST03", "户部街北段": "ST03", "大光路街道": "ST04", "大光路": "ST04",
    "小光华路": "ST04", "标营": "ST04", "石门坎": "ST04", "瑞金路街道": "ST05", "瑞金路": "ST05", "龙蟠中路": "ST05",
    "解放路": "ST05", "瑞金北村": "ST05", "月牙湖街道": "ST06", "月牙湖": "ST06", "苜蓿园大街": "ST06",
    "友谊河路": "ST06", "钟灵街": "ST06", "光华路街道": "ST07", "光华路": "ST07", "海福巷": "ST07", "石杨路": "ST07",
    "卡子门大街": "ST07", "朝天宫街道": "ST08", "建邺路": "ST08", "王府大街": "ST08", "莫愁路": "ST08",
    "堂子街": "ST08", "夫子庙街道": "ST09", "贡院街": "ST09", "平江府路": "ST09", "瞻园路": "ST09", "琵琶巷": "ST09",
    "双塘街道": "ST10", "集庆路": "ST10", "饮马巷": "ST10", "钓鱼台": "ST10", "鸣羊街": "ST10", "红花街道": "ST11",
    "应天大街": "ST11", "宏运大道": "ST11", "机场路": "ST11", "红花东路": "ST11", "秦虹街道": "ST12", "秦虹路": "ST12",
    "石门坎东路": "ST12", "剪子巷": "ST12", "秦虹小区": "ST12",
}


@pytest.fixture(scope="module")
def listing() -> Listing:
    return load_listing(DATA_DIR / "responsibilities.json")


@pytest.fixture(scope="module")
def directory_doc() -> dict:
    return json.loads((DIRECTORY_FILE).read_text("utf-8"))


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory.from_file(DIRECTORY_FILE)


def test_the_list_has_ten_categories_and_153_items(listing: Listing) -> None:
    assert listing.categories == CATEGORIES
    assert len(listing.items) == 153
    per_category = Counter(r.category for r in listing.items)
    assert set(per_category) == set(CATEGORIES)
    assert all(n >= 10 for n in per_category.values()), per_category
    assert len({r.rule_id for r in listing.items}) == 153
    assert len({(r.category, r.item) for r in listing.items}) == 153


def test_every_item_is_sound(listing: Listing, directory: Directory) -> None:
    assert validate(listing, directory.units) == []
    for rule in listing.items:
        assert rule.keywords and all(k.strip() == k and k for k in rule.keywords), rule.rule_id
        assert len(set(rule.keywords)) == len(rule.keywords), rule.rule_id
        assert rule.lane in LANES, rule.rule_id
        for unit in (rule.primary, *rule.assisting):
            assert unit in PLACE_RULES or unit in directory.units, (rule.rule_id, unit)
        assert rule.primary != MANUAL_UNIT, "the hotline office is no handling unit of an item"
    assert set(listing.category_aliases.values()) <= set(CATEGORIES)
    lanes = Counter(r.lane for r in listing.items)
    assert lanes["water_power_gas_heat"] >= 10 and lanes["emergency"] >= 3  # 水电气热 and its emergencies
    assert any(r.primary == "@community" for r in listing.items)


def test_the_directory_has_the_districts_units(directory_doc: dict, directory: Directory) -> None:
    units = directory_doc["units"]
    by_type = Counter(u["unit_type"] for u in units if u["unit_id"] != MANUAL_UNIT)
    assert by_type == {"UNIT_TYPE_DEPARTMENT": 50, "UNIT_TYPE_STREET": 12, "UNIT_TYPE_SOE": 9,
                       "UNIT_TYPE_MANAGEMENT_COMMITTEE": 4, "UNIT_TYPE_COMMUNITY": 104}
    assert directory.units[MANUAL_UNIT].name == "区12345热线办"
    assert len({u["unit_id"] for u in units}) == len(units)
    assert len({u["name"] for u in units}) == len(units)
    for u in units:
        events_pb2.UnitType.Value(u["unit_type"])  # a proto UnitType
    streets = {u["unit_id"] for u in units if u["unit_type"] == "UNIT_TYPE_STREET"}
    communities = [u for u in units if u["unit_type"] == "UNIT_TYPE_COMMUNITY"]
    assert all(c.get("parent") in streets for c in communities)
    assert {c["parent"] for c in communities} == streets  # every street has communities
    assert directory.parents == {c["unit_id"]: c["parent"] for c in communities}


def test_every_gazetteer_name_resolves_to_its_street_and_community(directory_doc: dict, directory: Directory) -> None:
    for entry in directory_doc["gazetteer"]:
        for name in (entry["name"], *entry.get("aliases", [])):
            location = directory.locate(ticket_pb2.Ticket(address=f"{name}12号"))
            assert location.street == entry["street"], name
            assert location.community == (entry.get("community") or None), name
    for unit in directory_doc["units"]:
        if unit["unit_type"] == "UNIT_TYPE_COMMUNITY":
            location = directory.locate(ticket_pb2.Ticket(address=unit["name"]))
            assert (location.street, location.community) == (unit["parent"], unit["unit_id"])
        elif unit["unit_type"] == "UNIT_TYPE_STREET":
            assert directory.locate(ticket_pb2.Ticket(street=unit["name"])).street == unit["unit_id"]


def test_earlier_place_names_still_resolve(directory: Directory) -> None:
    for name, street in EARLIER_PLACES.items():
        assert directory.street_of(ticket_pb2.Ticket(address=name)) == street, name


def test_the_shipped_files_load_into_a_router(listing: Listing) -> None:
    router = Router.from_files()
    assert len(router.rules) == 153
    assert router.list_version == listing.list_version == f"1-{listing.content_hash[:12]}"
