"""The city platform simulator: deterministic, realistic, and accepted by intake (no Kafka)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from hotline.envelope import PermanentError
from hotline.inbound import TICKET_ID
from hotline.settings import REPO_ROOT, get_settings
from hotline.v1 import ticket_pb2
from hotline_dev import simulator
from services.intake.core import parse_city_ticket
from services.routing.core import Router

START = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
LATEST = datetime.now(UTC)  # the examples and START lie in the past
N = 500
EXAMPLES = REPO_ROOT / "examples" / "city-tickets"


@pytest.fixture(scope="module")
def tickets() -> list[ticket_pb2.CityTicket]:
    return list(simulator.generate(N, seed=7, start=START))


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_files()


def test_deterministic_per_seed(tickets: list[ticket_pb2.CityTicket]) -> None:
    again = list(simulator.generate(N, seed=7, start=START))
    assert [simulator.to_json(t) for t in again] == [simulator.to_json(t) for t in tickets]
    other = list(simulator.generate(N, seed=8, start=START))
    assert [t.content for t in other] != [t.content for t in tickets]


def test_ids_unique_valid_and_distinct_across_runs(tickets: list[ticket_pb2.CityTicket]) -> None:
    ids = [t.city_ticket_id for t in tickets]
    assert len(set(ids)) == N
    assert all(TICKET_ID.match(i) and len(i) <= 64 for i in ids)
    assert ids[0].startswith("C20261126")  # local date (Asia/Shanghai) of the run
    later = {t.city_ticket_id for t in simulator.generate(N, seed=7, start=START.replace(second=1))}
    other_seed = {t.city_ticket_id for t in simulator.generate(N, seed=8, start=START)}
    assert not later & set(ids)
    assert not other_seed & set(ids)


def test_every_ticket_passes_intake(tickets: list[ticket_pb2.CityTicket]) -> None:
    limit = get_settings().kafka.max_message_bytes
    for ticket in tickets:
        raw = simulator.to_json(ticket)
        assert len(raw) < limit
        parsed = parse_city_ticket(raw, LATEST)
        assert parsed == ticket  # the JSON round-trips exactly
        assert ticket.title and ticket.content and ticket.caller is not None


def test_timestamps_increase_and_dispatch_follows(tickets: list[ticket_pb2.CityTicket]) -> None:
    received = [t.received_at.ToDatetime(tzinfo=UTC) for t in tickets]
    assert received == sorted(received)
    assert received[0] >= START
    for ticket in tickets:
        gap = ticket.dispatched_at.ToDatetime(tzinfo=UTC) - ticket.received_at.ToDatetime(tzinfo=UTC)
        assert 0 <= gap.total_seconds() <= 300


def test_type_mix_follows_the_report(tickets: list[ticket_pb2.CityTicket]) -> None:
    shares = Counter(t.ticket_type for t in tickets)
    complaint = 100 * shares[ticket_pb2.TICKET_TYPE_COMPLAINT] / N
    help_ = 100 * shares[ticket_pb2.TICKET_TYPE_HELP] / N
    assert abs(complaint - 72.72) < 6
    assert abs(help_ - 25.61) < 6
    assert set(shares) <= set(simulator.TYPE_SHARES)
    many = Counter(t.ticket_type for t in simulator.generate(5000, seed=1, start=START))
    assert len(many) == 5  # 咨询 / 建议 / 表扬 show up too


def test_hotspots_and_flags(tickets: list[ticket_pb2.CityTicket]) -> None:
    meta = [m for _, m in simulator._generate(3000, 11, START)]
    shares = Counter(m.category for m in meta)
    assert 0.09 < shares["消费维权"] / len(meta) < 0.17
    assert 0.08 < shares["物业管理"] / len(meta) < 0.16
    assert 0.05 < shares["停车管理"] / len(meta) < 0.12
    with_category = sum(1 for t in tickets if t.category) / N
    assert 0.5 < with_category < 0.7
    assert 0.005 < sum(1 for t in tickets if t.urgency == ticket_pb2.URGENCY_URGENT) / N < 0.07
    enterprise = [t for t in tickets if t.caller.enterprise]
    assert 0.005 < len(enterprise) / N < 0.07
    assert all("涉企" in t.tags for t in enterprise)
    assert any("旅游" in t.tags for t in tickets)
    for t in tickets:
        if not t.caller.anonymous:
            assert t.caller.name
            assert len(t.caller.phone) == 11 and t.caller.phone[:2] in ("13", "15", "18")


def test_callers_call_again(tickets: list[ticket_pb2.CityTicket]) -> None:
    phones = Counter(t.caller.phone for t in tickets if t.caller.phone and not t.caller.anonymous)
    again = sum(n - 1 for n in phones.values() if n > 1)
    assert 0.02 < again / N < 0.09


def test_holidays_bring_tourists() -> None:
    holiday = datetime(2026, 10, 2, 1, tzinfo=UTC)  # 国庆
    workday = datetime(2026, 11, 24, 1, tzinfo=UTC)
    on_holiday = sum("旅游" in t.tags for t in simulator.generate(2000, seed=3, start=holiday))
    on_workday = sum("旅游" in t.tags for t in simulator.generate(2000, seed=3, start=workday))
    assert on_holiday > 2 * on_workday


def test_addresses_resolve_to_a_street(tickets: list[ticket_pb2.CityTicket], router: Router) -> None:
    resolved = 0
    for ticket in tickets:
        street = router.directory.street_of(ticket_pb2.Ticket(address=ticket.address, street=ticket.street))
        resolved += street is not None
    assert resolved / N >= 0.9
    # and to the street the simulator meant
    for ticket, meta in simulator._generate(N, 7, START):
        street = router.directory.street_of(ticket_pb2.Ticket(address=ticket.address, street=ticket.street))
        if street is not None:
            assert street == meta.street_id, ticket.address


def test_text_carries_the_routing_keywords(router: Router) -> None:
    agree = total = 0
    for ticket, meta in simulator._generate(N, 7, START):
        if not meta.category:
            continue
        total += 1
        text_only = ticket_pb2.Ticket(title=ticket.title, content=ticket.content, address=ticket.address)
        agree += router.decide(text_only).category == meta.category
    assert agree / total >= 0.9


def test_city_categories_are_known_to_routing(tickets: list[ticket_pb2.CityTicket], router: Router) -> None:
    for ticket in tickets:
        if ticket.category:
            assert router.category_of(ticket.category), ticket.category


def test_bad_messages_are_rejected() -> None:
    limit = get_settings().kafka.max_message_bytes
    bad = simulator.bad_messages()
    assert [name for name, _ in bad] == list(simulator.BAD_MESSAGE_REASONS)
    for name, raw in bad:
        expected = simulator.BAD_MESSAGE_REASONS[name]
        if expected == "oversize":  # the consumer loop rejects it by size before parsing
            assert len(raw) > limit
            continue
        assert len(raw) <= limit
        with pytest.raises(PermanentError) as err:
            parse_city_ticket(raw, LATEST)
        assert err.value.reason == expected, name


def test_print_cli(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    simulator.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--count", "3", "--print", "--with-key", "--start", START.isoformat()])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for line in lines:
        key, value = line.split("\t", 1)
        assert parse_city_ticket(value.encode(), LATEST).city_ticket_id == key


def _examples(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


@pytest.mark.skipif(not EXAMPLES.exists(), reason="no examples")
def test_example_files_parse() -> None:
    files = _examples(EXAMPLES)
    assert 5 <= len(files) <= 8
    types = set()
    for path in files:
        ticket = parse_city_ticket(path.read_bytes(), LATEST)
        types.add(ticket.ticket_type)
        obj = json.loads(path.read_text("utf-8"))
        assert obj.get("cityTicketId", obj.get("city_ticket_id")) == ticket.city_ticket_id
    assert len(types) == 5


@pytest.mark.skipif(not (EXAMPLES / "bad").exists(), reason="no bad examples")
def test_bad_example_files_are_rejected() -> None:
    files = _examples(EXAMPLES / "bad")
    assert len(files) >= 3
    for path in files:
        # the expected reason is the file name's prefix: <reason>--<what>.json
        expected = path.stem.split("--")[0]
        with pytest.raises(PermanentError) as err:
            parse_city_ticket(path.read_bytes(), LATEST)
        assert err.value.reason == expected, path.name


def test_to_json_is_the_protobuf_json_mapping(tickets: list[ticket_pb2.CityTicket]) -> None:
    obj = orjson.loads(simulator.to_json(tickets[0]))
    assert obj["cityTicketId"] == tickets[0].city_ticket_id
    assert obj["ticketType"].startswith("TICKET_TYPE_")
    assert obj["receivedAt"].endswith("Z")
