"""Retention of personal data: the period in force and what anonymising a ticket keeps."""

from __future__ import annotations

from datetime import UTC, datetime

from hotline.v1 import ticket_pb2
from services.intake.retention import anonymised, cutoff, policy


def test_the_district_policy_gives_180_days_unless_the_setting_says_otherwise() -> None:
    assert policy().days == 180 and policy().version == "2026-01"
    assert policy(30).days == 30 and policy(30).version == "setting:30d"
    assert cutoff(datetime(2026, 7, 1, tzinfo=UTC), 180) == datetime(2026, 1, 2, tzinfo=UTC)


def test_anonymising_clears_the_callers_contact_and_masks_numbers_in_the_text() -> None:
    t = ticket_pb2.Ticket(ticket_id="C1", title="电话13812345678反映噪音", content="请回电 021-12345678",
                          address="幸福路1号", category="噪音", street="东街道",
                          caller=ticket_pb2.Caller(name="张三", phone="13812345678", enterprise=True),
                          tags=["涉企"], ticket_type=ticket_pb2.TICKET_TYPE_COMPLAINT)
    a = anonymised(t)
    assert not a.caller.name and not a.caller.phone and a.caller.enterprise
    assert "13812345678" not in a.title and "12345678" not in a.content and a.address == "幸福路1号"
    assert (a.category, a.street, list(a.tags), a.ticket_type) == (t.category, t.street, list(t.tags), t.ticket_type)
    assert t.caller.phone == "13812345678", "the input is not changed"
