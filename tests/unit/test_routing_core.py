from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hotline.v1 import events_pb2, ticket_pb2
from services.routing.core import Directory, Router, Rule


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
    assert [u.name for u in d.assisting] == ["区房产管理局"]


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
    weak = ticket(title="幼儿园", content="孩子幼儿园收费太贵", address="中华路5号")  # 收费: one 停车 keyword
    assert router.needs_classifier(weak)
    assert router.decide(weak).category == "停车管理"
    d = router.decide(weak, FakePrediction("教育文体", 0.97))
    assert (d.method, d.category, d.primary.name) == ("classifier", "教育卫生", "区教育局")
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
    directory = Directory([{"unit_id": "A", "name": "a", "unit_type": "UNIT_TYPE_DEPARTMENT"}], {})
    with pytest.raises(ValueError, match="unknown unit B"):
        Router(directory, [Rule("r1", "c", "i", ("k",), "B", ())], {})
