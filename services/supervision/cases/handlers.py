"""Supervision's consumer of routing's assignments and the city's callback evaluations, and its
timer handler (a fired clock -> DeadlineDueSoon / DeadlineMissed, and on the first miss system
supervision 系统督办).

* An assignment in any round (OpenCase: round 1 opens a case with its deadlines under the
  current SLA policy and the timers of its clocks, a later round re-dispatches), routing's
  decision on a return and every city evaluation (回访) are typed commands through the
  service's message bus, the consumed batch in one ``handle_many`` (one transaction), with
  what happened as the idempotency key: a replay finds the stored answer and changes and
  emits nothing. Their events go through the outbox.
* An evaluation whose case does not exist yet waits in the inbox (store.keep_evaluation) and
  joins the case the next time a command loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from prometheus_client import Counter, Gauge, Histogram
from pymongo.asynchronous.client_session import AsyncClientSession

from hotline import observability as obs
from hotline import pb
from hotline.auth import Principal
from hotline.commands import DomainError
from hotline.envelope import Event, EventTypes, Record
from hotline.logging import get_logger
from hotline.policy import Role
from hotline.timers import Fired
from hotline.v1 import events_pb2, lifecycle_pb2, routing_pb2
from services.supervision.cases.commands import (
    CaseCommand,
    CaseCommands,
    Evaluate,
    OpenCase,
    ReturnDecision,
    SubDispatch,
)
from services.supervision.cases.core import (
    SYSTEM_SUPERVISION,
    deadline_events,
    first_missed,
    parse_city_evaluation,
    reminders,
    supervision_raised,
)
from services.supervision.cases.store import CaseStore

log = get_logger(__name__)

OPENED = Counter("hotline_cases_opened_total", "Cases opened, by the primary unit's type.", ["unit_type"])
RECEIVED_TO_OPENED = Histogram(
    "hotline_case_open_delay_seconds",
    "From the city receiving a ticket to the district opening its case.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
INBOUND_COMMANDS = Counter(
    "hotline_case_inbound_commands_total",
    "Lifecycle commands from routing and the city, by command and outcome (applied, refused, kept).",
    ["command", "outcome"],
)
COMMAND_OF = {events_pb2.TicketAssigned: OpenCase.name, lifecycle_pb2.ReturnDecision: ReturnDecision.name,
              lifecycle_pb2.CityEvaluation: Evaluate.name, routing_pb2.SubDispatched: SubDispatch.name}
CALENDAR_AHEAD = Gauge("hotline_calendar_known_days_ahead",
                       "Days from today to the last day of the working-day calendar known from official data.")
ROUTING = Principal.system("routing")
CITY = Principal("city:callback-centre", Role.SYSTEM)


def count_opened(case: events_pb2.Case, now: datetime) -> None:
    """The open counters, after the commit of a case that opened (CaseHandlers' ``opened``)."""
    if case.dispatch_round <= 1:
        OPENED.labels(events_pb2.UnitType.Name(case.primary_unit.unit_type)).inc()
        RECEIVED_TO_OPENED.observe(max(0.0, (now - pb.dt(case.received_at)).total_seconds()))


class CaseInbox:
    """Routing's assignments (any round: :class:`OpenCase`), its decisions on returns and the
    city's evaluations, a consumed batch as typed commands through ``bus.handle_many``: one
    transaction per batch; their events go through the outbox."""

    def __init__(self, store: CaseStore, commands: CaseCommands, out_topic: str, evaluations_topic: str) -> None:
        self.store = store
        self.commands = commands
        self.out_topic = out_topic
        self.evaluations_topic = evaluations_topic
        self.clock = commands.clock
        self.types = EventTypes(events_pb2.TicketAssigned, lifecycle_pb2.ReturnDecision,
                                routing_pb2.SubDispatched)  # 加派: the community's limit is a clock of the case
        obs.at_zero(OPENED, [n for n in events_pb2.UnitType.keys() if n != "UNIT_TYPE_UNSPECIFIED"])
        obs.at_zero(INBOUND_COMMANDS, COMMAND_OF.values(), ["applied", "refused", "kept"])

    def decode(self, record: Record) -> Message:
        if record.topic == self.evaluations_topic:
            return parse_city_evaluation(record.value, self.clock.now() + self.commands.policy.limits.contact_skew)
        return self.types.decode(record)

    @staticmethod
    def command(message: Message) -> CaseCommand:
        """The command a consumed message is. The key names what happened, not which record said it:
        routing republishes a stored assignment under its own id on a replay, and the same decision
        must find the first answer."""
        if isinstance(message, lifecycle_pb2.CityEvaluation):
            return Evaluate(message, CITY, f"evaluation/{message.evaluation_id}")
        if isinstance(message, events_pb2.TicketAssigned):
            a = message.assignment
            return OpenCase(message, ROUTING, f"{a.ticket_id}/assigned/{a.dispatch_round}")
        if isinstance(message, routing_pb2.SubDispatched):  # 加派: the community's limit is a clock of the case
            return SubDispatch(message, ROUTING, f"{message.ticket_id}/sub-dispatched/{message.dispatch_round}/"
                                                 f"{message.community_unit.unit_id}")
        assert isinstance(message, lifecycle_pb2.ReturnDecision)
        return ReturnDecision(message, ROUTING, f"{message.ticket_id}/return-decision/{message.dispatch_round}")

    async def apply(self, items: list[tuple[Record, Message]]) -> list[Event]:
        commands = [self.command(m) for _, m in items]
        results = await self.commands.bus.handle_many(commands)
        for (record, message), command, result in zip(items, commands, results, strict=True):
            name = command.name
            if not isinstance(result, DomainError):
                INBOUND_COMMANDS.labels(name, "applied").inc()
            elif isinstance(message, lifecycle_pb2.CityEvaluation) and result.code == "not_found":
                await self.store.keep_evaluation(message)  # its case comes later: applied when it is reported
                INBOUND_COMMANDS.labels(name, "kept").inc()
            else:
                INBOUND_COMMANDS.labels(name, "refused").inc()
                log.warning("lifecycle command refused", command=name, ticket_id=record.key, reason=result.message)
        return []  # the events are in the outbox, staged with the cases


class DeadlineAlarms:
    """What a fired case clock means (Timers' ``on_fire``), inside the scan's transaction. A
    case's first miss while it is below level 1 asks for system supervision
    (OverdueSupervisionRaised, one event id per case); the timers do not write the level: the
    escalation module applies the request (escalation_handlers.py), once per case."""

    def __init__(self, store: CaseStore, out_topic: str, notifications_topic: str = "", tz: Any = UTC) -> None:
        self.store = store
        self.out_topic = out_topic
        self.notifications_topic = notifications_topic  # 事前提醒 (DeadlineReminder), when given
        self.tz = tz

    async def __call__(self, fired: Sequence[Fired], session: AsyncClientSession) -> list[Event]:
        cases = await self.store.get_many(sorted({f.timer.subject for f in fired}), session)
        events = deadline_events(fired, cases, self.out_topic)
        if self.notifications_topic:
            events += reminders(fired, cases, self.notifications_topic, self.tz)
        events += [supervision_raised(miss, cases[tid], self.out_topic) for tid, miss in first_missed(fired).items()
                   if tid in cases and cases[tid].supervision_level < SYSTEM_SUPERVISION]
        return events
