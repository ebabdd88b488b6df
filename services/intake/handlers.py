"""Intake's inbound adapter: the consumer of the city's ticket topic and of deputy submissions."""

from __future__ import annotations

from prometheus_client import Counter

from hotline import observability as obs
from hotline.envelope import Event, PermanentError, Record
from hotline.mongo import utcnow
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
    def __init__(self, store: TicketStore, city_topic: str, deputy_topic: str, out_topic: str) -> None:
        self.store = store
        self.city_topic = city_topic
        self.deputy_topic = deputy_topic
        self.out_topic = out_topic
        sources = ("city", "deputy")
        obs.at_zero(RECEIVED, [n for n in ticket_pb2.TicketType.keys() if n != "TICKET_TYPE_UNSPECIFIED"], sources)
        obs.at_zero(DUPLICATES, sources)

    def decode(self, record: Record) -> ticket_pb2.Ticket:
        now = utcnow()
        if record.topic == self.deputy_topic:
            submission = record.decode(events_pb2.DeputySubmission)
            if not submission.submission_id:
                raise PermanentError("missing_field", "submission_id is empty")
            core.validate(submission.ticket)
            return core.to_ticket(submission.ticket, f"RD-{submission.submission_id}", "deputy", now)
        city = core.parse_city_ticket(record.value)
        return core.to_ticket(city, city.city_ticket_id, "city", now)

    async def apply(self, items: list[tuple[Record, ticket_pb2.Ticket]]) -> list[Event]:
        batch: dict[str, tuple[Record, ticket_pb2.Ticket]] = {}
        for record, ticket in items:
            batch.setdefault(ticket.ticket_id, (record, ticket))  # the same id twice in a batch: keep the first
        tickets = [t for _, t in batch.values()]
        keys = [core.repeat_keys(t) for t in tickets]
        await self._link_repeats(tickets, keys)
        existed = await self.store.insert_new(tickets, keys)
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
                    message=events_pb2.TicketReceived(ticket=ticket),
                    event_id=f"{ticket.ticket_id}/received",
                    correlation_id=record.correlation_id,
                )
            )
        return events

    async def _link_repeats(self, tickets: list[ticket_pb2.Ticket], keys: list[list[str]]) -> None:
        """Link each ticket to earlier ones with the same caller or address (重复诉求)."""
        all_keys = {k for ks in keys for k in ks}
        earlier = await self.store.earlier_by_keys(all_keys, tickets[0]) if all_keys else {}
        batch_ids = {t.ticket_id for t in tickets}
        seen_in_batch: dict[str, list[str]] = {}
        for ticket, ticket_keys in zip(tickets, keys, strict=True):
            links: list[str] = []
            for key in ticket_keys:
                stored = [e for e in earlier.get(key, []) if e not in batch_ids]
                for candidate in seen_in_batch.get(key, [])[::-1] + stored:
                    if candidate not in links:
                        links.append(candidate)
                seen_in_batch.setdefault(key, []).append(ticket.ticket_id)
            ticket.repeat_of[:] = links[:MAX_REPEAT_LINKS]
