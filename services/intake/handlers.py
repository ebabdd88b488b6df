"""Intake's inbound adapter: the consumer of the city's ticket topic and of deputy submissions.

A batch of parsed tickets goes through the service's message bus as ReceiveTicket commands
(commands.py) in one ``handle_many``; records that do not parse are dead-lettered by the
consumer loop (``decode`` raises)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from hotline import observability as obs
from hotline.bus import MessageBus
from hotline.clock import Clock, SystemClock
from hotline.commands import DomainError
from hotline.envelope import Event, EventTypes, PermanentError, Record
from hotline.inbound import TICKET_ID
from hotline.logging import get_logger
from hotline.v1 import events_pb2, ticket_pb2
from services.intake import core
from services.intake.commands import receive
from services.intake.store import TicketStore

log = get_logger(__name__)

RECEIVED = Counter(
    "hotline_tickets_received_total", "New tickets stored by intake.", ["ticket_type", "source"]
)
DUPLICATES = Counter(
    "hotline_tickets_duplicate_total", "Tickets received again with an id already stored.", ["source"]
)


class TicketIntake:
    def __init__(self, store: TicketStore, city_topic: str, deputy_topic: str, out_topic: str,
                 hash_secret: str, clock: Clock | None = None,
                 future_tolerance: timedelta = timedelta(minutes=10), bus: MessageBus | None = None) -> None:
        self.store = store
        self.bus = bus  # ReceiveTicket's handler registered (commands.py)
        self._stored_now: set[str] = set()
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

    def counted(self, ticket: ticket_pb2.Ticket) -> None:
        """After the commit of a ticket stored (IntakeHandlers' ``received``)."""
        RECEIVED.labels(ticket_pb2.TicketType.Name(ticket.ticket_type), ticket.source).inc()
        self._stored_now.add(ticket.ticket_id)

    async def apply(self, items: list[tuple[Record, ticket_pb2.Ticket]]) -> list[Event]:
        """The batch as :class:`ReceiveTicket` commands through ``bus.handle_many``: one
        transaction; TicketReceived is staged in the outbox with each new ticket. A ticket seen
        before (a replay, or the same id twice) gets its first answer and changes nothing."""
        if self.bus is None:
            raise RuntimeError("TicketIntake needs the service's message bus to apply a batch")
        commands = [receive(ticket) for _, ticket in items]
        self._stored_now.clear()
        results = await self.bus.handle_many(commands)
        for (record, ticket), result in zip(items, results, strict=True):
            if isinstance(result, DomainError):
                log.warning("ticket refused", ticket_id=record.key, reason=result.message)
            elif ticket.ticket_id in self._stored_now:
                self._stored_now.discard(ticket.ticket_id)  # the same id again in the batch is a duplicate
            else:
                DUPLICATES.labels(ticket.source).inc()
        return []  # the events are in the outbox, staged with the tickets


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
