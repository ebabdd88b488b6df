"""The pure parts of ``hotline dlq``: ids, times, selection, masking, replay headers."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import pytest

from hotline_dev.dlq import (
    REPLAYED_FROM,
    DeadLetter,
    Selection,
    add_cli,
    counts,
    mask,
    parse_id,
    parse_time,
    preview,
    selection_from,
)

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def letter(partition: int, offset: int, reason: str = "schema", service: str = "intake", minutes_ago: float = 10,
           key: bytes = b"C1", topic: str = "city.tickets.v1", value: bytes = b"{}") -> DeadLetter:
    headers = (
        ("content_type", b"application/json"),
        ("dlq_reason", reason.encode()),
        ("dlq_detail", b"caller phone 13812345678 is not allowed here"),
        ("dlq_original_topic", topic.encode()),
        ("dlq_original_partition", b"3"),
        ("dlq_original_offset", b"41"),
        ("dlq_service", service.encode()),
    )
    at = NOW - timedelta(minutes=minutes_ago)
    return DeadLetter(partition, offset, int(at.timestamp() * 1000), key, value, headers)


def test_ids() -> None:
    assert parse_id("2:17") == (2, 17)
    assert parse_id(" 17 ") == (None, 17)
    with pytest.raises(ValueError):
        parse_id("2-17")


def test_times() -> None:
    assert parse_time("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_time("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_time("1d", NOW) == NOW - timedelta(days=1)
    assert parse_time("2026-11-26T07:00:00", NOW) == datetime(2026, 11, 26, 7, tzinfo=UTC)
    assert parse_time("2026-11-26T15:00:00+08:00", NOW) == datetime(2026, 11, 26, 7, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_time("yesterday", NOW)


def test_selection_filters_by_reason_service_topic_key_time_and_replay_state() -> None:
    letters = [
        letter(0, 5, "schema", "intake", 90),
        letter(1, 5, "oversize", "intake", 30, key=b"C2"),
        letter(1, 6, "handler_error", "routing", 5, topic="hotline.tickets.v1"),
    ]
    assert [d.id for d in Selection(reasons=frozenset({"oversize"})).select(letters)] == ["1:5"]
    assert [d.id for d in Selection(services=frozenset({"intake"})).select(letters)] == ["0:5", "1:5"]
    assert [d.id for d in Selection(topics=frozenset({"hotline.tickets.v1"})).select(letters)] == ["1:6"]
    assert [d.id for d in Selection(key="C2").select(letters)] == ["1:5"]
    assert [d.id for d in Selection(since=NOW - timedelta(hours=1)).select(letters)] == ["1:5", "1:6"]
    assert [d.id for d in Selection(until=NOW - timedelta(hours=1)).select(letters)] == ["0:5"]
    assert [d.id for d in Selection(replayed=False).select(letters, replayed=["1:5"])] == ["0:5", "1:6"]
    assert [d.id for d in Selection(replayed=True).select(letters, replayed=["1:5"])] == ["1:5"]
    assert [d.id for d in Selection(ids=("1:6", "0:5")).select(letters)] == ["0:5", "1:6"]
    assert [d.id for d in Selection(ids=("6",)).select(letters)] == ["1:6"]
    assert Selection().empty and not Selection(key="C2").empty


def test_selection_refuses_unknown_and_ambiguous_ids() -> None:
    letters = [letter(0, 5), letter(1, 5)]
    with pytest.raises(ValueError, match="ambiguous"):
        Selection(ids=("5",)).select(letters)
    with pytest.raises(ValueError, match="no dead letter 2:9"):
        Selection(ids=("2:9",)).select(letters)


def test_cli_options_become_a_selection() -> None:
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(["dlq", "replay", "1:5", "--reason", "oversize,schema", "--service", "intake",
                              "--since", "2h", "--key", "C2"])
    sel = selection_from(args, NOW)
    assert sel.ids == ("1:5",) and sel.reasons == {"oversize", "schema"} and sel.services == {"intake"}
    assert sel.since == NOW - timedelta(hours=2) and sel.key == "C2" and sel.replayed is None
    args = parser.parse_args(["dlq", "list", "--pending"])
    assert selection_from(args, NOW).replayed is False


def test_phone_numbers_and_names_are_masked() -> None:
    assert mask("13812345678") == "138****5678"
    assert mask("来电人13812345678,座机025-84561234") == "来电人138****5678,座机*******1234"
    assert mask("order 201381234567890") == "order 201381234567890"  # not a phone number: longer digit run
    ticket = {"cityTicketId": "C1", "caller": {"name": "张三丰", "phone": "15912345678"},
              "content": "请回电13912345678"}
    shown = preview(json.dumps(ticket, ensure_ascii=False).encode())
    assert "15912345678" not in shown and "159****5678" in shown and "139****5678" in shown
    assert "张三丰" not in shown and '"name": "张**"' in shown
    assert preview(b"\x08\x01\x12\x0313812345678") == "\\x08\\x01\\x12\\x03138****5678"
    assert preview(b"x" * 3000, limit=10).startswith("xxxxxxxxxx… (2990 more")


def test_replayed_record_keeps_original_headers_and_names_its_dead_letter() -> None:
    dl = letter(2, 9)
    headers = dict(dl.replay_headers("t.hotline.dead-letters.v1"))
    assert headers == {"content_type": b"application/json", REPLAYED_FROM: b"t.hotline.dead-letters.v1:2:9"}
    again = DeadLetter(0, 1, 0, b"C1", b"{}", (*dl.headers, (REPLAYED_FROM, b"old")))
    assert dict(again.replay_headers("d"))[REPLAYED_FROM] == b"d:0:1"


def test_counts_by_reason_and_service() -> None:
    letters = [letter(0, 1, "schema"), letter(0, 2, "schema"), letter(0, 3, "oversize", "routing")]
    assert counts(letters) == {("schema", "intake"): 2, ("oversize", "routing"): 1}
