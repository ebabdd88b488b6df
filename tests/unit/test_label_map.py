"""The explicit map from classifier labels to the responsibility list's categories."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from hotline.v1 import ticket_pb2
from services.routing.classifier.errors import DataError
from services.routing.classifier.label_map import DEFAULT_PATH, LabelMap
from services.routing.core import DATA_DIR, Router

LIST_CATEGORIES = {"消费维权", "城市管理", "水电气热", "社会保障与就业", "文旅与政务服务", "物业管理", "停车管理",
                   "环境保护", "教育卫生", "交通出行"}
SEED_LABELS = {"城乡建设", "环境保护", "交通运输", "教育文体", "卫生计生", "劳动和社会保障", "商贸旅游"}


@dataclass
class FakePrediction:
    label: str
    confidence: float
    abstained: bool = False
    model_version: str = "m1"


@pytest.fixture(scope="module")
def label_map() -> LabelMap:
    return LabelMap.load()


def test_the_file_is_versioned_and_maps_every_seed_label_onto_the_list(label_map: LabelMap) -> None:
    spec = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert {"version", "changed_by", "changed_at", "reason"} <= set(spec)
    assert set(label_map.labels) == SEED_LABELS
    assert label_map.categories == LIST_CATEGORIES  # 物业管理, 停车管理, 水电气热, 文旅 through refinements
    assert {"停车管理", "物业管理", "水电气热", "文旅与政务服务"}.isdisjoint(label_map.labels.values())
    listing = json.loads((DATA_DIR / "responsibilities.json").read_text(encoding="utf-8"))
    label_map.check({r["category"] for r in listing["responsibilities"]})  # all on the list
    with pytest.raises(DataError, match="物业管理"):
        label_map.check(LIST_CATEGORIES - {"物业管理"})


@pytest.mark.parametrize(("label", "title", "body", "category"), [
    ("城乡建设", "小区物业不作为", "楼道灯坏了半年没人修", "物业管理"),
    ("城乡建设", "小区门口乱停车", "每天晚上堵住出口", "停车管理"),
    ("城乡建设", "老小区冬天暖气不热", "室内只有十度", "水电气热"),
    ("城乡建设", "安置房施工噪音", "工地晚上还在打桩", "城市管理"),  # no refinement: the default
    ("交通运输", "医院门口停车难", "车位太少", "停车管理"),
    ("交通运输", "公交线路太少", "等车一个小时", "交通出行"),
    ("教育文体", "景区门票涨价", "旅游旺季游客太多", "文旅与政务服务"),
    ("教育文体", "学校乱收补课费", "老师要求补课", "教育卫生"),
    ("商贸旅游", "旅行社强制购物", "导游威胁游客", "文旅与政务服务"),
    ("商贸旅游", "超市卖过期食品", "退货被拒", "消费维权"),
    ("卫生计生", "医院乱收费", "检查项目重复", "教育卫生"),
    ("劳动和社会保障", "公司拖欠工资", "三个月没发", "社会保障与就业"),
    ("环境保护", "化工厂排放废气", "气味刺鼻", "环境保护"),
    ("物业管理", "随便什么", "没有关键词", "物业管理"),  # a list category maps to itself
])
def test_labels_map_to_categories_with_keyword_refinement(label_map: LabelMap, label: str, title: str, body: str,
                                                          category: str) -> None:
    assert label_map.category(label, f"{title}\n{body}") == category


def test_one_body_mention_is_not_enough_to_refine(label_map: LabelMap) -> None:
    mapped = label_map.map("城乡建设", "道路施工扬尘大\n工地旁边有个停车场")  # body only: score 1 < 2
    assert mapped is not None and mapped.category == "城市管理"
    mapped = label_map.map("城乡建设", "道路施工扬尘大\n工地占了停车场，车位都没了")  # two body keywords
    assert mapped is not None and (mapped.category, mapped.default) == ("停车管理", "城市管理")
    assert set(mapped.refined_by) == {"停车场", "车位"}
    assert label_map.map("政法", "派出所\n不作为") is None  # a label the map does not know


def test_taxonomy_rows_map_through_the_refinements(label_map: LabelMap) -> None:
    assert label_map.taxonomy_category("城乡建设", ["城市建设和市政管理", "燃气供应"]) == "水电气热"
    assert label_map.taxonomy_category("城乡建设", ["住房保障与房地产", "物业服务"]) == "物业管理"
    assert label_map.taxonomy_category("城乡建设", ["城乡规划", "违章建筑"]) == "城市管理"
    assert label_map.taxonomy_category("商贸旅游", ["旅游管理", "景区管理"]) == "文旅与政务服务"
    assert label_map.taxonomy_category("政法", ["社会治安", "其他"]) is None


def test_routing_reaches_the_narrow_categories_through_the_classifier() -> None:
    router = Router.from_files()
    # texts with fewer than two list keywords: routing asks the classifier; its broad label
    # (城乡建设, 交通运输, 商贸旅游, 教育文体) is narrowed by the label map's refinements
    cases = [("维修基金的问题", "希望尽快处理", "城乡建设", "物业管理"),
             ("业主大会怎么开", "请答复", "城乡建设", "物业管理"),
             ("车位被别人占了", "请答复", "城乡建设", "停车管理"),
             ("违停现象", "请答复", "交通运输", "停车管理"),
             ("燃气表问题", "请答复", "城乡建设", "水电气热"),
             ("供热温度不够", "请答复", "城乡建设", "水电气热"),
             ("导游态度差", "请答复", "商贸旅游", "文旅与政务服务"),
             ("博物馆问题", "请答复", "教育文体", "文旅与政务服务")]
    for title, body, label, category in cases:
        t = ticket_pb2.Ticket(ticket_id="T1", title=title, content=body)
        assert router.needs_classifier(t), title
        d = router.decide(t, FakePrediction(label, 0.95))
        assert (d.method, d.category, d.classifier_label) == ("classifier", category, label), (title, d)
        assert d.rule_id.startswith(category)  # an item of that category: its best keyword match, else its first


def test_a_label_whose_category_is_not_on_the_list_is_not_followed() -> None:
    router = Router.from_files()
    t = ticket_pb2.Ticket(ticket_id="T1", title="反映问题", content="希望尽快处理", address="中华路5号")
    d = router.decide(t, FakePrediction("政法", 0.99))  # a label the map does not know
    assert d.method != "classifier"
