"""The city's JSON records (tickets, callback evaluations) read one way, by every consumer of
them: the protobuf JSON mapping, unknown keys dropped at every level, and every failure a
PermanentError with reason ``malformed_json`` or ``schema`` (dead-lettered with the reason)."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar, cast

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from hotline.envelope import PermanentError

M = TypeVar("M", bound=Message)
TICKET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}\Z")  # a city ticket id, as every consumer accepts it


def parse_json(raw: bytes, message_type: type[M]) -> M:
    """The record as ``message_type``; what it must contain is the caller's to check."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PermanentError("malformed_json", str(exc)) from exc
    if not isinstance(obj, dict):
        raise PermanentError("schema", f"expected a JSON object, got {type(obj).__name__}")
    try:
        return json_format.ParseDict(known_fields(obj, cast(Descriptor, message_type.DESCRIPTOR)), message_type())
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise PermanentError("schema", str(exc)[:500]) from exc


def known_fields(obj: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """Drop keys the contract does not know, at every level: the city may add fields without
    breaking the district. (The parser's own ignore_unknown_fields would also turn unknown
    enum names into the default silently, so it is not used.) A JSON ``true`` where a number
    or an enum is expected, or an enum number no value has (``1.5``, ``2**40``), is refused:
    the parser would read them as 1 or as the default."""
    out = {}
    for key, value in obj.items():
        field = descriptor.fields_by_name.get(key) or descriptor.fields_by_camelcase_name.get(key)
        if field is None:
            continue
        if field.message_type is not None and isinstance(value, dict) and not field.message_type.GetOptions().map_entry:
            value = known_fields(value, field.message_type)
        elif field.type != FieldDescriptor.TYPE_BOOL and isinstance(value, bool):
            raise PermanentError("schema", f"{key}: {json.dumps(value)} is not a valid {field.name}")
        elif field.enum_type is not None and isinstance(value, int | float) and value not in _numbers(field):
            raise PermanentError("schema", f"{field.name} {json.dumps(value)} is not a known value")
        out[key] = value
    return out


def _numbers(field: FieldDescriptor) -> set[int]:
    return {v.number for v in field.enum_type.values} if field.enum_type else set()
