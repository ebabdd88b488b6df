from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta
from random import Random
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.clock import ManualClock
from hotline.envelope import PermanentError, Record
from hotline.inbound import TICKET_ID
from hotline.v1 import case_pb2, events_pb2, ticket_pb2
from services.intake import core
from services.intake.core import parse_city_ticket
from services.intake.handlers import TicketIntake
from services.intake.store import TicketStore
from tests import fuzzing

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
LATEST = NOW + timedelta(minutes=10)
GOOD = {"cityTicketId": "C1", "ticketType": "TICKET_TYPE_COMPLAINT", "content": "楼下烧烤油烟扰民",
        "receivedAt": "2026-11-26T01:02:03Z"}
REASONS = {"malformed_json", "schema", "missing_field"}  # what parse_city_ticket may raise (docs/city-format.md)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def raw(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}, ensure_ascii=False).encode()


def test_unknown_fields_are_ignored_so_the_city_can_evolve_its_format() -> None:
    assert parse_city_ticket(raw(priority="high", newCityField={"x": 1}), LATEST).city_ticket_id == "C1"


def test_good_ticket_parses_with_either_field_spelling() -> None:
    assert parse_city_ticket(raw(), LATEST).city_ticket_id == "C1"
    snake = {"city_ticket_id": "C2", "ticket_type": "TICKET_TYPE_HELP", "content": "求助", "received_at":
             "2026-11-26T01:02:03Z"}
    assert parse_city_ticket(json.dumps(snake).encode(), LATEST).ticket_type == 2


@pytest.mark.parametrize(("payload", "reason", "mentions"), [
    (b"{oops", "malformed_json", ""),
    (b"[]", "schema", "JSON object"),
    (raw(ticketType="BANANA"), "schema", "BANANA"),
    (raw(content={"a": 1}), "schema", "content"),
    (raw(ticketType=42), "schema", "ticket_type 42"),
    (raw(urgency=7), "schema", "urgency 7"),
    (json.dumps({"cityTicketId": "C3"}).encode(), "missing_field", "ticket_type, content, received_at"),
    (raw(cityTicketId="has space"), "schema", "city_ticket_id"),
    (raw(cityTicketId="C1\n"), "schema", "city_ticket_id"),
    (raw(cityTicketId="RD-20261126ab"), "schema", "RD-"),
    (raw(timeLimitWorkingDays=99), "schema", "time_limit"),
    (raw(receivedAt="9999-12-31T23:59:59Z"), "schema", "received_at 9999-12-31T23:59:59Z is not between"),
    (raw(receivedAt="1999-12-31T23:59:59Z"), "schema", "2000-01-01T00:00:00Z"),
    (raw(receivedAt="2026-11-26T08:10:01Z"), "schema", "received_at"),
    (raw(dispatchedAt="2026-11-26T01:02:02Z"), "schema", "dispatched_at 2026-11-26T01:02:02Z is before received_at"),
    (raw(dispatchedAt="2027-01-01T00:00:00Z"), "schema", "dispatched_at"),
    (raw(content="\x00\x01 \t"), "missing_field", "content"),
    (raw(address="路" * 501), "schema", "address > 500"),
    (raw(tags=["涉企"] * 21), "schema", "tags"),
    (raw(caller={"phone": "1" * 33}), "schema", "caller.phone"),
])
def test_bad_tickets_are_refused_with_a_reason(payload: bytes, reason: str, mentions: str) -> None:
    with pytest.raises(PermanentError) as err:
        parse_city_ticket(payload, LATEST)
    assert err.value.reason == reason
    assert mentions in err.value.detail


def test_timestamps_up_to_the_tolerance_are_accepted() -> None:
    assert parse_city_ticket(raw(receivedAt="2026-11-26T08:10:00Z"), LATEST).received_at.seconds
    assert parse_city_ticket(raw(receivedAt="2000-01-01T00:00:00Z"), LATEST).received_at.seconds
    assert parse_city_ticket(raw(receivedAt="2026-11-26T09:02:03+08:00", dispatchedAt="2026-11-26T01:02:03Z"),
                             LATEST).dispatched_at.seconds


