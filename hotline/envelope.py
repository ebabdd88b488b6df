"""The event envelope: how every platform event travels on Kafka.

A record's key is the ticket id (so one ticket's events stay in order on one partition),
its value is the binary protobuf of the event, and its headers carry the envelope:

| header          | meaning                                                        |
|-----------------|----------------------------------------------------------------|
| event_type      | full protobuf name, e.g. ``hotline.v1.TicketReceived``         |
| event_id        | deterministic id, e.g. ``<ticket_id>/received``: consumers and |
|                 | the outbox use it to drop duplicates                           |
| correlation_id  | the id of the originating request or city ticket               |
| content_type    | ``application/x-protobuf`` (``application/json`` from the city)|
| producer        | service that produced the event                                |
| occurred_at     | ISO-8601 UTC time the producer created the event               |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

M = TypeVar("M", bound=Message)


class PermanentError(Exception):
    """Input that can never be processed. The consumer dead-letters it with ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # short, bounded vocabulary: used as a metric label
        self.detail = detail


class Skip(Exception):
    """An event type this consumer does not handle, on a topic it shares with others: the
    consumer loop skips it and counts it (so producers can be deployed before consumers)."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"event type {event_type or 'untyped'} is not handled here")
        self.event_type = event_type


def event_id(ticket_id: str, *parts: str) -> str:
    """The one way to build an event id: deterministic, so a replay yields the same ids and
    consumers and the outbox drop duplicates (``"T1/received"``, ``"T1/opened/2"``)."""
    return "/".join((ticket_id, *parts))


class EventTypes:
    """The event types a consumer handles; decodes a record by the protobuf type its
    ``event_type`` header names. Handlers then branch on the message's type."""

    def __init__(self, *types: type[Message]) -> None:
        self.by_name: dict[str, type[Message]] = {t.DESCRIPTOR.full_name: t for t in types}

    def decode(self, record: Record) -> Message:
        wanted = self.by_name.get(record.event_type)
        if wanted is None:
            if record.event_type or len(self.by_name) != 1:
                raise Skip(record.event_type)
            wanted = next(iter(self.by_name.values()))  # an untyped record on a one-type topic
        return record.decode(wanted)


@dataclass(frozen=True, slots=True)
class Event:
    """An event to publish: topic is the full topic name (prefix applied)."""

    topic: str
    key: str
    message: Message
    event_id: str
    correlation_id: str = ""
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def event_type(self) -> str:
        return str(self.message.DESCRIPTOR.full_name)

    def headers(self, producer: str) -> list[tuple[str, bytes]]:
        return [
            ("event_type", self.event_type.encode()),
            ("event_id", self.event_id.encode()),
            ("correlation_id", (self.correlation_id or self.key).encode()),
            ("content_type", PROTOBUF.encode()),
            ("producer", producer.encode()),
            ("occurred_at", self.occurred_at.isoformat().encode()),
        ]


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed Kafka record as handlers see it."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str]
    timestamp_ms: int

    @property
    def event_type(self) -> str:
        return self.headers.get("event_type", "")

    @property
    def event_id(self) -> str:
        return self.headers.get("event_id", "")

    @property
    def correlation_id(self) -> str:
        return self.headers.get("correlation_id", "") or self.key

    def decode(self, message_type: type[M]) -> M:
        """Parse the binary protobuf value, checking the envelope's event type."""
        expected = message_type.DESCRIPTOR.full_name
        if self.event_type and self.event_type != expected:
            raise PermanentError("wrong_event_type", f"expected {expected}, got {self.event_type}")
        message = message_type()
        try:
            message.ParseFromString(self.value)
        except DecodeError as exc:
            raise PermanentError("malformed_protobuf", f"cannot parse {expected}: {exc}") from exc
        return message
