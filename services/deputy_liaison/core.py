"""Deputy liaison's pure logic: a deputy's problem (代表反映的群众诉求) becomes a ticket."""

from __future__ import annotations

from datetime import datetime

from hotline import pb
from hotline.v1 import events_pb2, ticket_pb2

TICKET_PREFIX = "RD-"  # ticket ids of deputy submissions (intake uses the same prefix)


def submission_event(
    submission_id: str, deputy_id: str, title: str, content: str, address: str,
    ticket_type: ticket_pb2.TicketType.ValueType, at: datetime,
) -> events_pb2.DeputySubmission:
    return events_pb2.DeputySubmission(
        submission_id=submission_id,
        deputy_id=deputy_id,
        ticket=ticket_pb2.CityTicket(
            city_ticket_id=f"{TICKET_PREFIX}{submission_id}",
            ticket_type=ticket_type or ticket_pb2.TICKET_TYPE_HELP,
            title=title,
            content=content,
            address=address,
            received_at=pb.ts(at),
            dispatched_at=pb.ts(at),
            urgency=ticket_pb2.URGENCY_NORMAL,
            tags=["人大代表"],
            channel="deputy",
        ),
    )


def ticket_id_of(submission_id: str) -> str:
    return f"{TICKET_PREFIX}{submission_id}"


def submission_id_of(ticket_id: str) -> str | None:
    return ticket_id[len(TICKET_PREFIX):] if ticket_id.startswith(TICKET_PREFIX) else None
