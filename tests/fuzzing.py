"""Generated city tickets for the property-based tests and the fuzz run (bench/fuzz.py).

Valid tickets are generated from the CityTicket schema (its protobuf descriptor, with the
contract's limits of docs/city-format.md): either field spelling, enums by name or number,
RFC 3339 times with or without an offset, text from all of Unicode with the characters that
broke services before (NUL and other controls, emoji, CJK extension B, combining marks,
bidi overrides, a BOM inside text). Mutations then break them at the JSON level (wrong types,
missing, null and extra fields, huge strings, bad times, ids and enums, deep nesting) and at
the byte level (a BOM, GBK and UTF-16 encodings, truncation, flipped bytes, an escaped lone
surrogate). Each record says which outcomes intake may give it, so a run can count what
ended where and flag surprises.

Everything draws from a ``random.Random``: the fuzz run passes a seeded one (fast, the same
records for the same seed), the property tests pass hypothesis' ``st.randoms()`` (which
shrinks a failure to a small example).
"""

from __future__ import annotations

import asyncio
import json
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from random import Random
from typing import Any

from aiokafka import AIOKafkaProducer
from google.protobuf.descriptor import FieldDescriptor
from pymongo import AsyncMongoClient

from hotline import mongo
from hotline.inbound import TICKET_ID
from hotline.settings import Settings
from hotline.v1 import services_pb2, ticket_pb2
from services.intake import core
from tests.support import eventually, read_topic

# characters that broke, or could break, something after intake
SPECIAL = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f", "\r", "\r\n", "\t", "\n",
           "\u200b", "\u200d", "\u200e", "\u202e", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff", "\ufffe",
           "😀", "👨\u200d👩\u200d👧", "🇨🇳", "\U00020000", "\U0002a6d6", "\U0002ebe0", "\U0010fffd", "e\u0301",
           "\u1100\u1161", "Å", "ﬁ", "①", "Ｃ", "\u3000", "\ue000", "_x000D_", "\u0958", "\ufb2c"]
WORDS = ["噪音扰民", "路灯不亮", "中华路118号", "下水道堵塞", "物业不作为", "违章停车", "拖欠工资", "𠀀𠀁𠀂", "😀"]
SNAKE = {"cityTicketId": "city_ticket_id", "ticketType": "ticket_type", "content": "content",
         "receivedAt": "received_at", "dispatchedAt": "dispatched_at",
         "timeLimitWorkingDays": "time_limit_working_days"}
REQUIRED = ("cityTicketId", "ticketType", "content", "receivedAt")
BEIJING = timezone(timedelta(hours=8))
BAD_TIMES = ["9999-12-31T23:59:59Z", "9999-12-31T16:00:00Z", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
             "1999-12-31T23:59:59.999Z", "2026-02-30T00:00:00Z", "2026-11-26 09:00:00", "2026-11-26T09:00:00",
             "10000-01-01T00:00:00Z", "yesterday", "", 1764120000, True, {"seconds": 1}, [], -1.5]
BAD_IDS = [" ", "has space", "x" * 65, "RD-20261126abcd", "Ｃ１２３", "-abc", "C1\n", "C1\x00", "工单1", "a/b", "_x"]
BAD_ENUMS = ["BANANA", "ticket_type_complaint", 42, -1, 1.5, True, "", [], {}, "TICKET_TYPE_UNSPECIFIED", 2**40]
MAX_RECORD_BYTES = 262_144  # settings.kafka.max_message_bytes by default

STORED, DUPLICATE = "stored", "duplicate"
ANY: frozenset[str] = frozenset()  # no expectation: the record must only end somewhere


# ---- values -----------------------------------------------------------------------------------------------------

def any_char(rng: Random) -> str:
    """One code point from anywhere in Unicode (no lone surrogates: JSON cannot carry them),
    most often from the planes tickets use, or one of the special sequences."""
    pick = rng.random()
    if pick < 0.2:
        return rng.choice(SPECIAL)
    if pick < 0.3:
        return chr(rng.randrange(0, 0x20))
    if pick < 0.5:
        return chr(rng.randrange(0x4E00, 0x9FA6))
    if pick < 0.6:
        return chr(rng.randrange(0x20, 0x7F))
    if pick < 0.7:
        return chr(rng.randrange(0x20000, 0x2A6E0))  # CJK extension B
    code = rng.randrange(0, 0x110000)
    return chr(code) if not 0xD800 <= code <= 0xDFFF else "\ufffd"


