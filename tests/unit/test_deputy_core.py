"""Deputy liaison's pure logic (issue 12): registry, submissions, rating and escalation, monthly
lists and figures."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from pydantic import ValidationError

from hotline.commands import DomainError
from hotline.settings import Settings
from hotline.text import TEXT_LIMITS, clean_text
from hotline.v1 import deputy_pb2, events_pb2, ticket_pb2
from services.deputy_liaison import core
from services.deputy_liaison.api import DeputyIn, ProblemIn
from services.intake import core as intake

AT = datetime(2026, 10, 12, 9, 30, tzinfo=UTC)


def test_levels_by_code_or_chinese_name() -> None:
    assert [core.level_of(v) for v in ("national", "省", "市人大代表", "区")] == [
        "national", "provincial", "municipal", "district"]
    with pytest.raises(DomainError, match="代表层级"):
        core.level_of("乡")
    with pytest.raises(ValidationError, match="代表层级"):
        DeputyIn.model_validate({"deputy_id": "D1", "name": "张三", "level": "county"})


def test_one_text_validation_shared_with_intake() -> None:
    assert TEXT_LIMITS is intake.TEXT_LIMITS and intake.clean_text is clean_text
    title = "标" * TEXT_LIMITS["title"]  # the old liaison limit was 200: the ticket's own limit applies now
    content = "群众反映\r\n小区路灯\x07不亮" + "。" * 10
    problem = ProblemIn.model_validate({"title": title, "content": content})
    assert problem.title == title and problem.content == clean_text(content).strip()
    assert "\r" not in problem.content and "\x07" not in problem.content
    with pytest.raises(ValidationError, match="内容过长"):
        ProblemIn.model_validate({"title": title + "标", "content": content})
    with pytest.raises(ValidationError, match="内容过长"):
        ProblemIn.model_validate({"title": "路灯", "content": "长" * (TEXT_LIMITS["content"] + 1)})
    with pytest.raises(ValidationError, match="内容过短"):
        ProblemIn.model_validate({"title": "路灯", "content": " \x00\x01 "})


def fields(consent: bool) -> dict:
    return {"deputy_id": "D1", "title": "路灯不亮", "content": "长干桥小区路灯不亮已一个月", "address": "长干桥小区",
            "street": "ST01", "street_name": "中华门街道",
            "citizen": {"name": "王五", "phone": "13812345678", "consent": consent},
            "attachments": [{"uri": "https://files.example/a.jpg", "name": "a.jpg", "content_type": "image/jpeg"}]}


def test_no_consent_no_contact_stored_and_the_ticket_is_on_the_deputy_lane() -> None:
    decision = core.submit("S1", fields(consent=False), ticket_pb2.TICKET_TYPE_HELP, AT)
    assert decision.state is not None and decision.state["citizen"] == {} and not decision.state["citizen_consent"]
    event = decision.events[0]
    assert isinstance(event, events_pb2.DeputySubmission)
    assert event.ticket.caller.phone == "" and event.ticket.caller.name == "" and event.ticket.caller.anonymous
    assert list(event.ticket.tags) == ["人大代表"] and event.ticket.channel == "deputy"
    assert event.ticket.city_ticket_id == "RD-S1" and decision.key == "RD-S1"
    assert decision.state["attachments"][0]["uri"] == "https://files.example/a.jpg"
    assert [(a.uri, a.name, a.content_type) for a in event.attachments] == [
        ("https://files.example/a.jpg", "a.jpg", "image/jpeg")]  # by reference, on the event intake reads

    kept = core.submit("S2", fields(consent=True), ticket_pb2.TICKET_TYPE_HELP, AT)
    assert kept.state is not None and kept.state["citizen"] == {"name": "王五", "phone": "13812345678"}
    assert kept.events[0].ticket.caller.phone == "13812345678"  # type: ignore[attr-defined]


def test_rating_needs_a_reply_and_escalation_an_unsatisfied_rating_once() -> None:
    submitted = core.submit("S1", fields(False), ticket_pb2.TICKET_TYPE_HELP, AT).state
    assert submitted is not None
    with pytest.raises(DomainError, match="尚未答复"):
        core.rate(submitted, "满意", "", AT)
    replied = {**submitted, "status": "closed"}
    happy = core.rate(replied, "基本满意", "还行", AT).state
    assert happy is not None
    with pytest.raises(DomainError, match="不满意"):
        core.escalate(happy, "", AT)
    unhappy = core.rate(happy, "不满意", "路灯又坏了", AT)
    assert isinstance(unhappy.events[0], deputy_pb2.DeputyRated) and unhappy.state is not None
    escalated = core.escalate(unhappy.state, "请督办", AT)
    event = escalated.events[0]
    assert isinstance(event, deputy_pb2.DeputyEscalated) and event.ticket_id == "RD-S1" and event.comment == "请督办"
    assert escalated.state is not None
    with pytest.raises(DomainError, match="已提请督办"):
        core.escalate(escalated.state, "", AT)


def test_import_rows_from_csv_and_xlsx_with_chinese_headers() -> None:
    header = ["代表编号", "姓名", "层级", "街道", "社区", "联系方式类型", "联系方式", "联络员编号"]
    row = ["D1", "张三", "区", "ST01", "CM0101", "wechat", "zhangsan_wx", "LO1"]
    csv_rows = core.rows_of_csv(("\ufeff" + ",".join(header) + "\n" + ",".join(row) + "\n").encode())
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(header)
    sheet.append(row)
    sheet.append([None] * len(header))  # blank rows are ignored
    buffer = io.BytesIO()
    book.save(buffer)
    xlsx_rows = core.rows_of_xlsx(buffer.getvalue())
    assert csv_rows == xlsx_rows == [{"deputy_id": "D1", "name": "张三", "level": "区", "street": "ST01",
                                      "community": "CM0101", "contact_channel": "wechat", "contact": "zhangsan_wx",
                                      "liaison_officer_id": "LO1"}]
    assert DeputyIn.model_validate(csv_rows[0]).level == "district"
    with pytest.raises(DomainError, match="XLSX"):
        core.rows_of_xlsx(b"not a workbook")


def simulated_month(seed: int = 7) -> tuple[list[dict], dict[str, set[str]]]:
    """A month of tickets in three communities: background noise, plus injected problems:
    a place complained about again and again, a concentrated category, hard (unsatisfied) tickets."""
    rng = random.Random(seed)
    places = {"CM0101": ("ST01", "长干桥小区"), "CM0102": ("ST01", "雨花新村"), "CM0201": ("ST02", "某小区")}
    categories = ["市容环境", "交通出行", "教育", "医疗卫生", "住房保障", "劳动社保"]
    tickets, n = [], 0

    def add(community: str, category: str, address: str, **extra: object) -> None:
        nonlocal n
        n += 1
        street = places[community][0]
        tickets.append({"ticket_id": f"T{n:04d}", "received_month": "2026-10", "street": street,
                        "community": community, "category": category, "address": address, **extra})

    for community in places:  # noise: 2 per category at random places, below every threshold
        for category in categories:
            for _ in range(2):
                add(community, category, f"{places[community][1]}{rng.randint(1, 99)}号")
    for _ in range(4):
        add("CM0101", "市容环境", "长干桥小区垃圾站")  # repeated: the same place 4 times
    for _ in range(6):
        add("CM0102", "交通出行", f"雨花新村{rng.randint(100, 199)}号")  # concentrated: 6 + 2 noise
    add("CM0201", "住房保障", "某小区9号", unsatisfied=True)  # hard
    add("CM0201", "住房保障", "某小区10号", overdue=True)
    tickets.append({"ticket_id": "T9999", "received_month": "2026-09", "street": "ST01", "community": "CM0101",
                    "category": "市容环境", "address": "长干桥小区垃圾站"})  # another month: not counted
    rng.shuffle(tickets)
    # the repeated place also makes its category concentrated (4 + 2 background tickets)
    expected = {"CM0101": {"repeated:市容环境", "concentrated:市容环境"}, "CM0102": {"concentrated:交通出行"},
                "CM0201": {"hard:住房保障"}}
    return tickets, expected


POLICY = core.ListPolicy.load()


def test_monthly_list_names_the_injected_problems_of_each_area() -> None:
    tickets, expected = simulated_month()
    items = core.monthly_items(tickets, "2026-10", POLICY)
    found = {c: {f"{i['kind']}:{i['category']}" for i in items if i["community"] == c} for c in expected}
    assert found == expected
    repeated = next(i for i in items if i["kind"] == "repeated")
    assert repeated["tickets"] == 4 and "长干桥小区垃圾站" in repeated["summary"]
    assert "T9999" not in repeated["ticket_ids"]
    community_deputy = {"deputy_id": "D1", "street": "ST01", "community": "CM0101"}
    street_deputy = {"deputy_id": "D2", "street": "ST01", "community": ""}
    assert {i["kind"] for i in core.items_for(community_deputy, items)} == {"repeated", "concentrated"}
    assert {i["community"] for i in core.items_for(street_deputy, items)} == {"CM0101", "CM0102"}
    assert core.monthly_items(tickets, "2026-10", POLICY) == items  # same facts, same ids


def test_monthly_list_thresholds_are_the_versioned_policy_file(tmp_path: Path) -> None:
    assert POLICY.version and (POLICY.concentrated_at, POLICY.repeated_at, POLICY.hard_at) == (5, 3, 1)
    assert Settings().deputy.monthly_list_policy is None  # unset: the service's own file
    assert core.ListPolicy.load(Settings().deputy.monthly_list_policy) == core.ListPolicy.load(core.POLICY_FILE)
    tickets, _ = simulated_month()
    stricter = core.ListPolicy.from_dict({"version": "test-2", "concentrated": {"min_tickets": 20},
                                          "repeated": {"min_tickets_same_place": 5},
                                          "hard": {"min_tickets": 2, "when": ["overdue"]}})
    assert core.monthly_items(tickets, "2026-10", stricter) == []  # at most 8 tickets, 4 at one place, 1 overdue
    looser = core.ListPolicy.from_dict({"version": "test-3", "repeated": {"min_tickets_same_place": 2},
                                        "hard": {"min_tickets": 2}})
    kinds = {(i["kind"], i["community"]) for i in core.monthly_items(tickets, "2026-10", looser)}
    assert ("hard", "CM0201") in kinds and ("repeated", "CM0101") in kinds
    for bad in ({"concentrated": {"min_tickets": 5}}, {"version": "x", "repeated": {"min_tickets_same_place": 0}},
                {"version": "x", "hard": {"when": ["late"]}}):
        with pytest.raises(ValueError):
            core.ListPolicy.from_dict(bad)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"version": "file-1", "concentrated": {"min_tickets": 2}}), "utf-8")
    assert core.ListPolicy.load(path).concentrated_at == 2
    published = core.list_event({"list_id": "2026-10/D1", "month": "2026-10", "deputy_id": "D1", "items": [],
                                 "policy_version": POLICY.version}, AT)
    assert published.policy_version == POLICY.version


def test_figures_by_level_and_street() -> None:
    deputies = {"D1": {"level": "district", "street": "ST01"}, "D2": {"level": "municipal", "street": "ST01"}}
    on_time = {"replied_at": "2026-10-13T09:00:00Z", "reply_due": "2026-10-20T09:00:00.500Z"}
    late = {"replied_at": "2026-10-21T09:00:00.500Z", "reply_due": "2026-10-20T09:00:00Z"}
    subs = [
        {"deputy_id": "D1", "status": "closed", "case": on_time, "rating": {"rating": "满意"}},
        {"deputy_id": "D1", "status": "closed", "case": late, "rating": {"rating": "不满意"}, "escalated_at": AT},
        {"deputy_id": "D1", "status": "signed_off"},
        {"deputy_id": "D2", "status": "closed", "case": on_time, "rating": {"rating": "基本满意"}},
    ]
    rows = {(r["level"], r["street"]): r for r in core.figures(subs, deputies)}
    d1 = rows[("district", "ST01")]
    assert (d1["submissions"], d1["closed"], d1["closed_on_time"], d1["rated"], d1["satisfied"], d1["escalated"]) == (
        3, 2, 1, 2, 1, 1)
    assert d1["on_time_rate"] == 0.5 and d1["satisfaction_rate"] == 0.5
    assert rows[("municipal", "ST01")]["satisfaction_rate"] == 0.8  # 基本满意 weighs 0.8, as in the KPI engine
    # escalated after the close: the last step is the supervision, the case stays archived and closed
    supervised = {"deputy_id": "D1", "status": "supervised", "case": {**on_time, "state": "CASE_STATE_ARCHIVED"}}
    assert core.closed(supervised)
    assert not core.closed({"status": "supervised", "case": {"state": "CASE_STATE_REPLIED"}})
