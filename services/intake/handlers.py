"""Intake's inbound adapter: the consumer of the city's ticket topic and of deputy submissions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from hotline import observability as obs
from hotline.clock import Clock, SystemClock
from hotline.envelope import Event, EventTypes, PermanentError, Record
from hotline.inbound import TICKET_ID
from hotline.v1 import events_pb2, ticket_pb2
from services.intake import core
from services.intake.store import MAX_REPEAT_LINKS, TicketStore

RECEIVED = Counter(
    "hotline_tickets_received_total", "New tickets stored by intake.", ["ticket_type", "source"]
)
DUPLICATES = Counter(
    "hotline_tickets_duplicate_total", "Tickets received again with an id already stored.", ["source"]
)


class TicketIntake:
    def __init__(self, store: TicketStore, city_topic: str, deputy_topic: str, out_topic: str,
                 hash_secret: str, clock: Clock | None = None,
                 future_tolerance: timedelta = timedelta(minutes=10)) -> None:
        self.store = store
        self.hash_secret = hash_secret
        self.city_topic = city_topic
        self.deputy_topic = deputy_topic
        self.out_topic = out_topic
        self.clock = clock or SystemClock()
        self.future_tolerance = future_tolerance
        sources = ("city", "deputy")
        obs.at_zero(RECEIVED, [n for n in ticket_pb2.TicketType.keys() if n != "TICKET_TYPE_UNSPECIFIED"], sources)
        obs.at_zero(DUPLICATES, sources)

    def decode(self, record: Record) -> ticket_pb2.Ticket:
        now = self.clock.now()
        latest = self.latest_instant(record, now)
        if record.topic == self.deputy_topic:
            submission = record.decode(events_pb2.DeputySubmission)
            if not submission.submission_id:
                raise PermanentError("missing_field", "submission_id is empty")
            ticket_id = core.DEPUTY_PREFIX + submission.submission_id
            if not TICKET_ID.match(ticket_id):
                raise PermanentError("schema", f"submission_id {submission.submission_id[:80]!r} makes no ticket id")
            core.normalize_text(submission.ticket)
            core.validate(submission.ticket, latest)
            ticket = core.to_ticket(submission.ticket, ticket_id, "deputy", now)
            ticket.attachments.extend(core.checked_attachments(submission.attachments))
            return ticket
        city = core.parse_city_ticket(record.value, latest)
        return core.to_ticket(city, city.city_ticket_id, "city", now)

    def latest_instant(self, record: Record, now: datetime) -> datetime:
        """The latest time a ticket's timestamps may name: when the record was published (its
        Kafka timestamp; the clock if that is later or absent) plus the tolerance for clock
        skew. Anchored to the record, a replay decides as the first reading did."""
        now_ms = int(now.timestamp() * 1000)
        published_ms = min(now_ms, record.timestamp_ms) if record.timestamp_ms > 0 else now_ms
        return datetime.fromtimestamp(published_ms / 1000, UTC) + self.future_tolerance

    async def apply(self, items: list[tuple[Record, ticket_pb2.Ticket]]) -> list[Event]:
        batch: dict[str, tuple[Record, ticket_pb2.Ticket]] = {}
        for record, ticket in items:
            batch.setdefault(ticket.ticket_id, (record, ticket))  # the same id twice in a batch: keep the first
        tickets = [t for _, t in batch.values()]
        # Tickets stored before (a replay) are not linked or remembered again: their ids may have
        # left a key's capped list since, and adding them back would change the index on replay.
        already = await self.store.existing_ids([t.ticket_id for t in tickets])
        remember, known = await self._link_repeats([t for t in tickets if t.ticket_id not in already])
        _, existed = await asyncio.gather(self.store.remember_keys(remember, known), self.store.insert_new(tickets))
        await self.store.audit_received([t for t in tickets if t.ticket_id not in existed])
        stored = await self.store.get_many(sorted(existed)) if existed else {}
        events = []
        for record, ticket in batch.values():
            if ticket.ticket_id in existed:
                DUPLICATES.labels(ticket.source).inc()
                ticket = stored[ticket.ticket_id]  # publish what we stored, so a replay is identical
            else:
                RECEIVED.labels(ticket_pb2.TicketType.Name(ticket.ticket_type), ticket.source).inc()
            events.append(
                Event(
                    topic=self.out_topic,
                    key=ticket.ticket_id,
                    message=events_pb2.TicketReceived(ticket=core.without_contact(ticket, self.hash_secret)),
                    event_id=f"{ticket.ticket_id}/received",
                    correlation_id=record.correlation_id,
                )
            )
        return events

    async def _link_repeats(self, tickets: list[ticket_pb2.Ticket]) -> tuple[dict[str, list[str]], set[str]]:
        """Link each ticket to the latest earlier ones with the same caller phone or address
        (重复诉求); returns the ids to remember under each key and the keys already stored.
        A replayed batch finds itself in the index already, so it neither links to itself nor
        is added twice."""
        keys = {t.ticket_id: core.repeat_keys(t, self.hash_secret) for t in tickets}
        known = await self.store.earlier_by_keys(sorted({k for ks in keys.values() for k in ks}))
        stored_keys = set(known)
        additions: dict[str, list[str]] = {}
        for ticket in tickets:
            links: list[str] = []
            for key in keys[ticket.ticket_id]:
                earlier = known.setdefault(key, [])
                links += [i for i in earlier if i != ticket.ticket_id and i not in links]
                if ticket.ticket_id not in earlier:
                    earlier.insert(0, ticket.ticket_id)
                    additions.setdefault(key, []).append(ticket.ticket_id)
            ticket.repeat_of[:] = links[:MAX_REPEAT_LINKS]
        return additions, stored_keys


class HandlingUnits:
    """Follows assignments, so intake knows which units may read a ticket's caller contact."""

    def __init__(self, store: TicketStore) -> None:
        self.store = store
        self.types = EventTypes(events_pb2.TicketAssigned)

    def decode(self, record: Record) -> events_pb2.TicketAssigned:
        message = self.types.decode(record)
        assert isinstance(message, events_pb2.TicketAssigned)
        return message

    async def apply(self, items: list[tuple[Record, events_pb2.TicketAssigned]]) -> list[Event]:
        units: dict[str, set[str]] = {}
        for _, assigned in items:
            a = assigned.assignment
            units.setdefault(a.ticket_id, set()).update(
                u.unit_id for u in (a.primary_unit, *a.assisting_units) if u.unit_id)
        await self.store.add_handling_units(units)
        return []
