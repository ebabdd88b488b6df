"""Early warnings (预警): the pure detectors, and a simulated month with injected bursts,
repeats, a mass incident and a keyword, every one warned about; the false warnings counted."""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hotline import pb, privacy
from hotline.directory import DIRECTORY_FILE
from hotline.v1 import ticket_pb2
from hotline_dev.simulator import generate
from services.intake.core import to_ticket, without_contact
from services.supervision.warnings import warnings as w

RULES = w.Rules.load()
SECRET = "test-secret"
TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
DIRECTORY = json.loads(DIRECTORY_FILE.read_text("utf-8"))
STREET_OF = w.street_finder(DIRECTORY)


def fact(tid: str, at: datetime, street: str = "瑞金路街道", category: str = "停车管理", address: str = "",
         caller: str = "", text: str = "") -> w.Fact:
    return w.Fact(tid, at, street, category, w.normalise_address(address, RULES), caller, text)


def test_address_normalisation() -> None:
    a = w.normalise_address("瑞金北村１２幢 3单元", RULES)
    assert a == w.normalise_address("瑞金北村12栋3单元。", RULES) == w.normalise_address("瑞金北村12号楼3单元", RULES)
    assert w.normalise_address("不愿透露具体位置", RULES) == ""
    assert w.normalise_address("中华路118号（不愿透露具体位置）", RULES) == "中华路118号"


def test_poisson_tail() -> None:
    assert w.poisson_tail(0, 2.0) == 1.0
    assert abs(w.poisson_tail(1, 2.0) - (1 - 2.718281828 ** -2)) < 1e-6
    assert w.poisson_tail(12, 1.0) < 1e-8


def test_repeat_caller_three_times_in_thirty_days_once() -> None:
    d = w.Detector(RULES)
    t0 = START
    kinds = [[x.kind for x in d.observe(fact(f"T{i}", t0 + timedelta(days=10 * i), caller="k1",
                                             address=f"地址{i}号"))] for i in range(4)]
    assert kinds[:2] == [[], []] and kinds[2] == ["repeat_caller"] and kinds[3] == []
    # 3 calls spread over more than 30 days: no warning
    d = w.Detector(RULES)
    assert not [x for i in range(3) for x in d.observe(fact(f"U{i}", t0 + timedelta(days=16 * i), caller="k2"))]


def test_repeat_address_normalised() -> None:
    d = w.Detector(RULES)
    found = [x for i, a in enumerate(["瑞金北村12幢3单元", "瑞金北村 12 栋 3 单元", "瑞金北村１２号楼３单元"])
             for x in d.observe(fact(f"A{i}", START + timedelta(days=i), caller=f"c{i}", address=a))]
    assert [x.kind for x in found] == ["repeat_address"]
    assert found[0].level == "yellow" and "30天内第3次" in found[0].explanation
    assert list(found[0].ticket_ids) == ["A0", "A1", "A2"]


def test_keyword_levels() -> None:
    found = w.assess(fact("K1", START, text="再不解决就找媒体曝光，还要拉横幅"), w.History(), RULES)
    assert [(x.kind, x.level) for x in found] == [("keyword", "red")]
    assert "拉横幅" in found[0].explanation


def test_burst_needs_baseline_excess_and_fires_once() -> None:
    d = w.Detector(RULES)
    raised = []
    for day in range(14):  # a steady 2 a day: no burst
        for k in range(2):
            raised += d.observe(fact(f"B{day}-{k}", START + timedelta(days=day, hours=8 + k)))
    assert raised == []
    for k in range(12):  # 12 in 6 hours
        raised += d.observe(fact(f"X{k}", START + timedelta(days=15, minutes=30 * k)))
    assert [x.kind for x in raised] == ["burst"]
    assert "超出近14天基线" in raised[0].explanation


def test_mass_incident_distinct_callers_similar_text() -> None:
    d = w.Detector(RULES)
    text = "瑞金北村小区门口有人聚集讨薪，工地拖欠农民工工资三个月"
    found = [x for i in range(6) for x in d.observe(
        fact(f"M{i}", START + timedelta(minutes=20 * i), category="劳动保障", caller=f"c{i}", text=text + "!" * i))]
    assert "mass_incident" in [x.kind for x in found]
    # the same caller six times is a repeat, not a mass incident
    d = w.Detector(RULES)
    same = [x.kind for i in range(6) for x in d.observe(
        fact(f"N{i}", START + timedelta(minutes=20 * i), category="劳动保障", caller="c0", text=text))]
    assert "mass_incident" not in same


def test_letter_is_chinese_html() -> None:
    warning = w.assess(fact("K1", START, text="要去上访"), w.History(), RULES)[0]
    doc = w.letter(warning, TZ)
    assert "预警函" in doc and "舆情关键词预警" in doc and "K1" in doc and doc.startswith("<!doctype html>")


