from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hotline.v1 import events_pb2, ticket_pb2
from services.routing.core import Directory, Location, Router, Rule


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_files()


@dataclass
class FakePrediction:
    label: str
    confidence: float
    abstained: bool = False
    model_version: str = "m1"


def ticket(**fields: str) -> ticket_pb2.Ticket:
    return ticket_pb2.Ticket(ticket_id="T1", **fields)


def test_street_matter_goes_to_the_street_of_the_address(router: Router) -> None:
    d = router.decide(ticket(title="物业不作为", content="小区物业长期不打扫楼道", address="瑞金北村12栋"))
    assert (d.primary.name, d.method, d.category) == ("瑞金路街道", "keyword", "物业管理")
    assert [u.name for u in d.assisting] == ["区房产管理局", "瑞金北村社区"]  # the community of the compound assists


def test_city_category_wins_and_keywords_pick_the_item(router: Router) -> None:
    d = router.decide(ticket(category="消费维权", content="健身房预付卡老板跑路", address="中华路1号"))
    assert (d.primary.name, d.method, d.rule_id) == ("区市场监督管理局", "city_category", "消费维权-01")


def test_longest_place_name_wins(router: Router) -> None:
    assert router.directory.street_of(ticket(address="石门坎东路3号")) == "ST12"  # 秦虹街道, not 大光路's 石门坎


def test_classifier_is_used_only_without_category_or_keywords(router: Router) -> None:
    plain = ticket(title="反映问题", content="希望有关部门尽快处理", address="中华路5号")
    assert router.needs_classifier(plain)
    d = router.decide(plain, FakePrediction("劳动和社会保障", 0.93))
    assert (d.method, d.category, d.model_version) == ("classifier", "社会保障与就业", "m1")
    assert d.classifier_label == "劳动和社会保障"
    abstained = router.decide(plain, FakePrediction("劳动和社会保障", 0.3, abstained=True))
    assert (abstained.method, abstained.primary.name) == ("street", "中华门街道")
    assert (abstained.classifier_label, abstained.model_version) == ("劳动和社会保障", "m1")  # asked, not followed


def test_a_confident_classifier_outranks_a_single_keyword(router: Router) -> None:
    weak = ticket(title="反映收费问题", content="收费太贵不合理", address="中华路5号")  # 收费: one keyword
    assert router.needs_classifier(weak)
    assert router.decide(weak).category == "停车管理"  # the first item 收费 names
    d = router.decide(weak, FakePrediction("教育文体", 0.97))
    assert (d.method, d.category, d.rule_id) == ("classifier", "教育卫生", "教育卫生-06")  # 教育收费
    assert d.primary.name == "区教育委员会"
    strong = ticket(content="小区停车位收费太贵，车位被占", address="中华路5号")  # three 停车 keywords
    assert not router.needs_classifier(strong)
    assert router.decide(strong, FakePrediction("教育文体", 0.97)).method == "keyword"


def test_routing_loads_a_trained_model_and_records_its_version(tmp_path: Path) -> None:
    from hotline.settings import Settings
    from services.routing.classifier.training import TrainConfig, train
    from services.routing.main import load_classifier
    from tests.unit.test_classifier import COLUMNS, synth_rows, write_csv

    data = write_csv(tmp_path / "history.csv", synth_rows(40, seed=5))
    train(data, COLUMNS[:2], COLUMNS[2], tmp_path / "model", config=TrainConfig(cv_folds=0, svc_c_grid=()))
    assert load_classifier(Settings(model_dir=tmp_path / "nothing-here")) is None
    classify = load_classifier(Settings(model_dir=tmp_path / "model"))
    assert classify is not None
    router = Router.from_files()
    topical = "学费，招生，课程，校车，补课，学费，招生，课程"  # topic words that are no list keyword
    t = ticket(title="招生课程问题", content=topical, address="中华路5号")
    prediction = classify([t.title + "\n" + t.content])[0]
    d = router.decide(t, prediction)
    assert prediction.label == "教育文体" and not prediction.abstained
    assert (d.method, d.category, d.model_version) == ("classifier", "教育卫生", prediction.model_version)
    assert d.model_version


def test_nothing_known_goes_to_manual_dispatch(router: Router) -> None:
    d = router.decide(ticket(title="反映问题", content="希望尽快处理"))
    assert (d.method, d.primary.unit_id) == ("manual", "HOTLINE")


def test_street_rule_without_known_street_falls_back_to_a_department(router: Router) -> None:
    d = router.decide(ticket(content="小区停车位被占用收费不合理", address="不知道哪里"))
    assert d.primary.unit_type == events_pb2.UNIT_TYPE_DEPARTMENT
    assert d.primary.unit_id not in [u.unit_id for u in d.assisting]


def test_rules_naming_unknown_units_are_refused() -> None:
    directory = Directory([{"unit_id": "A", "name": "a", "unit_type": "UNIT_TYPE_DEPARTMENT"}], [])
    with pytest.raises(ValueError, match="unknown unit B"):
        Router(directory, [Rule("r1", "c", "i", ("k",), "B", ())], {})


def test_community_item_goes_to_the_community_of_the_compound(router: Router) -> None:
    d = router.decide(ticket(title="开居住证明", content="需要社区开居住证明办理入学", address="瑞金北村5栋2单元"))
    assert (d.rule_id, d.method) == ("社会保障与就业-17", "keyword")
    assert (d.primary.name, d.primary.unit_type) == ("瑞金北村社区", events_pb2.UNIT_TYPE_COMMUNITY)
    assert [u.name for u in d.assisting] == ["瑞金路街道"]


