"""Protobuf <-> MongoDB document conversion, shared by every service's store.

Documents keep the proto field names; enums are stored by name (readable in the store);
``google.protobuf.Timestamp`` fields become real datetimes so the store can index and
range-query them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

M = TypeVar("M", bound=Message)
_TIMESTAMP = Timestamp.DESCRIPTOR.full_name


def ts(value: datetime | None) -> Timestamp | None:
    """A Timestamp at millisecond precision: what the store keeps, so an event built in memory
    equals the one rebuilt from the store on a replay."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(millis(value.astimezone(UTC)))
    return stamp


def millis(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def normalized(stamp: Timestamp) -> Timestamp:
    """The same instant at millisecond precision (for timestamps that come from outside)."""
    return ts(dt(stamp)) or Timestamp()


def dt(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def to_doc(message: Message) -> dict[str, Any]:
    doc = json_format.MessageToDict(message, preserving_proto_field_name=True)
    _timestamps_to_datetimes(message, doc)
    return doc


def from_doc(doc: dict[str, Any], message_type: type[M]) -> M:
    clean = _datetimes_to_strings({k: v for k, v in doc.items() if k != "_id"})
    return json_format.ParseDict(clean, message_type(), ignore_unknown_fields=True)


def _timestamps_to_datetimes(message: Message, doc: dict[str, Any]) -> None:
    for fd, value in message.ListFields():
        if fd.message_type is None or fd.name not in doc:
            continue
        if fd.message_type.full_name == _TIMESTAMP:
            doc[fd.name] = [dt(v) for v in value] if _repeated(fd) else dt(value)
        elif not fd.message_type.GetOptions().map_entry:
            if _repeated(fd):
                for sub, sub_doc in zip(value, doc[fd.name], strict=True):
                    _timestamps_to_datetimes(sub, sub_doc)
            else:
                _timestamps_to_datetimes(value, doc[fd.name])


def _repeated(fd: Any) -> bool:
    return bool(fd.is_repeated)


def _datetimes_to_strings(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _datetimes_to_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_datetimes_to_strings(v) for v in value]
    return value