def _city(tid: str, at: datetime, text: str, address: str, phone: str, category: str = "",
          street: str = "") -> ticket_pb2.CityTicket:
    return ticket_pb2.CityTicket(city_ticket_id=tid, ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT, title=text[:12],
                                 content=text, category=category, address=address, street=street,
                                 caller=ticket_pb2.Caller(name="张三", phone=phone), received_at=pb.ts(at))


def simulated_month() -> tuple[list[ticket_pb2.CityTicket], dict[str, set[str]]]:
    """~500 tickets a day for 30 days from the simulator (its timeline stretched to a month), plus
    injected incidents; returns the tickets in time order and the injected ticket ids by kind."""
    base = list(generate(15000, seed=7, start=START))
    first, last = pb.dt(base[0].received_at), pb.dt(base[-1].received_at)
    stretch = timedelta(days=30) / (last - first)
    for t in base:
        t.received_at.CopyFrom(pb.ts(START + (pb.dt(t.received_at) - first) * stretch))
    day = timedelta(days=1)
    injected: dict[str, set[str]] = collections.defaultdict(set)

    def add(kind: str, ticket: ticket_pb2.CityTicket) -> None:
        injected[kind].add(ticket.city_ticket_id)
        base.append(ticket)

    for k in range(15):  # burst: 15 parking complaints in one street within 5 hours on day 20
        add("burst", _city(f"IB{k:03d}", START + 20 * day + timedelta(minutes=20 * k),
                           f"长干里{k}号门口车辆乱停放，占用消防通道", f"长干里{k}号", f"1390000{k:04d}", "停车管理"))
    for k, gap in enumerate((0, 9, 21)):  # one caller, three addresses, 21 days
        add("repeat_caller", _city(f"IR{k:03d}", START + (3 + gap) * day, ["楼上装修噪音扰民", "夜间施工噪音",
                                   "广场舞音响太吵"][k], ["中华路1号", "雨花路8号", "长干里9号"][k], "13700001111"))
    for k, address in enumerate(["瑞金北村12幢3单元", "瑞金北村 12 栋 3 单元", "瑞金北村１２号楼３单元"]):
        add("repeat_address", _city(f"IA{k:03d}", START + (5 + 7 * k) * day + timedelta(hours=3),
                                    "楼道堆放杂物无人清理，存在消防隐患", address, f"1360000{k:04d}"))
    text = "瑞金北村旁边工地拖欠农民工工资三个月，几十名工人在工地门口聚集讨薪"
    for k in range(8):  # mass incident: 8 distinct callers within 2 hours
        add("mass_incident", _city(f"IM{k:03d}", START + 12 * day + timedelta(minutes=15 * k),
                                   text + ("，情绪激动" if k % 2 else ""), "瑞金北村工地", f"1350000{k:04d}",
                                   "劳动保障"))
    add("keyword", _city("IK000", START + 25 * day, "小区物业乱收费，再不处理就找媒体曝光", "中华路5号", "13400000000"))
    base.sort(key=lambda t: (pb.dt(t.received_at), t.city_ticket_id))
    return base, injected


def test_simulated_month_every_injected_incident_is_warned_about() -> None:
    tickets, injected = simulated_month()
    detector = w.Detector(RULES)
    raised = []
    for city in tickets:
        ticket = without_contact(to_ticket(city, city.city_ticket_id, "city", pb.dt(city.received_at)), SECRET)
        raised += detector.observe(w.fact_of(ticket, RULES, STREET_OF))
    phones = {t.city_ticket_id: t.caller.phone for t in tickets}
    addresses = {t.city_ticket_id: w.normalise_address(t.address, RULES) for t in tickets}
    assert len({x.warning_id for x in raised}) == len(raised)  # no warning raised twice

    by_kind = collections.Counter(x.kind for x in raised)
    missed = {kind: ids for kind, ids in injected.items()
              if not any(x.kind == kind and set(x.ticket_ids) & ids for x in raised)}
    assert not missed, f"injected incidents not warned about: {missed}"

    def genuine(x: object) -> bool:
        """A warning the data justifies: from an injected incident, or (repeats) truly the same
        phone / the same place several times in the window (the simulator's own repeat callers)."""
        ids = set(x.ticket_ids)  # type: ignore[attr-defined]
        if ids & set().union(*injected.values()):  # an injected incident (its text may also hold a keyword)
            return True
        if x.kind == "repeat_caller":  # type: ignore[attr-defined]
            return len({privacy.keyed_hash(SECRET, phones[i]) for i in ids}) == 1
        if x.kind == "repeat_address":  # type: ignore[attr-defined]
            return len({addresses[i] for i in ids}) == 1
        return False

    false = [x for x in raised if not genuine(x)]
    false_by_kind = collections.Counter(x.kind for x in false)
    print(f"\nsimulated month: {len(tickets)} tickets, {len(raised)} warnings {dict(by_kind)}; "
          f"injected {sum(map(len, injected.values()))} tickets in {len(injected)} incidents, all warned about; "
          f"false warnings {len(false)} {dict(false_by_kind)}")
    for x in false[:10]:
        print("  false:", x.kind, x.level, x.explanation)
    assert len(false) <= 0.01 * len(tickets)
