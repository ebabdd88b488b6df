from __future__ import annotations

import json

import pytest

from hotline.envelope import PermanentError
from services.intake.core import parse_city_ticket

GOOD = {"cityTicketId": "C1", "ticketType": "TICKET_TYPE_COMPLAINT", "content": "楼下烧烤油烟扰民",
        "receivedAt": "2026-11-26T01:02:03Z"}


def raw(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}, ensure_ascii=False).encode()


def test_unknown_fields_are_ignored_so_the_city_can_evolve_its_format() -> None:
    assert parse_city_ticket(raw(priority="high", newCityField={"x": 1})).city_ticket_id == "C1"


def test_good_ticket_parses_with_either_field_spelling() -> None:
    assert parse_city_ticket(raw()).city_ticket_id == "C1"
    snake = {"city_ticket_id": "C2", "ticket_type": "TICKET_TYPE_HELP", "content": "求助", "received_at":
             "2026-11-26T01:02:03Z"}
    assert parse_city_ticket(json.dumps(snake).encode()).ticket_type == 2


@pytest.mark.parametrize(("payload", "reason", "mentions"), [
    (b"{oops", "malformed_json", ""),
    (b"[]", "schema", "JSON object"),
    (raw(ticketType="BANANA"), "schema", "BANANA"),
    (raw(content={"a": 1}), "schema", "content"),
    (raw(ticketType=42), "schema", "ticket_type 42"),
    (raw(urgency=7), "schema", "urgency 7"),
    (json.dumps({"cityTicketId": "C3"}).encode(), "missing_field", "ticket_type, content, received_at"),
    (raw(cityTicketId="has space"), "schema", "city_ticket_id"),
    (raw(timeLimitWorkingDays=99), "schema", "time_limit"),
])
def test_bad_tickets_are_refused_with_a_reason(payload: bytes, reason: str, mentions: str) -> None:
    with pytest.raises(PermanentError) as err:
        parse_city_ticket(payload)
    assert err.value.reason == reason
    assert mentions in err.value.detail