def any_text(rng: Random, max_items: int) -> str:
    """Any text of at most ``max_items`` characters or special sequences (each at most 7 code
    points; NFC makes no item longer than 3 times itself)."""
    return "".join(any_char(rng) if rng.random() < 0.9 else rng.choice(WORDS) for _ in range(rng.randint(0, max_items)))


def json_value(rng: Random, depth: int = 0) -> Any:
    """Any JSON value: scalars of every type, arrays and objects, a few levels deep."""
    kind = rng.randrange(9 if depth < 3 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 5, 60, 61, 2**31, -2**31 - 1, 2**63, rng.randint(-10**6, 10**6)])
    if kind == 3:
        return rng.choice([0.0, 1.5, -0.0, 1e308, 5e-324, rng.uniform(-1e6, 1e6)])
    if kind in (4, 5, 6):
        return any_text(rng, 12)
    if kind == 7:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {any_text(rng, 6): json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def rfc3339(when: datetime, style: int) -> str:
    if style == 0:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return when.astimezone(BEIJING).isoformat()


# ---- valid tickets, from the schema ------------------------------------------------------------------------------

FIELD_LIMITS = {**core.TEXT_LIMITS, **{f"caller.{k}": v for k, v in core.CALLER_LIMITS.items()},
                "tags": core.MAX_TAG_CHARS}
ENUM_VALUES = {"ticket_type": [v for v in ticket_pb2.TicketType.values() if v],
               "urgency": [v for v in ticket_pb2.Urgency.values() if v]}


def _value(rng: Random, field: FieldDescriptor, path: str, now: datetime, received: datetime) -> Any:
    """A valid JSON value for one field of the schema."""
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
        when = received if field.name == "received_at" else min(received + timedelta(seconds=rng.randint(0, 86_400)),
                                                                 now - timedelta(minutes=1))
        return rfc3339(max(when, received), rng.randrange(3))
    if field.message_type is not None:
        return {sub.json_name if rng.random() < 0.5 else sub.name: _value(rng, sub, f"{path}.{sub.name}", now, received)
                for sub in field.message_type.fields if rng.random() < 0.8}
    if field.type == FieldDescriptor.TYPE_ENUM:
        number = rng.choice(ENUM_VALUES[field.name])
        return number if rng.random() < 0.3 else field.enum_type.values_by_number[number].name
    if field.type == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == FieldDescriptor.TYPE_INT32:  # time_limit_working_days: 0..60, maybe as a string
        days = rng.randint(0, 60)
        return str(days) if rng.random() < 0.3 else days
    limit = FIELD_LIMITS.get(path, 64)
    if field.is_repeated:
        return [any_text(rng, limit // 21) for _ in range(rng.randint(0, core.MAX_TAGS))]
    if path == "content":  # never blank, however much of it the edge drops
        return any_text(rng, 200) + rng.choice(WORDS) + any_text(rng, 20)
    if path == "caller.phone" and rng.random() < 0.7:
        return "1" + "".join(rng.choice("0123456789") for _ in range(10))
    return any_text(rng, limit // 21)


def city_ticket(rng: Random, now: datetime, ticket_id: str) -> dict[str, Any]:
    """A ticket the contract accepts, as a JSON object: every field of CityTicket in turn,
    required ones always, the others at random, each in a random spelling."""
    received = datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(int((now - timedelta(minutes=1)).timestamp()) - 946_684_801))
    obj: dict[str, Any] = {}
    for field in ticket_pb2.CityTicket.DESCRIPTOR.fields:
        if field.json_name not in REQUIRED and rng.random() < 0.4:
            continue
        key = field.json_name if rng.random() < 0.5 else field.name
        obj[key] = ticket_id if field.name == "city_ticket_id" else _value(rng, field, field.name, now, received)
    return obj


def encode(obj: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8")


def _drop(obj: dict[str, Any], camel: str) -> None:
    """Remove a field in either spelling."""
    obj.pop(camel, None)
    obj.pop(SNAKE.get(camel, camel), None)


# ---- mutations -------------------------------------------------------------------------------------------------

Mutation = Callable[[Random, dict[str, Any], str], tuple[bytes, frozenset[str]]]


def _valid(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    return encode(obj, rng.random() < 0.5), frozenset({STORED})


def _extra_fields(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    for _ in range(rng.randint(1, 4)):
        obj["x_" + any_text(rng, 8)] = json_value(rng)
    if isinstance(obj.get("caller"), dict):
        obj["caller"]["newCallerField"] = json_value(rng)
    return encode(obj), frozenset({STORED})


def _odd_unicode(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    def odd(n: int) -> str:
        return "".join(rng.choice(SPECIAL) for _ in range(rng.randint(1, n)))

    obj["content"] = odd(30) + obj.get("content", "") + rng.choice(WORDS) + odd(30)
    obj["title"], obj["address"] = odd(50), odd(50)
    obj["tags"] = [odd(5) for _ in range(rng.randint(0, 5))]
    return encode(obj, rng.random() < 0.5), frozenset({STORED})


def _wrong_type(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    field = rng.choice(["ticketType", "content", "receivedAt", "dispatchedAt", "title", "caller", "tags", "urgency",
                        "timeLimitWorkingDays", "address"])
    _drop(obj, field)
    obj[field] = json_value(rng)
    return encode(obj), ANY


def _missing_field(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    for field in rng.sample(REQUIRED, rng.randint(1, len(REQUIRED))):
        _drop(obj, field)
    return encode(obj), frozenset({"missing_field"})


def _null_field(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    field = rng.choice([*REQUIRED, "title", "caller", "tags", "urgency", "dispatchedAt"])
    _drop(obj, field)
    obj[field] = None
    return encode(obj), frozenset({"missing_field"}) if field in REQUIRED else frozenset({STORED})


def _huge_string(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    field = rng.choice(["content", "title", "address", "category", "street", "channel", "tags"])
    limit = core.MAX_TAG_CHARS if field == "tags" else core.TEXT_LIMITS[field]
    size = rng.choice([limit + 1, limit * 3, 100_000])  # 100,000 4-byte characters: over the record limit
    text = rng.choice(["噪", "a", "😀", "𠀀"]) * size
    _drop(obj, field)
    obj[field] = [text] if field == "tags" else text
    raw = encode(obj)
    return raw, frozenset({"oversize"}) if len(raw) > MAX_RECORD_BYTES else frozenset({"schema"})


def _bad_time(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    _drop(obj, "receivedAt")
    choice = rng.randrange(3)
    if choice == 0:
        obj["receivedAt"] = rng.choice(BAD_TIMES)
    elif choice == 1:  # later than publication + tolerance
        obj["receivedAt"] = rfc3339(datetime.now(UTC) + timedelta(hours=rng.randint(1, 24 * 365 * 100)), 1)
    else:  # dispatched before received
        _drop(obj, "dispatchedAt")
        obj["dispatchedAt"], obj["receivedAt"] = "2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"
    return encode(obj), frozenset({"schema"})


def _bad_id(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    _drop(obj, "cityTicketId")
    bad = rng.choice(BAD_IDS) if rng.random() < 0.7 else any_text(rng, 5)
    obj["cityTicketId"] = bad if not TICKET_ID.match(bad) else bad + " "
    return encode(obj), frozenset({"schema", "missing_field"})


def _bad_enum(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    field = rng.choice(["ticketType", "urgency"])
    _drop(obj, field)
    obj[field] = rng.choice(BAD_ENUMS)
    return encode(obj), frozenset({"schema", "missing_field"})


def _not_object(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    value = rng.choice([json_value(rng), [json_value(rng)], [obj], any_text(rng, 10), 2**70])
    if isinstance(value, dict):
        value = [value]
    return encode(value), frozenset({"schema", "malformed_json"})  # orjson refuses integers beyond 64 bits


def _deep_nesting(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    depth = rng.choice([1_100, 10_000, 100_000])
    return encode(obj)[:-1] + b', "x_deep": ' + b"[" * depth + b"]" * depth + b"}", frozenset({"malformed_json"})


def _duplicate_key(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    return encode(obj)[:-1] + b', "x_dup": 1, "x_dup": 2}', frozenset({STORED})


def _bom(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    return b"\xef\xbb\xbf" + encode(obj), frozenset({"malformed_json"})


def _other_encoding(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    codec = rng.choice(["gbk", "gb18030", "big5", "utf-16", "utf-16-le", "utf-32", "latin-1"])
    raw = json.dumps(obj, ensure_ascii=False).encode(codec, "replace")
    if codec.startswith(("utf-16", "utf-32")):
        return raw, frozenset({"malformed_json"})
    return raw, ANY  # an ASCII-only ticket reads the same in GBK; other bytes are not UTF-8


def _truncated(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    raw = encode(obj)
    return raw[:rng.randrange(len(raw))], frozenset({"malformed_json"})


def _flipped_bytes(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    raw = bytearray(encode(obj))
    start = raw.index(tid.encode()) + len(tid) + 1  # never the id: a flip must not make another record's id
    for _ in range(rng.randint(1, 8)):
        raw[rng.randrange(start, len(raw))] = rng.randrange(256)
    return bytes(raw), ANY


def _escaped_surrogate(rng: Random, obj: dict[str, Any], tid: str) -> tuple[bytes, frozenset[str]]:
    _drop(obj, "content")
    obj["content"] = "@@SURROGATE@@" + rng.choice(WORDS)
    lone = rng.choice([b"\\ud800", b"\\udfff", b"\\udbff\\u0041", b"\\udc00\\ud800"])
    return encode(obj, ascii_only=True).replace(b"@@SURROGATE@@", lone), frozenset({"malformed_json"})


# name -> (mutation, weight): about 40 % of the records are made to be stored
MUTATIONS: dict[str, tuple[Mutation, int]] = {
    "valid": (_valid, 14), "extra_fields": (_extra_fields, 4), "odd_unicode": (_odd_unicode, 6),
    "duplicate_key": (_duplicate_key, 2), "null_field": (_null_field, 3), "wrong_type": (_wrong_type, 6),
    "missing_field": (_missing_field, 4), "huge_string": (_huge_string, 3), "bad_time": (_bad_time, 6),
    "bad_id": (_bad_id, 4), "bad_enum": (_bad_enum, 4), "not_object": (_not_object, 3),
    "deep_nesting": (_deep_nesting, 1), "bom": (_bom, 3), "other_encoding": (_other_encoding, 5),
    "truncated": (_truncated, 4), "flipped_bytes": (_flipped_bytes, 6), "escaped_surrogate": (_escaped_surrogate, 2),
}
KINDS = [name for name, (_, weight) in MUTATIONS.items() for _ in range(weight)]
PARKED_OR_KEPT = frozenset({"parked", "kept_on_case"})
DUPLICATE_SHARE = 0.05  # records that repeat an earlier valid record's id with other content


@dataclass(frozen=True)
class FuzzRecord:
    kind: str  # what was done to it: a MUTATIONS name or "duplicate"
    key: bytes  # Kafka key: the ticket id it was made from, so copies of an id share a partition
    value: bytes
    ticket_id: str  # the id it was made from
    expect: frozenset[str]  # outcomes allowed: STORED, DUPLICATE or a dead-letter reason; ANY = no expectation

    @property
    def valid(self) -> bool:
        """Made to be accepted: it must end stored (or, for a copy of an id, duplicate)."""
        return bool(self.expect) and self.expect <= {STORED, DUPLICATE}


def fuzz_record(rng: Random, now: datetime, ticket_id: str, kind: str | None = None) -> FuzzRecord:
    kind = kind or rng.choice(KINDS)
    value, expect = MUTATIONS[kind][0](rng, city_ticket(rng, now, ticket_id), ticket_id)
    return FuzzRecord(kind, ticket_id.encode(), value, ticket_id, expect)


def generate_records(count: int, run: str, seed: int = 0, now: datetime | None = None) -> list[FuzzRecord]:
    """``count`` fuzz records with ids ``FZ<run><n>``, the same for the same (run, seed, now)."""
    rng = Random(f"{run}/{seed}")
    now = now or datetime.now(UTC)
    out: list[FuzzRecord] = []
    valid_ids: list[str] = []
    for n in range(count):
        if valid_ids and rng.random() < DUPLICATE_SHARE:
            original = rng.choice(valid_ids)
            value = encode(city_ticket(rng, now, original))
            out.append(FuzzRecord("duplicate", original.encode(), value, original, frozenset({DUPLICATE})))
            continue
        record = fuzz_record(rng, now, f"FZ{run}{n:06d}")
        if record.valid:
            valid_ids.append(record.ticket_id)
        out.append(record)
    return out


# ---- the city's evaluations (回访) that arrive before their tickets ----------------------------------------------

PARKED = "parked"  # kept in supervision's evaluation inbox until its case can take it (store.keep_evaluation)
KEPT_ON_CASE = "kept_on_case"  # the case existed already: pending on the case (Case.pending_evaluations)
EVALUATION_SHARE = 0.1  # evaluations generated per ticket record


@dataclass(frozen=True)
class EvaluationRecord:
    kind: str  # early (its ticket follows, valid or not), no_ticket (never sent), repeated, or a mutation
    key: bytes
    value: bytes
    evaluation_id: str
    ticket_id: str
    expect: frozenset[str]  # PARKED / KEPT_ON_CASE, or the dead-letter reasons its mutation calls for

    @property
    def valid(self) -> bool:
        return self.expect <= {PARKED, KEPT_ON_CASE}


def city_evaluation(rng: Random, now: datetime, evaluation_id: str, ticket_id: str) -> dict[str, Any]:
    """A callback evaluation the contract accepts (docs/city-results.md), for the first result of
    ``ticket_id`` (the district has not reported it yet: the ticket has not even arrived)."""
    at = now - timedelta(minutes=rng.randint(1, 600))
    names = [("evaluationId", "evaluation_id"), ("cityTicketId", "city_ticket_id"), ("resultId", "result_id"),
             ("satisfaction", "satisfaction"), ("resolution", "resolution"), ("evaluatedAt", "evaluated_at"),
             ("comment", "comment")]
    values = [evaluation_id, ticket_id, f"{ticket_id}/result/1/0",
              rng.choice(["SATISFACTION_SATISFIED", "SATISFACTION_BASICALLY_SATISFIED", "SATISFACTION_UNSATISFIED",
                          1, 2, 3]),
              rng.choice(["RESOLUTION_RESOLVED", "RESOLUTION_PARTLY_RESOLVED", "RESOLUTION_UNRESOLVED", 1]),
              rfc3339(at, rng.randrange(4)), any_text(rng, 20)]
    return {(camel if rng.random() < 0.5 else snake): v for (camel, snake), v in zip(names, values, strict=True)}


def _eval_mutation(rng: Random, obj: dict[str, Any]) -> tuple[str, bytes, frozenset[str]]:
    choice = rng.randrange(6)
    if choice == 0:
        return "eval_truncated", encode(obj)[: rng.randint(1, 20)], frozenset({"malformed_json"})
    if choice == 1:
        return "eval_bom", b"\xef\xbb\xbf" + encode(obj), frozenset({"malformed_json"})
    if choice == 2:
        for name in ("satisfaction", "evaluatedAt", "evaluated_at"):
            obj.pop(name, None)
        return "eval_missing_field", encode(obj), frozenset({"missing_field"})
    if choice == 3:
        key = "satisfaction" if "satisfaction" in obj else next(iter(obj))
        obj[key] = rng.choice(["HAPPY", [], {"a": 1}, -7, 1.5])
        return "eval_wrong_type", encode(obj), frozenset({"schema"})
    if choice == 4:
        return "eval_not_object", encode(rng.choice([[obj], "evaluation", 42, None])), frozenset({"schema"})
    obj = {k: v for k, v in obj.items() if k not in ("evaluatedAt", "evaluated_at")}
    obj["evaluatedAt"] = rng.choice(["9999-12-31T23:59:59Z", "1999-01-01T00:00:00Z", "yesterday"])
    return "eval_bad_time", encode(obj), frozenset({"schema"})


def generate_evaluations(records: list[FuzzRecord], run: str, seed: int = 0, now: datetime | None = None,
                         share: float = EVALUATION_SHARE) -> list[EvaluationRecord]:
    """Evaluations for about ``share`` of the records' tickets, published before the tickets:
    most valid (their ticket follows: stored, or dead-lettered when its record was broken),
    some for tickets that never come, some sent twice, the rest mutated (dead-lettered)."""
    rng = Random(f"{run}/{seed}/evaluations")
    now = now or datetime.now(UTC)
    out: list[EvaluationRecord] = []
    for n, record in enumerate(r for r in records if r.kind != "duplicate"):
        if rng.random() >= share:
            continue
        eid, tid = f"EV{run}{n:06d}", record.ticket_id
        roll = rng.random()
        if roll < 0.15:  # its ticket never comes
            tid = f"FZ{run}X{n:06d}"
            out.append(EvaluationRecord("no_ticket", tid.encode(), encode(city_evaluation(rng, now, eid, tid)),
                                        eid, tid, PARKED_OR_KEPT))
        elif roll < 0.70:
            kind = "early" if record.valid else "early_broken_ticket"
            value = encode(city_evaluation(rng, now, eid, tid))
            out.append(EvaluationRecord(kind, tid.encode(), value, eid, tid, PARKED_OR_KEPT))
            if rng.random() < 0.1:  # the callback centre sends it again
                out.append(EvaluationRecord("repeated", tid.encode(), value, eid, tid, PARKED_OR_KEPT))
        else:
            kind, value, expect = _eval_mutation(rng, city_evaluation(rng, now, eid, tid))
            out.append(EvaluationRecord(kind, tid.encode(), value, eid, tid, expect))
    return out


@dataclass
class EvaluationReport:
    records: int
    outcomes: Counter[str]  # PARKED, KEPT_ON_CASE, a dead-letter reason, or "lost"
    by_kind: dict[str, Counter[str]]
    unexpected: list[tuple[str, str, bytes]]
    valid_lost: list[str]  # evaluation ids made valid that are neither parked nor pending on their case


# ---- a run against a platform: publish, wait, account for every record ----------------------------------------

@dataclass
class FuzzReport:
    records: int
    seconds: float  # publish -> every consumer group caught up
    outcomes: Counter[str]  # STORED, DUPLICATE or the dead-letter reason of each record
    by_kind: dict[str, Counter[str]]
    unexpected: list[tuple[str, str, bytes]]  # (kind, outcome, start of the value) outside the record's expect
    valid_lost: list[str]  # ids of records made valid that are not stored, assigned and given a case
    unaccounted: int  # records neither dead-lettered nor stored
    downstream_dead: Counter[str]  # "service/reason" of dead letters after intake for the run's tickets
    unclean: list[str]  # stored tickets whose text carries control characters or is not NFC
    counted: dict[str, int]  # growth of the metrics summary: received, assigned, cases_opened
    stored_ids: set[str]
    evaluations: EvaluationReport | None = None


async def _publish(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all",
                                enable_idempotence=True, linger_ms=5, max_request_size=4 * MAX_RECORD_BYTES)
    await producer.start()
    try:
        headers = [("content_type", b"application/json")]
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value in records]
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


async def run_fuzz(settings: Settings, records: list[FuzzRecord], timeout: float = 300,
                   evaluations: list[EvaluationRecord] | None = None) -> FuzzReport:
    """Publish the evaluations (if any) to the city's evaluation topic and wait until
    supervision has taken them all, so each comes before its ticket; then publish the records to
    the city topic, wait until every consumer group has caught up, and account for each record:
    dead-lettered by intake (the reason), stored, or a duplicate of an id stored before. Then
    check the stored tickets went all the way (assignment, case, counted by metrics) and that
    their text is clean, and account for each evaluation (parked, dead-lettered, or lost)."""
    from tests.e2e.test_pipeline import drained, summary

    city_topic = settings.topics.name("city_tickets")
    evaluation_topic = settings.topics.name("city_evaluations")
    before = await summary(settings)
    started = time.monotonic()
    evaluations = evaluations or []
    evaluations_placed = await _publish(settings, evaluation_topic, [(e.key, e.value) for e in evaluations])
    if evaluations:
        await drained(settings, timeout=timeout)
    placed = await _publish(settings, city_topic, [(r.key, r.value) for r in records])
    await drained(settings, timeout=timeout)
    seconds = time.monotonic() - started

    ids = {r.ticket_id for r in records}
    dead = await read_topic(settings, settings.topics.name("dead_letters"), expect=None, timeout=5)
    by_offset: dict[tuple[int, int], str] = {}
    evaluation_dead: dict[tuple[int, int], str] = {}
    downstream: Counter[str] = Counter()
    for m in dead:
        h = {k: v.decode("utf-8", "replace") for k, v in m.headers}
        if h.get("dlq_original_topic") == city_topic:
            by_offset[(int(h["dlq_original_partition"]), int(h["dlq_original_offset"]))] = h["dlq_reason"]
        elif h.get("dlq_original_topic") == evaluation_topic:
            evaluation_dead[(int(h["dlq_original_partition"]), int(h["dlq_original_offset"]))] = h["dlq_reason"]
        elif m.key and m.key.decode("utf-8", "replace") in ids:
            downstream[f"{h.get('dlq_service')}/{h.get('dlq_reason')}"] += 1

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo.url, tz_aware=True)
    try:
        def db(service: str) -> Any:
            return client[f"{settings.mongo.database_prefix}_{service}"]

        stored_docs = await mongo.find_in(db("intake")["tickets"], sorted(ids))
        stored_ids = {d["_id"] for d in stored_docs}
        assigned = {d["_id"] for d in await mongo.find_in(db("routing")["assignments"], sorted(stored_ids), "_id",
                                                           {"_id": 1})}
        opened = {d["_id"] for d in await mongo.find_in(db("supervision")["cases"], sorted(stored_ids), "_id",
                                                         {"_id": 1})}
        evaluation_ids = sorted({e.evaluation_id for e in evaluations})
        parked = {d["_id"] for d in await mongo.find_in(db("supervision")["evaluation_inbox"], evaluation_ids,
                                                         "_id", {"_id": 1})}
        pending = {p.get("evaluation_id") for d in await mongo.find_in(
            db("supervision")["cases"], sorted({e.ticket_id for e in evaluations}), "_id",
            {"pending_evaluations": 1}) for p in d.get("pending_evaluations", [])}
    finally:
        await client.close()

    outcomes: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    unexpected: list[tuple[str, str, bytes]] = []
    first_seen: set[str] = set()
    unaccounted = 0
    for record, where in sorted(zip(records, placed, strict=True), key=lambda rp: rp[1]):  # offset order
        outcome = by_offset.get(where)
        if outcome is None:
            if record.ticket_id not in stored_ids:
                unaccounted += 1
                outcome = "unaccounted"
            else:
                outcome = DUPLICATE if record.ticket_id in first_seen else STORED
                first_seen.add(record.ticket_id)
        outcomes[outcome] += 1
        by_kind.setdefault(record.kind, Counter())[outcome] += 1
        if record.expect and outcome not in record.expect:
            unexpected.append((record.kind, outcome, record.value[:200]))
    valid_ids = {r.ticket_id for r in records if r.valid}
    valid_lost = sorted(valid_ids - (stored_ids & assigned & opened))
    unclean = [d["_id"] for d in stored_docs if not all(_clean(t) for t in _strings(d))]

    def grew(s: services_pb2.Summary) -> bool:
        return s.received - before.received >= len(stored_ids) and s.cases_opened - before.cases_opened >= len(opened)

    after = await eventually(lambda: summary(settings), grew, timeout=60)
    counted = {"received": after.received - before.received, "assigned": after.assigned - before.assigned,
               "cases_opened": after.cases_opened - before.cases_opened}
    evaluation_report = _account_evaluations(evaluations, evaluations_placed, evaluation_dead, parked, pending)
    return FuzzReport(len(records), seconds, outcomes, by_kind, unexpected, valid_lost, unaccounted, downstream,
                      unclean, counted, stored_ids, evaluation_report if evaluations else None)


def _account_evaluations(evaluations: list[EvaluationRecord], placed: list[tuple[int, int]],
                         dead: dict[tuple[int, int], str], parked: set[str], pending: set[Any]) -> EvaluationReport:
    outcomes: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    unexpected: list[tuple[str, str, bytes]] = []
    lost: list[str] = []
    for e, where in zip(evaluations, placed, strict=True):
        outcome = dead.get(where) or (PARKED if e.evaluation_id in parked else
                                      KEPT_ON_CASE if e.evaluation_id in pending else "lost")
        outcomes[outcome] += 1
        by_kind.setdefault(e.kind, Counter())[outcome] += 1
        if outcome not in e.expect:
            unexpected.append((e.kind, outcome, e.value[:200]))
        if e.valid and outcome == "lost":
            lost.append(e.evaluation_id)
    return EvaluationReport(len(evaluations), outcomes, by_kind, unexpected, sorted(set(lost)))


def _strings(doc: dict[str, Any]) -> list[str]:
    values = [doc.get(f, "") for f in core.TEXT_LIMITS] + doc.get("tags", []) + list(doc.get("caller", {}).values())
    return [v for v in values if isinstance(v, str)]


def _clean(text: str) -> bool:
    return text == unicodedata.normalize("NFC", text) and not any(
        unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\t" for c in text)
