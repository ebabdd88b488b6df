"""Intake's pure domain logic: validate what the city (or a deputy) sends, and turn it into
the district's canonical ticket. No I/O here.

One rule protects every service after intake: what intake accepts, they all handle. So the
edge bounds what downstream arithmetic and text processing meet: timestamps lie between
:data:`EARLIEST` and a small tolerance after the record was published, every text is free of
control characters (newline and tab excepted) and in Unicode NFC, every string has a length
limit (docs/city-format.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from hotline import pb, privacy
from hotline.envelope import PermanentError
from hotline.inbound import TICKET_ID, parse_json
from hotline.text import (
    ATTACHMENT_URI,
    CALLER_LIMITS,
    MAX_ATTACHMENT_NAME_CHARS,
    MAX_ATTACHMENTS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    TEXT_LIMITS,
    clean_text,
)
from hotline.v1 import case_pb2, ticket_pb2

DEPUTY_PREFIX = "RD-"  # ticket ids of deputy submissions; a city ticket may not use it
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no ticket of this platform's era was received before


def parse_city_ticket(raw: bytes, latest: datetime) -> ticket_pb2.CityTicket:
    """Parse the city's JSON (the protobuf JSON mapping of CityTicket), normalise its text and
    validate it; ``latest`` is the latest instant a timestamp may name (see :func:`validate`).

    Raises PermanentError with reason ``malformed_json``, ``schema`` or ``missing_field``, and
    nothing else, whatever the bytes.
    """
    city = parse_json(raw, ticket_pb2.CityTicket)
    if city.city_ticket_id.startswith(DEPUTY_PREFIX):
        raise PermanentError("schema", f"city_ticket_id may not start with {DEPUTY_PREFIX} (deputy submissions)")
    normalize_text(city)
    validate(city, latest)
    return city


def normalize_text(city: ticket_pb2.CityTicket) -> None:
    """Clean every free-text field in place (the id is checked, never changed)."""
    for name in TEXT_LIMITS:
        setattr(city, name, clean_text(getattr(city, name)))
    if city.HasField("caller"):
        for name in CALLER_LIMITS:
            setattr(city.caller, name, clean_text(getattr(city.caller, name)))
    city.tags[:] = [clean_text(t) for t in city.tags]


def validate(city: ticket_pb2.CityTicket, latest: datetime) -> None:
    """Check a (normalised) ticket against the contract. ``latest`` is the latest instant
    ``received_at`` and ``dispatched_at`` may name: when the record was published (or read,
    if earlier) plus the clock-skew tolerance, so a replay decides the same way."""
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
    too_long = [f"{name} > {limit}" for name, limit in TEXT_LIMITS.items() if len(getattr(city, name)) > limit]
    too_long += [f"caller.{name} > {limit}" for name, limit in CALLER_LIMITS.items()
                 if len(getattr(city.caller, name)) > limit]
    if len(city.tags) > MAX_TAGS or any(len(t) > MAX_TAG_CHARS for t in city.tags):
        too_long.append(f"tags > {MAX_TAGS} or a tag > {MAX_TAG_CHARS}")
    if too_long:
        raise PermanentError("schema", "too long (characters): " + ", ".join(too_long))
    if city.time_limit_working_days < 0 or city.time_limit_working_days > 60:
        raise PermanentError("schema", "time_limit_working_days must be 0..60")
    _check_instant("received_at", city.received_at, EARLIEST, latest)
    if city.HasField("dispatched_at"):
        _check_instant("dispatched_at", city.dispatched_at, EARLIEST, latest)
        if (city.dispatched_at.seconds, city.dispatched_at.nanos) < (city.received_at.seconds, city.received_at.nanos):
            raise PermanentError("schema", f"dispatched_at {_show(city.dispatched_at)} is before received_at "
                                           f"{_show(city.received_at)}")


def _check_instant(name: str, stamp: Timestamp, earliest: datetime, latest: datetime) -> None:
    """Compared as numbers: a binary protobuf may carry seconds no datetime can hold."""
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise PermanentError("schema", f"{name} has nanos {stamp.nanos} outside 0..999999999")
    if stamp.seconds < int(earliest.timestamp()) or stamp.seconds + stamp.nanos / 1e9 > latest.timestamp():
        raise PermanentError("schema", f"{name} {_show(stamp)} is not between {_show_dt(earliest)} and "
                                       f"{_show_dt(latest)} (publication + tolerance)")


def _show(stamp: Timestamp) -> str:
    try:
        return stamp.ToJsonString()
    except ValueError:
        return f"{stamp.seconds} s since 1970"


def _show_dt(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def checked_attachments(items: Iterable[case_pb2.Attachment]) -> list[case_pb2.Attachment]:
    """A deputy's attachments as the ticket keeps them: http(s) references only, names cleaned."""
    items = list(items)
    if len(items) > MAX_ATTACHMENTS:
        raise PermanentError("schema", f"{len(items)} attachments, at most {MAX_ATTACHMENTS}")
    for i, a in enumerate(items):
        if not re.fullmatch(ATTACHMENT_URI, a.uri):
            raise PermanentError("schema", f"attachments[{i}].uri is not an http(s) reference: {a.uri[:80]!r}")
    return [case_pb2.Attachment(uri=a.uri, name=clean_text(a.name)[:MAX_ATTACHMENT_NAME_CHARS],
                                content_type=a.content_type[:100]) for a in items]


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


def without_contact(ticket: ticket_pb2.Ticket, secret: str = "") -> ticket_pb2.Ticket:
    """The ticket as other services get it: no caller name or phone (routing and metrics do not
    need them; the unit handling the ticket reads them from intake). With ``secret`` it carries
    ``caller_key``, the HMAC of the phone, so supervision's early warnings can count one
    caller's tickets (重复来电) without ever seeing the number."""
    shared = ticket_pb2.Ticket()
    shared.CopyFrom(ticket)
    if secret and ticket.caller.phone and not ticket.caller.anonymous:
        shared.caller_key = privacy.keyed_hash(secret, ticket.caller.phone)
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
