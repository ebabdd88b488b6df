"""The knowledge base's pure parts (services/metrics/knowledge): masks and words, the Tantivy index
(incremental, filtered), article versions, and the case read model from the events."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from hotline import pb
from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.policy import Role
from hotline.v1 import case_pb2, events_pb2, knowledge_pb2, lifecycle_pb2, ticket_pb2
from services.metrics.knowledge import articles, cases
from services.metrics.knowledge.index import IndexDoc, SearchIndex
from services.metrics.knowledge.service import case_view
from services.metrics.knowledge.text import mask, query_words, words

OFFICE = Principal("o-li", Role.OFFICE)
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
ARTICLE = {"title": "居住证办理指南", "question": "外地户口怎么办居住证",
           "answer": "持身份证、租房合同到街道便民服务中心办理",
           "where": "各街道便民服务中心", "hours": "工作日 9:00-17:00", "materials": "身份证；租房合同",
           "links": [{"label": "网上预约", "url": "https://zwfw.example.gov.cn/jzz", "kind": "qr"}],
           "category": "文旅与政务服务", "unit_id": "D03", "unit_name": "区公安分局", "review_on": "2027-06-30"}


def test_personal_data_is_masked_and_words_are_searchable() -> None:
    text = mask("我叫张三丰，电话13812345678，身份证430102199001011234，卡号6222021234567890123")
    assert "13812345678" not in text and "138****5678" in text
    assert "张三丰" not in text and "张**" in text
    assert "199001011234" not in text and "1234567890123" not in text
    reply = mask("已约谈商家，为张三丰（13812345678）办理退货，已联系李四。为群众办理。")
    assert reply == "已约谈商家，为张**（138****5678）办理退货，已联系李*。为群众办理。"
    w = words("小区停车费太高了！谢谢")
    assert {"停车", "停车费", "小区"} <= set(w) and "了" not in w and "！" not in w and "谢谢" not in w
    assert len(query_words("停车 " * 100 + "物业")) == 2


def _doc(doc_id: str, title: str, body: str, category: str = "", unit: str = "", kind: str = "case") -> IndexDoc:
    return IndexDoc(doc_id, kind, words(title), words(body), (), category, unit)


def test_the_index_adds_replaces_and_removes_one_document_at_a_time_with_filters() -> None:
    index = SearchIndex()
    index.put([_doc("c1", "小区停车费太高", "物业乱收停车费", "物业管理", "ST01"),
               _doc("c2", "社保卡怎么办理", "新生儿社保卡", "社会保障与就业", "D05"),
               _doc("a1", "社保卡申领指南", "带身份证到窗口", "社会保障与就业", "D05", kind="article")])
    assert len(index) == 3
    assert [h.doc_id for h in index.search("社保卡丢了怎么补办", "case")] == ["c2"]
    assert [h.doc_id for h in index.search("社保卡丢了怎么补办", "article")] == ["a1"]
    assert index.search("停车", "case", category="社会保障与就业") == []
    assert index.search("停车", "case", exclude=["c1"]) == []
    index.put([_doc("c1", "小区停车费太高", "物业乱收停车费", "物业管理", "ST02")])  # replaced, not added
    assert len(index) == 3
    assert index.search("停车", "case", unit="ST01") == []
    assert [h.doc_id for h in index.search("停车", "case", unit="ST02")] == ["c1"]
    index.remove("c1")
    assert index.search("停车", "case") == [] and len(index) == 2


def test_an_article_is_saved_as_versions_and_saving_clears_its_flags() -> None:
    first = articles.save(None, "KA-1", ARTICLE, 0, OFFICE, NOW, "新建")
    state = first.state
    assert state is not None and state["version"] == 1 and state["materials"] == ["身份证", "租房合同"]
    assert state["links"][0]["kind"] == "qr"
    with pytest.raises(DomainError) as exists:
        articles.save(state, "KA-1", ARTICLE, 0, OFFICE, NOW, "again")
    assert exists.value.code == "already_exists"
    with pytest.raises(DomainError) as unchanged:
        articles.save(state, "KA-1", ARTICLE, 1, OFFICE, NOW, "nothing")
    assert unchanged.value.code == "invalid_argument"
    flagged = {**state, "flagged": True, "flags": [{"ticket_id": "T1", "at": NOW}]}
    second = articles.save(flagged, "KA-1", ARTICLE, 1, OFFICE, NOW, "复核")  # the review itself
    assert second.state is not None and second.state["version"] == 2 and not second.state["flagged"]
    assert second.state["flags"] == [] and second.state["flag_history"][0]["ticket_id"] == "T1"
    with pytest.raises(DomainError) as stale:
        articles.save(second.state, "KA-1", {**ARTICLE, "answer": "x"}, 1, OFFICE, NOW, "stale")
    assert stale.value.code == "failed_precondition"
    assert articles.review_due(second.state, date(2027, 7, 1))
    assert not articles.review_due(second.state, date(2027, 1, 1))


@pytest.mark.parametrize(("field", "value"), [("title", ""), ("answer", ""), ("unit_id", ""), ("review_on", "明年"),
                                              ("links", [{"url": "javascript:alert(1)", "kind": "link"}]),
                                              ("links", [{"url": "https://a.cn", "kind": "fax"}]),
                                              ("status", "gone")])
def test_an_article_is_refused_naming_the_field_at_fault(field: str, value: object) -> None:
    with pytest.raises(DomainError) as refused:
        articles.save(None, "KA-2", {**ARTICLE, field: value}, 0, OFFICE, NOW, "x")
    assert refused.value.code == "invalid_argument" and field in refused.value.message


def _case(article: bool = True) -> events_pb2.Case:
    c = events_pb2.Case(ticket_id="T1", ticket_type=ticket_pb2.TICKET_TYPE_CONSULTATION,
                        primary_unit=events_pb2.Unit(unit_id="ST01", name="瑞金路街道"))
    if article:
        c.reply.article.CopyFrom(knowledge_pb2.ArticleRef(article_id="KA-1", version=2, title="居住证办理指南"))
    return c


def test_the_case_read_model_keeps_masked_texts_and_no_caller() -> None:
    ticket = events_pb2.TicketReceived(ticket=ticket_pb2.Ticket(
        ticket_id="T1", title="咨询居住证", content="我叫王小明，电话13912345678，想问居住证怎么办",
        ticket_type=ticket_pb2.TICKET_TYPE_CONSULTATION, caller=ticket_pb2.Caller(name="王小明", phone="13912345678")))
    (u,) = cases.updates(ticket)
    assert u.collection == "kb_cases" and "13912345678" not in str(u.set) and "王小明" not in str(u.set)
    assert not any("caller" in k or "phone" in k for k in u.set)
    reply = case_pb2.Reply(text="已告知到街道办理，联系电话13912345678", result=case_pb2.REPLY_RESULT_RESOLVED,
                           article=_case().reply.article)
    replied = cases.updates(lifecycle_pb2.CaseReplied(case=_case(), reply=reply))
    assert "13912345678" not in replied[0].set["reply_text"] and replied[0].set["article"]["article_id"] == "KA-1"
    assert replied[1].collection == "kb_articles" and replied[1].add == {"answered": "T1"}
    passed = cases.updates(lifecycle_pb2.ReviewDecided(case=_case(), passed=True, occurred_at=pb.ts(NOW)))
    assert passed[0].set["resolved"] is True


def test_only_an_unsatisfied_evaluation_of_a_direct_answer_flags_its_article_version() -> None:
    def evaluated(satisfaction: int, article: bool = True) -> list[cases.Update]:
        return cases.updates(lifecycle_pb2.CaseEvaluated(case=_case(article), evaluation=case_pb2.Evaluation(
            resolution=case_pb2.RESOLUTION_RESOLVED, satisfaction=satisfaction, evaluated_at=pb.ts(NOW))))

    poor = evaluated(case_pb2.SATISFACTION_UNSATISFIED)
    assert [u.collection for u in poor] == ["kb_cases", "kb_articles"]
    assert poor[1].set == {"flagged": True} and poor[1].match == {"version": 2} and not poor[1].upsert
    assert poor[1].add["flags"]["ticket_id"] == "T1"
    assert [u.collection for u in evaluated(case_pb2.SATISFACTION_SATISFIED)] == ["kb_cases"]
    assert [u.collection for u in evaluated(case_pb2.SATISFACTION_UNSATISFIED, article=False)] == ["kb_cases"]


def test_a_case_as_another_unit_sees_it_has_no_contact() -> None:
    view = case_view({"_id": "T1", "title": "停车", "content": "电话 13812345678 " + "很长" * 200,
                      "reply_text": "已处理", "evaluation": {"satisfaction": "satisfied", "resolution": "resolved"},
                      "caller": {"phone": "13812345678"}})
    assert "13812345678" not in str(view) and view["satisfaction"] == "满意" and view["excerpt"].endswith("…")


def test_a_cases_updates_of_one_batch_are_one_write_with_the_same_result() -> None:
    from services.metrics.knowledge.store import _folded

    ticket = events_pb2.TicketReceived(ticket=ticket_pb2.Ticket(ticket_id="T1", title="路灯不亮",
                                                                content="小区路灯坏了"))
    assigned = events_pb2.TicketAssigned(assignment=events_pb2.Assignment(
        ticket_id="T1", category="市政设施", rule_id="R9", primary_unit=events_pb2.Unit(unit_id="S01", name="一街道")))
    reply = case_pb2.Reply(text="已修复", result=case_pb2.REPLY_RESULT_RESOLVED, article=_case().reply.article)
    batch = [*cases.updates(ticket), *cases.updates(assigned),
             *cases.updates(lifecycle_pb2.CaseReplied(case=_case(), reply=reply)),  # also adds to an article
             *cases.updates(lifecycle_pb2.ReviewDecided(case=_case(), passed=False)),
             *cases.updates(lifecycle_pb2.ReviewDecided(case=_case(), passed=True, occurred_at=pb.ts(NOW)))]
    folded = _folded(batch)
    assert [(u.collection, u.key) for u in folded] == [("kb_cases", "T1"), ("kb_articles", "KA-1")]

    def applied(updates: list[cases.Update]) -> dict[str, dict[str, object]]:
        docs: dict[str, dict[str, object]] = {}
        for u in updates:
            docs.setdefault(f"{u.collection}/{u.key}", {}).update(u.set)
        return docs
    assert applied(folded) == applied(batch) and applied(folded)["kb_cases/T1"]["resolved"] is True
    added = cases.Update("kb_cases", "T1", add={"answered": "x"})  # an $addToSet of the same document between
    kept = _folded([*cases.updates(ticket), added, *cases.updates(assigned)])
    assert [u.set.get("category") for u in kept] == [None, None, "市政设施"]  # the order of its writes is kept