def test_community_item_falls_back_to_the_street_then_to_manual(router: Router) -> None:
    # 瑞金路 runs through several communities: the street handles it
    on_a_long_road = router.decide(ticket(content="需要开居住证明", address="瑞金路100号"))
    assert (on_a_long_road.primary.name, on_a_long_road.assisting) == ("瑞金路街道", [])
    nowhere = router.decide(ticket(content="需要开居住证明", address="来电人未提供地址"))
    assert (nowhere.method, nowhere.primary.unit_id, nowhere.rule_id) == ("manual", "HOTLINE", "社会保障与就业-17")


def test_community_of_takes_the_longest_names_and_keeps_to_the_street(router: Router) -> None:
    directory = router.directory
    assert directory.community_of(ticket(address="朝天宫街道建邺路1号")) is None  # 朝天宫 inside 朝天宫街道 is no place
    assert directory.community_of(ticket(address="朝天宫街道王府园小区3栋")) == "CM0801"
    assert directory.community_of(ticket(address="龙蟠中路8号瑞北小区")) == "CM0501"  # an alias (简称)
    assert directory.community_of(ticket(address="石门坎东路3号")) is None  # the road, not 大光路's 石门坎社区
    # the city's street field names one street, the address a compound of another: the street field wins
    conflicting = ticket(street="秦虹街道", address="瑞金北村5栋")
    assert (directory.street_of(conflicting), directory.community_of(conflicting)) == ("ST12", None)


def test_street_item_has_the_community_assist(router: Router) -> None:
    d = router.decide(ticket(content="业委会换届迟迟不启动,业主大会开不起来", address="秦虹小区8栋"))
    assert (d.rule_id, d.primary.name) == ("物业管理-05", "秦虹街道")
    assert [u.name for u in d.assisting] == ["区房产管理局", "秦虹社区"]


def test_city_category_and_keywords_pick_the_emergency_item(router: Router) -> None:
    d = router.decide(ticket(category="水电气热", content="楼道里燃气味很重,怀疑漏气", address="剪子巷3号"))
    assert (d.method, d.rule_id, d.primary.name) == ("city_category", "水电气热-04", "区燃气有限公司")
    assert router.rules[[r.rule_id for r in router.rules].index(d.rule_id)].lane == "emergency"
    assert [u.name for u in d.assisting] == ["区应急管理局", "区消防救援大队", "秦虹街道"]
    plain = router.decide(ticket(category="水电气热", content="反映问题", address="剪子巷3号"))
    assert plain.rule_id == "水电气热-01"  # no keyword: the category's first item


def test_the_more_specific_keywords_win_a_tie(router: Router) -> None:
    d = router.decide(ticket(title="电梯困人", content="小区电梯困人,物业联系不上", address="月安花园2栋"))
    assert d.rule_id == "物业管理-08"  # 电梯困人 + 困人 over 物业服务 and 电梯运行
    assert d.primary.name == "区市场监督管理局"


def test_decisions_carry_the_list_version(router: Router) -> None:
    from datetime import UTC, datetime

    from services.routing.core import assignment_event

    t = ticket(title="停水", content="家里停水了,自来水没水", address="中华路1号")
    d = router.decide(t)
    assert d.list_version == router.list_version and d.list_version.startswith("1-")
    event = assignment_event(t, d, 1, datetime(2026, 11, 24, tzinfo=UTC))
    assert event.assignment.list_version == router.list_version


def test_directory_refuses_inconsistent_places() -> None:
    units = [{"unit_id": "S1", "name": "一街道", "unit_type": "UNIT_TYPE_STREET"},
             {"unit_id": "S2", "name": "二街道", "unit_type": "UNIT_TYPE_STREET"},
             {"unit_id": "C1", "name": "一社区", "unit_type": "UNIT_TYPE_COMMUNITY", "parent": "S1"}]
    with pytest.raises(ValueError, match="no street as its parent"):
        Directory([*units, {"unit_id": "C2", "name": "孤社区", "unit_type": "UNIT_TYPE_COMMUNITY"}])
    with pytest.raises(ValueError, match="not in street S2"):
        Directory(units, [{"name": "某小区", "street": "S2", "community": "C1"}])
    with pytest.raises(ValueError, match="lies in two places"):
        Directory(units, [{"name": "某路", "street": "S1"}, {"name": "某路", "street": "S2"}])
    with pytest.raises(ValueError, match="no known street"):
        Directory(units, [{"name": "某路", "street": "S9"}])
    directory = Directory(units, [{"name": "某小区", "community": "C1"}])  # the street follows from the community
    assert directory.locate(ticket_pb2.Ticket(address="某小区1栋")) == Location("S1", "C1")


@pytest.mark.parametrize(("text", "category", "rule_id", "lane"), [
    ("电梯困人，一位老人被困在电梯里", "物业管理", "物业管理-08", "emergency"),
    ("楼道里燃气味很重，怀疑燃气泄漏", "水电气热", "水电气热-04", "emergency"),
    ("景区游客太多", "文旅与政务服务", "文旅与政务服务-01", "tourism"),
    ("小区停水了，自来水没有", "水电气热", "水电气热-01", "water_power_gas_heat"),
])
def test_the_assignment_carries_the_list_items_lane_and_what_the_clocks_need(
        router: Router, text: str, category: str, rule_id: str, lane: str) -> None:
    from datetime import UTC, datetime

    from services.routing.core import assignment_event

    t = ticket(content=text, category=category, source="deputy")
    t.caller.enterprise = True
    decision = router.decide(t)
    assert (decision.rule_id, decision.lane) == (rule_id, lane)
    assigned = assignment_event(t, decision, 1, datetime(2026, 11, 23, tzinfo=UTC))
    assert (assigned.assignment.rule_id, assigned.assignment.lane) == (rule_id, lane)
    assert assigned.enterprise and assigned.source == "deputy"
