"""Metrics' pure logic: a stage is counted on the district's local day; a day no date can
hold is input that can never be counted (PermanentError), never a crash of the consumer."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hotline.envelope import PermanentError, Record
from hotline.v1 import events_pb2, ticket_pb2
from services.metrics.core import local_day, stage_of

TZ = ZoneInfo("Asia/Shanghai")


def received(seconds: int, nanos: int = 0) -> Record:
    ticket = ticket_pb2.Ticket(ticket_id="T1", ticket_type=ticket_pb2.TICKET_TYPE_HELP, source="city")
    ticket.received_at.seconds, ticket.received_at.nanos = seconds, nanos
    value = events_pb2.TicketReceived(ticket=ticket).SerializeToString()
    return Record("t", 0, 0, "T1", value, {"event_type": "hotline.v1.TicketReceived"}, 0)


def test_the_local_day_is_beijings() -> None:
    assert local_day(datetime(2026, 11, 26, 16, 30, tzinfo=UTC), TZ) == "2026-11-27"
    assert stage_of(received(int(datetime(2026, 11, 26, 16, 30, tzinfo=UTC).timestamp())), TZ).day == "2026-11-27"
    assert local_day(datetime(1, 1, 1, tzinfo=UTC), TZ) == "0001-01-01"


@pytest.mark.parametrize(("seconds", "nanos"), [
    (253402300799, 0),  # 9999-12-31T23:59:59Z: Beijing is already in year 10000
    (2**62, 0), (-2**62, 0), (0, -1), (0, 2_000_000_000),  # what a binary protobuf may carry
])
def test_a_day_no_date_can_hold_is_a_permanent_error(seconds: int, nanos: int) -> None:
    with pytest.raises(PermanentError) as err:
        stage_of(received(seconds, nanos), TZ)
    assert err.value.reason == "schema"