def test_text_is_normalised_at_the_edge() -> None:
    city = parse_city_ticket(raw(title="A\x00B\x1b[31m", content="噪音\x00扰民\r\n第二行\t😀𠀀\x85e\u0301\x7f",
                                 tags=["涉\x00企"], caller={"name": "王\x07五"}), LATEST)
    assert city.title == "AB[31m"
    assert city.content == "噪音扰民\n第二行\t😀𠀀é"
    assert list(city.tags) == ["涉企"] and city.caller.name == "王五"
    assert core.clean_text("a\rb\u2028c\u202e") == "a\nb\u2028c\u202e"  # line/bidi format characters are kept


# ---- the consumer's decode, with an injected clock -----------------------------------------------------------

def intake(clock: ManualClock) -> TicketIntake:
    return TicketIntake(cast(TicketStore, None), "city", "deputy", "out", "hash-key", clock, timedelta(minutes=10))


def city_record(value: bytes, published: datetime | None) -> Record:
    stamp = int(published.timestamp() * 1000) if published else -1
    return Record("city", 0, 7, "C1", value, {}, stamp)


def test_the_upper_bound_is_the_publication_time_so_a_replay_decides_the_same() -> None:
    handler = intake(ManualClock(NOW))
    later = raw(receivedAt="2026-11-26T08:15:00Z")
    with pytest.raises(PermanentError):  # published at NOW: 15 minutes ahead of it
        handler.decode(city_record(later, NOW))
    handler.clock.set(NOW + timedelta(days=30))  # read a month later (a replay): still refused
    with pytest.raises(PermanentError):
        handler.decode(city_record(later, NOW))
    assert handler.decode(city_record(later, NOW + timedelta(minutes=6))).ticket_id == "C1"
    # a record stamped in the future by its producer is bounded by the clock
    handler.clock.set(NOW)
    with pytest.raises(PermanentError):
        handler.decode(city_record(later, datetime(9999, 1, 1, tzinfo=UTC)))
    ticket = handler.decode(city_record(raw(), None))
    assert ticket.ingested_at.ToDatetime(tzinfo=UTC) == NOW


def deputy_record(submission: events_pb2.DeputySubmission) -> Record:
    return Record("deputy", 0, 1, "RD-x", submission.SerializeToString(),
                  {"event_type": "hotline.v1.DeputySubmission"}, int(NOW.timestamp() * 1000))


def test_deputy_submissions_get_the_same_edge() -> None:
    handler = intake(ManualClock(NOW))
    good = events_pb2.DeputySubmission(submission_id="20261126ab12cd34", deputy_id="D1", ticket=ticket_pb2.CityTicket(
        city_ticket_id="RD-20261126ab12cd34", ticket_type=ticket_pb2.TICKET_TYPE_HELP, content="路灯\x00不亮😀"))
    good.ticket.received_at.FromDatetime(NOW)
    ticket = handler.decode(deputy_record(good))
    assert ticket.ticket_id == "RD-20261126ab12cd34" and ticket.content == "路灯不亮😀" and ticket.source == "deputy"
    far = events_pb2.DeputySubmission()
    far.CopyFrom(good)
    far.ticket.received_at.seconds = 253402300799  # 9999-12-31T23:59:59Z
    with pytest.raises(PermanentError) as err:
        handler.decode(deputy_record(far))
    assert err.value.reason == "schema"
    bad_id = events_pb2.DeputySubmission()
    bad_id.CopyFrom(good)
    bad_id.submission_id = "a b/../c"
    with pytest.raises(PermanentError):
        handler.decode(deputy_record(bad_id))


# ---- properties: nothing but the documented errors, whatever comes in ----------------------------------------

def check_accepted(city: ticket_pb2.CityTicket) -> None:
    """What every service after intake may rely on."""
    strings = [city.title, city.content, city.category, city.address, city.street, city.channel,
               city.caller.name, city.caller.phone, *city.tags]
    for text in strings:
        assert text == unicodedata.normalize("NFC", text)
        assert not any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\t" for c in text), repr(text)
    assert city.content.strip()
    assert core.EARLIEST <= city.received_at.ToDatetime(tzinfo=UTC) <= LATEST
    assert TICKET_ID.match(city.city_ticket_id)


