"""Deputy liaison's pure logic: registering deputies (人大代表), and a deputy's problem
(代表反映的群众诉求) becoming a ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hotline import pb
from hotline.commands import Decision, Exists
from hotline.mongo import Doc
from hotline.v1 import events_pb2, services_pb2, ticket_pb2

TICKET_PREFIX = "RD-"  # ticket ids of deputy submissions (intake uses the same prefix)


def register(existing: Doc | None, deputy: Doc) -> Decision[Doc]:
    if existing is not None:
        raise Exists(f"代表编号 {deputy['deputy_id']} 已登记")
    return Decision(state=deputy, answer={"deputy_id": deputy["deputy_id"], "message": "登记成功"})


def submit(
    submission_id: str, fields: dict[str, Any], ticket_type: ticket_pb2.TicketType.ValueType, at: datetime,
) -> Decision[Doc]:
    ticket_id = ticket_id_of(submission_id)
    event = submission_event(submission_id, fields["deputy_id"], fields["title"], fields["content"],
                             fields["address"], ticket_type, at)
    doc = {"submission_id": submission_id, "ticket_id": ticket_id, "status": "submitted", "submitted_at": at,
           **fields}
    return Decision(state=doc, events=[event], key=ticket_id,
                    answer=services_pb2.SubmitProblemResponse(submission_id=submission_id, ticket_id=ticket_id))


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
