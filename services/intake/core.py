"""Intake's pure domain logic: validate what the city (or a deputy) sends, and turn it into
the district's canonical ticket. No I/O here."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from hotline import pb, privacy
from hotline.envelope import PermanentError
from hotline.v1 import ticket_pb2

TICKET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
MAX_TEXT_CHARS = 20_000


def parse_city_ticket(raw: bytes) -> ticket_pb2.CityTicket:
    """Parse the city's JSON (the protobuf JSON mapping of CityTicket) and validate it.

    Raises PermanentError with reason ``malformed_json``, ``schema`` or ``missing_field``.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PermanentError("malformed_json", str(exc)) from exc
    if not isinstance(obj, dict):
        raise PermanentError("schema", f"expected a JSON object, got {type(obj).__name__}")
    try:
        city = json_format.ParseDict(known_fields(obj, ticket_pb2.CityTicket.DESCRIPTOR), ticket_pb2.CityTicket())
    except json_format.ParseError as exc:
        raise PermanentError("schema", str(exc)) from exc
    validate(city)
    return city


def known_fields(obj: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """Drop keys the contract does not know, at every level: the city may add fields without
    breaking the district. (The parser's own ignore_unknown_fields would also turn unknown
    enum names into the default silently, so it is not used.)"""
    out = {}
    for key, value in obj.items():
        field = descriptor.fields_by_name.get(key) or descriptor.fields_by_camelcase_name.get(key)
        if field is None:
            continue
        if field.message_type is not None and isinstance(value, dict) and not field.message_type.GetOptions().map_entry:
            value = known_fields(value, field.message_type)
        out[key] = value
    return out


def validate(city: ticket_pb2.CityTicket) -> None:
    missing = [
        name
        for name, present in (
            ("city_ticket_id", bool(city.city_ticket_id)),
            ("ticket_type", city.ticket_type != ticket_pb2.TICKET_TYPE_UNSPECIFIED),
            ("content", bool(city.content.strip())),
            ("received_at", city.HasField("received_at")),
        )
        if not present
    ]
    if missing:
        raise PermanentError("missing_field", "required field(s) missing: " + ", ".join(missing))
    for name, enum, value in (("ticket_type", ticket_pb2.TicketType, city.ticket_type),
                              ("urgency", ticket_pb2.Urgency, city.urgency)):
        if value not in enum.values():
            raise PermanentError("schema", f"{name} {value} is not a known value")
    if not TICKET_ID.match(city.city_ticket_id):
        bad = city.city_ticket_id[:80]
        raise PermanentError("schema", f"city_ticket_id {bad!r} is not 1-64 letters, digits, - or _")
    if len(city.content) > MAX_TEXT_CHARS or len(city.title) > 500:
        raise PermanentError("schema", "title or content too long")
    if city.time_limit_working_days < 0 or city.time_limit_working_days > 60:
        raise PermanentError("schema", "time_limit_working_days must be 0..60")


def to_ticket(city: ticket_pb2.CityTicket, ticket_id: str, source: str, ingested_at: datetime) -> ticket_pb2.Ticket:
    return ticket_pb2.Ticket(
        ticket_id=ticket_id,
        city_ticket_id=city.city_ticket_id,
        ticket_type=city.ticket_type,
        title=city.title.strip(),
        content=city.content.strip(),
        category=city.category.strip(),
        address=city.address.strip(),
        street=city.street.strip(),
        caller=city.caller,
        received_at=pb.normalized(city.received_at),
        dispatched_at=pb.normalized(city.dispatched_at if city.HasField("dispatched_at") else city.received_at),
        ingested_at=pb.ts(ingested_at),
        urgency=city.urgency or ticket_pb2.URGENCY_NORMAL,
        tags=list(city.tags),
        channel=city.channel or ("deputy" if source == "deputy" else "phone"),
        source=source,
        time_limit_working_days=city.time_limit_working_days,
    )


def repeat_keys(ticket: ticket_pb2.Ticket, secret: str) -> list[str]:
    """Keys under which earlier tickets count as the same demand (重复诉求). The caller's
    number is keyed by an HMAC: the index never holds a phone number."""
    keys = []
    if ticket.caller.phone and not ticket.caller.anonymous:
        keys.append("phone:" + privacy.keyed_hash(secret, ticket.caller.phone))
    if ticket.address:
        keys.append("address:" + ticket.address)
    return keys


def without_contact(ticket: ticket_pb2.Ticket) -> ticket_pb2.Ticket:
    """The ticket as other services get it: no caller name or phone (routing and metrics do not
    need them; the unit handling the ticket reads them from intake)."""
    shared = ticket_pb2.Ticket()
    shared.CopyFrom(ticket)
    shared.caller.ClearField("name")
    shared.caller.ClearField("phone")
    return shared


def presented(ticket: ticket_pb2.Ticket, clear: bool) -> ticket_pb2.Ticket:
    """A ticket as a response shows it: personal data in clear only for those who need it
    (the office; the unit handling the ticket), masked for everyone else."""
    if clear:
        return ticket
    shown = ticket_pb2.Ticket()
    shown.CopyFrom(ticket)
    shown.caller.name = privacy.mask_name(ticket.caller.name)
    shown.caller.phone = privacy.mask_phone(ticket.caller.phone)
    shown.content = privacy.mask_text(ticket.content)
    shown.title = privacy.mask_text(ticket.title)
    return shown