def parse_or_reason(value: bytes) -> str:
    try:
        check_accepted(parse_city_ticket(value, LATEST))
        return fuzzing.STORED
    except PermanentError as exc:
        assert exc.reason in REASONS, exc
        return exc.reason


@PROPERTY
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_fail_with_a_documented_reason(value: bytes) -> None:
    parse_or_reason(value)


@PROPERTY
@given(st.randoms(use_true_random=False))
def test_any_json_value_parses_or_fails_with_a_documented_reason(rng: Random) -> None:
    parse_or_reason(json.dumps(fuzzing.json_value(rng)).encode())


@PROPERTY
@given(st.randoms(use_true_random=False), st.sampled_from(sorted({*fuzzing.SNAKE, *fuzzing.SNAKE.values(), "title",
                                                                  "caller", "tags", "urgency", "street"})))
def test_any_json_in_any_field_parses_or_fails_with_a_documented_reason(rng: Random, field: str) -> None:
    ticket = fuzzing.city_ticket(rng, NOW, "C1")
    ticket[field] = fuzzing.json_value(rng)
    parse_or_reason(json.dumps(ticket).encode())


@PROPERTY
@given(st.randoms(use_true_random=False))
def test_every_ticket_the_schema_allows_is_accepted_clean(rng: Random) -> None:
    assert parse_or_reason(fuzzing.encode(fuzzing.city_ticket(rng, NOW, "C1"))) == fuzzing.STORED


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False), st.sampled_from(sorted(fuzzing.MUTATIONS)))
def test_fuzz_records_end_as_they_say(rng: Random, kind: str) -> None:
    """The generator of bench/fuzz.py is right about each kind of record it makes, and
    whatever it makes, parsing ends in a documented way."""
    record = fuzzing.fuzz_record(rng, NOW, "FZunit000001", kind)
    if len(record.value) > fuzzing.MAX_RECORD_BYTES:
        assert record.expect in ({"oversize"}, fuzzing.ANY)
        return
    outcome = parse_or_reason(record.value)
    assert not record.expect or outcome in record.expect, (kind, outcome, record.value[:300])


@PROPERTY
@given(st.builds(ticket_pb2.CityTicket, city_ticket_id=st.text(max_size=70), content=st.text(max_size=60),
                 title=st.text(max_size=10), tags=st.lists(st.text(max_size=60), max_size=22),
                 ticket_type=st.integers(-3, 9), urgency=st.integers(-3, 9),
                 time_limit_working_days=st.integers(-2**31, 2**31 - 1)),
       st.integers(-2**63, 2**63 - 1), st.integers(-2**31, 2**31 - 1), st.text(max_size=70))
def test_any_deputy_submission_decodes_or_fails_with_a_documented_reason(
    ticket: ticket_pb2.CityTicket, seconds: int, nanos: int, submission_id: str
) -> None:
    ticket.received_at.seconds, ticket.received_at.nanos = seconds, nanos
    submission = events_pb2.DeputySubmission(submission_id=submission_id, ticket=ticket)
    try:
        decoded = intake(ManualClock(NOW)).decode(deputy_record(submission))
    except PermanentError as exc:
        assert exc.reason in REASONS | {"malformed_protobuf"}
        return
    assert decoded.ticket_id.startswith("RD-")
    assert core.EARLIEST <= decoded.received_at.ToDatetime(tzinfo=UTC) <= LATEST


def test_a_deputys_attachments_are_kept_as_http_references_only() -> None:
    good = case_pb2.Attachment(uri="https://files.example/a.jpg", name="照片\x00.jpg", content_type="image/jpeg")
    assert [(a.uri, a.name) for a in core.checked_attachments([good])] == [("https://files.example/a.jpg", "照片.jpg")]
    for uri in ("javascript:alert(1)", "file:///etc/passwd", "https://", "https://x y"):
        with pytest.raises(PermanentError, match=r"attachments\[0\]\.uri"):
            core.checked_attachments([case_pb2.Attachment(uri=uri)])
    with pytest.raises(PermanentError, match="at most 20"):
        core.checked_attachments([good] * 21)
