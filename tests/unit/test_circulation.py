"""Circulation of letters (公文流转), the pure part: the register numbers letters in order, a
letter goes once to a unit, only its addressee acknowledges and answers it (attachments by
http(s) reference only), and an unanswered letter is overdue after its deadline."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hotline import pb
from hotline.auth import Principal
from hotline.commands import DomainError, as_doc
from hotline.policy import Role
from services.supervision.levels import circulation as circ

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=TZ)
OFFICE = Principal("o1", Role.OFFICE)
ST01 = Principal("u1", Role.UNIT, unit_id="ST01")
ST02 = Principal("u2", Role.UNIT, unit_id="ST02")


def sent(sequence: int = 7, **extra: object) -> circ.Registered:
    request = {"kind": "warning_letter", "ref": "W-1", "unit_id": "ST01", **extra}
    decision = circ.send(circ.Registered(None, 2026, sequence), request, OFFICE, NOW, TZ)
    assert decision.state is not None
    return decision.state


def test_sending_numbers_the_letter_in_the_register_with_a_deadline() -> None:
    state = sent()
    letter = state.letter
    assert letter is not None and state.next_sequence == 8
    assert letter.number == "区热线预警函〔2026〕7号" and letter.state == circ.SENT and letter.unit_id == "ST01"
    assert letter.letter_id == circ.letter_id("warning_letter", "W-1", "ST01")
    assert pb.dt(letter.answer_due).astimezone(TZ) == datetime(2026, 12, 12, 23, 59, 59, tzinfo=TZ)  # 5 days
    assert pb.dt(sent(answer_days=2).letter.answer_due).astimezone(TZ).day == 9  # type: ignore[union-attr]
    assert as_doc(state) == {"letter": pb.to_doc(letter), "year": 2026, "next_sequence": 8}  # the audit's "after"
    with pytest.raises(DomainError, match="already sent"):
        circ.send(state, {"kind": "warning_letter", "ref": "W-1", "unit_id": "ST01"}, OFFICE, NOW, TZ)


@pytest.mark.parametrize("request_", [
    {"kind": "memo", "ref": "W-1", "unit_id": "ST01"},
    {"kind": "warning_letter", "ref": "", "unit_id": "ST01"},
    {"kind": "warning_letter", "ref": "W-1", "unit_id": "ST01", "answer_days": 0},
    {"kind": "warning_letter", "ref": "W-1", "unit_id": "NOPE"},
])
def test_a_bad_letter_is_refused(request_: dict[str, object]) -> None:
    with pytest.raises(DomainError) as err:
        circ.send(circ.Registered(None, 2026, 1), request_, OFFICE, NOW, TZ, lambda unit: unit != "NOPE")
    assert err.value.code == "invalid_argument"


def test_only_the_addressee_acknowledges_and_answers_and_answering_acknowledges() -> None:
    letter = sent().letter
    lid = letter.letter_id  # type: ignore[union-attr]
    with pytest.raises(DomainError) as err:
        circ.acknowledge(letter, lid, ST02, NOW)
    assert err.value.code == "not_found"
    with pytest.raises(DomainError):
        circ.acknowledge(letter, lid, OFFICE, NOW)
    acked = circ.acknowledge(letter, lid, ST01, NOW).state
    assert acked is not None and acked.state == circ.ACKNOWLEDGED and acked.acknowledged_by.unit_id == "ST01"
    with pytest.raises(DomainError, match="only a letter waiting"):
        circ.acknowledge(acked, lid, ST01, NOW)
    with pytest.raises(DomainError, match="http"):
        circ.answer(acked, lid, {"answer": "ok", "attachments": ["javascript:alert(1)"]}, ST01, NOW)
    with pytest.raises(DomainError, match="answer is required"):
        circ.answer(acked, lid, {"answer": "  "}, ST01, NOW)
    direct = circ.answer(letter, lid, {"answer": "已整改", "attachments": ["https://f.example.cn/a/b.pdf"]}, ST01,
                         NOW).state
    assert direct is not None and direct.state == circ.ANSWERED and direct.acknowledged_at == direct.answered_at
    assert direct.attachments[0].name == "b.pdf"
    with pytest.raises(DomainError, match="already answered"):
        circ.answer(direct, lid, {"answer": "again"}, ST01, NOW)


def test_an_unanswered_letter_is_overdue_after_its_deadline_an_answered_one_never() -> None:
    letter = sent().letter
    assert letter is not None
    due = pb.dt(letter.answer_due)
    assert not circ.overdue(letter, due - timedelta(seconds=1)) and circ.overdue(letter, due + timedelta(seconds=1))
    answered = circ.answer(letter, letter.letter_id, {"answer": "好"}, ST01, NOW).state
    assert answered is not None and not circ.overdue(answered, due + timedelta(days=30))
    html = circ.document(answered, TZ)
    assert "区热线预警函〔2026〕7号" in html and "已回复" in html and "好" in html


def test_an_attachment_that_is_not_a_reference_is_refused() -> None:
    letter = sent().letter
    assert letter is not None
    for bad in ([7], [["https://a.example.cn/x"]], "https://a.example.cn/x"):
        with pytest.raises(DomainError) as err:
            circ.answer(letter, letter.letter_id, {"answer": "好", "attachments": bad}, ST01, NOW)
        assert err.value.code == "invalid_argument"
