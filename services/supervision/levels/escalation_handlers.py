"""Supervision's follow-ups of its own case decisions, run IN PROCESS from the outbox (issue #20:
hotline/outbox.py ``Outbox.follow``; supervision no longer reads its own events back from Kafka,
which carries only what crosses services). Each runs before the decision's events are published,
at least once, as a command keyed by the event (so exactly once in effect, also after a crash
between the follow-up and the outbox's delete):

* a poor evaluation (``CaseEvaluated`` with needs_decision: unresolved or unsatisfied) raises
  level 1 (系统督办) on the case, keyed by the evaluation, so a replay raises nothing twice;
* a missed deadline (``OverdueSupervisionRaised``: the deadline timers ask for level 1 and
  leave the case's level alone) raises level 1 too, keyed by the case: once per case;
* both write the record even when the case has closed since the trigger (escalation.py), so
  every automatic raise leaves its record, and the case its level;
* a case closing (``CaseClosed``, not re-dispatched) closes its open supervision with it, and
  the cases merged under it (并单) with its result, each a command keyed by (child, parent):
  exactly once, replay-safe.

A deputy's escalation is applied where it is consumed (deputy_escalation_handlers.py), by the
same module: its ``CaseEscalatedByDeputy`` is the result, not read back here.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message
from prometheus_client import Counter

from hotline import observability as obs
from hotline import pb
from hotline.commands import DomainError
from hotline.envelope import EventTypes, Record
from hotline.logging import get_logger
from hotline.mongo import Doc
from hotline.v1 import case_pb2, deadlines_pb2, lifecycle_pb2
from services.supervision.levels.escalation_store import EscalationCommands

log = get_logger(__name__)
AUTOMATIC = Counter("hotline_supervision_automatic_total",
                    "Automatic supervision steps from case events, by trigger and outcome.", ["trigger", "outcome"])


CLOCK_NAMES = {deadlines_pb2.DEADLINE_CLOCK_DISPATCH: "派单", deadlines_pb2.DEADLINE_CLOCK_SIGN_OFF: "签收",
               deadlines_pb2.DEADLINE_CLOCK_CONTACT: "首次联系", deadlines_pb2.DEADLINE_CLOCK_REPLY: "办结反馈",
               deadlines_pb2.DEADLINE_CLOCK_EXTENSION_DECISION: "延期审批",
               deadlines_pb2.DEADLINE_CLOCK_RETURN_DECISION: "退单审核"}


class EscalationFollowUps:
    """The levels wing's reactions to the case events supervision stages (``topic``: its case
    events), registered on the service's outbox in ``main``."""

    def __init__(self, commands: EscalationCommands, topic: str) -> None:
        self.commands = commands
        self.topic = topic
        self.types = EventTypes(lifecycle_pb2.CaseEvaluated, lifecycle_pb2.CaseClosed,
                                deadlines_pb2.OverdueSupervisionRaised)
        obs.at_zero(AUTOMATIC, ["evaluation", "overdue", "case_closed"], ["applied", "refused"])

    def decode(self, doc: Doc) -> Message | None:
        """The event of a staged outbox document, if it is one this follows (None: not ours)."""
        headers = {k: bytes(v).decode() for k, v in doc.get("headers", [])}
        if doc.get("topic") != self.topic or headers.get("event_type") not in self.types.by_name:
            return None
        return self.types.decode(Record(topic=doc["topic"], partition=0, offset=0, key=doc.get("key", ""),
                                        value=bytes(doc["value"]), headers=headers, timestamp_ms=0))

    async def follow(self, docs: Sequence[Doc]) -> None:
        """The outbox's follower: the events of the staged documents, in order."""
        await self.apply([m for m in map(self.decode, docs) if m is not None])

    async def apply(self, messages: Sequence[Message]) -> None:
        # The closings of the batch are looked up in ONE read (open supervision? cases merged
        # under it?) instead of two reads each: the relay publishes nothing of the batch before
        # its follow-ups are done, so each read here delays every event of the batch (a
        # 1,000-lifecycle run closes ~70 cases per relay batch). A case raised earlier in this
        # batch is read again when it closes (its new record is not in the batch's read).
        closings = [m.case.ticket_id for m in messages if isinstance(m, lifecycle_pb2.CaseClosed) and _closing(m)]
        known = await self.commands.closing(closings) if closings else {}
        raised: set[str] = set()
        for message in messages:
            if isinstance(message, lifecycle_pb2.CaseEvaluated) and message.needs_decision:
                raised.add(message.case.ticket_id)
                await self._evaluated(message)
            elif isinstance(message, deadlines_pb2.OverdueSupervisionRaised):
                raised.add(message.ticket_id)
                await self._overdue(message)
            elif _closing(message):
                assert isinstance(message, lifecycle_pb2.CaseClosed)
                tid = message.case.ticket_id
                await self._closed(message, None if tid in raised else known.get(tid, (False, [])))

    async def _evaluated(self, m: lifecycle_pb2.CaseEvaluated) -> None:
        e, tid = m.evaluation, m.case.ticket_id
        poor = "未解决" if e.resolution == case_pb2.RESOLUTION_UNRESOLVED else "不满意"
        reason = f"回访{poor}（{e.comment}）" if e.comment else f"回访{poor}"
        try:
            await self.commands.raise_supervision(tid, 1, reason[:500], pb.dt(m.occurred_at),
                                                  key=f"{tid}/supervision/L1/evaluation/{e.evaluation_id}")
            AUTOMATIC.labels("evaluation", "applied").inc()
        except DomainError as exc:
            AUTOMATIC.labels("evaluation", "refused").inc()
            log.warning("level 1 supervision refused", ticket_id=tid, reason=exc.message)

    async def _overdue(self, m: deadlines_pb2.OverdueSupervisionRaised) -> None:
        tid = m.ticket_id
        clock = CLOCK_NAMES.get(m.clock, "时限")
        try:
            await self.commands.raise_supervision(tid, 1, f"超期：{clock}", pb.dt(m.raised_at),
                                                  key=f"{tid}/supervision/L1/overdue")
            AUTOMATIC.labels("overdue", "applied").inc()
        except DomainError as exc:
            AUTOMATIC.labels("overdue", "refused").inc()
            log.warning("level 1 supervision refused", ticket_id=tid, reason=exc.message)

    async def _closed(self, m: lifecycle_pb2.CaseClosed, known: tuple[bool, list[str]] | None) -> None:
        is_open, merged = known if known is not None else (None, None)
        try:
            await self.commands.settle(m.case, pb.dt(m.occurred_at), is_open)
            await self.commands.close_merged(m.case, pb.dt(m.occurred_at), merged)
            AUTOMATIC.labels("case_closed", "applied").inc()
        except DomainError as exc:
            AUTOMATIC.labels("case_closed", "refused").inc()
            log.warning("merged cases not closed", ticket_id=m.case.ticket_id, reason=exc.message)


def _closing(message: Message) -> bool:
    """A case closed for good (not re-dispatched): its supervision settles, its merged cases close."""
    return isinstance(message, lifecycle_pb2.CaseClosed) and message.closure != case_pb2.CLOSURE_REDISPATCHED
