"""Deputy liaison's consumer: follows every step of the cases of deputies' submissions (the
case opened, signed off, contacted, replied, reviewed, evaluated, redone, closed...) as a
status and a timeline the deputy reads."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from hotline import pb
from hotline.api import as_json
from hotline.directory import Directory
from hotline.envelope import Event, EventTypes, Record
from hotline.mongo import Doc
from hotline.v1 import case_pb2, deputy_escalation_pb2, events_pb2, lifecycle_pb2
from services.deputy_liaison.core import notification, submission_id_of
from services.deputy_liaison.store import DeputyStore

# status code and the deputy's words for each case event (when the event says more, see status_of)
STATUS: dict[type[Any], tuple[str, str]] = {
    events_pb2.CaseOpened: ("case_opened", "已派单至承办单位"),
    lifecycle_pb2.CaseSignedOff: ("signed_off", "承办单位已签收"),
    lifecycle_pb2.ContactRecorded: ("contacted", "承办单位已联系诉求人"),
    lifecycle_pb2.CaseReplied: ("replied", "承办单位已办结反馈，待热线办审核"),
    lifecycle_pb2.ExtensionRequested: ("extension_requested", "承办单位申请延期"),
    lifecycle_pb2.ExtensionDecided: ("extension_decided", "延期申请已审批"),
    lifecycle_pb2.CaseParked: ("parked", "已挂账，按计划推进"),
    lifecycle_pb2.ProgressReported: ("progress_reported", "挂账事项有新进展"),
    lifecycle_pb2.ReturnRequested: ("return_requested", "承办单位申请退单，待重新派单"),
    lifecycle_pb2.ReturnRefused: ("return_refused", "退单未获同意，原单位继续办理"),
    lifecycle_pb2.ReviewDecided: ("reviewed", "热线办已审核"),
    lifecycle_pb2.CaseEvaluated: ("evaluated", "已回访"),
    lifecycle_pb2.RedoDecided: ("redo_decided", "热线办已作出重办决定"),
    lifecycle_pb2.CaseClosed: ("closed", "已办结归档"),
    lifecycle_pb2.AssistContributed: ("assist_contributed", "协办单位已提交意见"),
    lifecycle_pb2.AssistWaived: ("assist_waived", "协办单位免于协办"),
    deputy_escalation_pb2.CaseEscalatedByDeputy: ("supervised", "热线办已督办"),
}
EVENTS = EventTypes(*STATUS)


def status_of(event: Any) -> tuple[str, str]:
    match event:
        case lifecycle_pb2.ReviewDecided(passed=True):
            return "review_passed", "审核通过，办理结果已回传"
        case lifecycle_pb2.ReviewDecided(passed=False):
            return "sent_back", "审核未通过，承办单位重办"
        case lifecycle_pb2.RedoDecided(redo=True):
            return "redo", "回访不满意，承办单位重办"
        case deputy_escalation_pb2.CaseEscalatedByDeputy(case=c):
            return "supervised", f"根据您的督办请求，热线办已督办（督办级别 {c.supervision_level}）"
        case lifecycle_pb2.ExtensionDecided(approved=approved):
            return ("extension_approved", "延期已批准") if approved else ("extension_rejected", "延期未获批准")
    return STATUS[type(event)]


class CaseFollowing:
    """Follows the cases of deputy tickets, and tells the deputy each step on their channel
    (DeputyNotified on the notifications topic; SMS or WeChat gateways consume it)."""

    def __init__(self, store: DeputyStore, notifications_topic: str = "") -> None:
        self.store, self.notifications_topic = store, notifications_topic

    def decode(self, record: Record) -> tuple[str, Doc, Doc] | None:
        sid = submission_id_of(record.key)
        if sid is None:
            return None  # not a deputy's ticket: nothing to follow
        event = EVENTS.decode(record)
        case: events_pb2.Case = event.case  # type: ignore[attr-defined]
        status, text = status_of(event)
        if isinstance(event, events_pb2.CaseOpened):
            at, reason = case.opened_at, ""
        else:
            at, reason = event.occurred_at, event.reason  # type: ignore[attr-defined]
        # only what the event itself says: a replayed event yields the same entry
        entry: Doc = {"event_id": record.event_id, "event_type": record.event_type, "status": status,
                      "status_text": text, "at": pb.dt(at), "reason": reason, "unit_id": case.primary_unit.unit_id}
        return sid, entry, as_json(case)

    async def apply(self, items: list[tuple[Record, tuple[str, Doc, Doc] | None]]) -> list[Event]:
        steps = [step for _, step in items if step is not None]
        await self.store.record_steps(steps)
        if not self.notifications_topic or not steps:
            return []
        subs = {sid: await self.store.submission(sid) for sid in {sid for sid, _, _ in steps}}
        deputies = {d: await self.store.deputy(d) for d in {s["deputy_id"] for s in subs.values() if s}}
        out = []
        for sid, entry, _case in steps:
            sub = subs.get(sid)
            deputy = deputies.get(sub["deputy_id"]) if sub else None
            if sub is None or deputy is None:
                continue
            key = f"{entry['event_id']}/notify"
            message = notification(deputy, sid, sub["ticket_id"], entry["status"], entry["status_text"],
                                   entry["at"], key)
            out.append(Event(self.notifications_topic, deputy["deputy_id"], message, key, sub["ticket_id"]))
        return out


class TicketFacts:
    """What monthly lists need per ticket (every ticket, not only deputies'): month, street,
    community, category, place, repeat flag; from cases whether it was overdue, redone or
    evaluated unsatisfied. No caller contact is kept.

    Each event makes one insert-only fact (DeputyStore.merge_facts): the receipt's under the ticket
    id, the others under ``<ticket>|<fact>`` with the month the ticket was received in, merged when a
    month's list is made (DeputyStore.facts_of_month). No read and no update per ticket."""

    def __init__(self, store: DeputyStore, directory: Directory, timezone: str = "Asia/Shanghai") -> None:
        self.store, self.directory, self.zone = store, directory, ZoneInfo(timezone)  # months are local

    def _month(self, received_at: Any) -> str:
        return pb.dt(received_at).astimezone(self.zone).strftime("%Y-%m")

    def decode(self, record: Record) -> Doc | None:
        event = FACT_EVENTS.decode(record)
        match event:
            case events_pb2.TicketReceived(ticket=t):
                where = self.directory.locate(t)
                return {"ticket_id": t.ticket_id, "received_month": self._month(t.received_at),
                        "street": where.street or "", "community": where.community or "",
                        "address": t.address, "repeat": bool(t.repeat_of), "source": t.source}
            case events_pb2.TicketAssigned(assignment=a):  # a re-dispatch's category wins (its round)
                return {"ticket_id": a.ticket_id, "received_month": self._month(event.received_at),
                        "fact": "category", "round": a.dispatch_round or 1, "category": a.category}
            case lifecycle_pb2.CaseEvaluated(case=c) if c.evaluation.satisfaction == case_pb2.SATISFACTION_UNSATISFIED:
                return {"ticket_id": c.ticket_id, "received_month": self._month(c.received_at),
                        "fact": "unsatisfied", "unsatisfied": True}
            case lifecycle_pb2.RedoDecided(case=c, redo=True):
                return {"ticket_id": c.ticket_id, "received_month": self._month(c.received_at),
                        "fact": "redone", "redone": True}
            case lifecycle_pb2.CaseReplied(case=c) if 0 < c.reply_due.seconds < c.replied_at.seconds:
                return {"ticket_id": c.ticket_id, "received_month": self._month(c.received_at),
                        "fact": "overdue", "overdue": True}
        return None

    async def apply(self, items: list[tuple[Record, Doc | None]]) -> list[Event]:
        await self.store.merge_facts([f for _, f in items if f is not None])
        return []


FACT_EVENTS = EventTypes(events_pb2.TicketReceived, events_pb2.TicketAssigned, lifecycle_pb2.CaseEvaluated,
                         lifecycle_pb2.RedoDecided, lifecycle_pb2.CaseReplied)
