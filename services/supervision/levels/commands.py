"""The levels wing's command side (督办 levels, meetings, merges, 屡办不成 lists, whistles, letters
and talks): every write is a typed command (:class:`RaiseSupervision`, :class:`BlowWhistle`,
:class:`SendLetter`, ...) through the service's message bus (hotline/bus.py) to its one handler
(:class:`LevelHandlers`, registered in main by :func:`register`), with the pure decisions of
escalation.py, deputy_escalation.py, merging.py, recurring.py, whistles.py, circulation.py and
talks.py. The adapters (escalation_store.EscalationCommands, circulation_store.Circulation,
the follow-ups and the deputies' consumer) build the command and ``bus.handle`` it.

A command's ``at`` is the time it acts at (a follow-up's: its trigger's time); None: the clock's now.
Circulation's bodies (a letter, a talk) are the JSON the route received (a dict), not a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from hotline.bus import MessageBus, Request
from hotline.clock import Clock
from hotline.commands import Command, Decision, Invalid
from hotline.mongo import Doc
from hotline.uow import Work
from hotline.v1 import deputy_pb2, events_pb2
from hotline.v1 import supervision_pb2 as sv
from services.supervision.cases.store import CaseClocks
from services.supervision.levels import circulation as circ
from services.supervision.levels import deputy_escalation, merging, recurring, talks
from services.supervision.levels import escalation as esc
from services.supervision.levels import whistles as wh
from services.supervision.levels.repositories import (
    LetterRepository,
    MergeRepository,
    RecurringRepository,
    RegisterRepository,
    SupervisedRepository,
    TalkRepository,
    WhistleRepository,
)
from services.supervision.levels.whistle_clocks import WhistleClocks

# the 屡办不成 items of a month (recurring.find over the stored ticket facts and cases)
FindRecurring = Callable[[str], Awaitable[Sequence[sv.RecurringItem]]]
KnownUnit = Callable[[str], bool]


@dataclass(frozen=True)
class LevelCommand(Request[Any]):
    """A levels command; ``at``: when it acts (None: now)."""

    at: datetime | None = None

    @property
    def target(self) -> str:
        return str(getattr(self.body, "ticket_id", ""))

    @property
    def reason(self) -> str:
        return str(getattr(self.body, "reason", ""))[:500]


class SupervisionCommand(LevelCommand):
    """A command on a case's supervision (escalation.decide)."""


class RaiseSupervision(SupervisionCommand, message=sv.RaiseSupervisionRequest):
    """督办: raise a level (1 system, 2 letter, 3 conduct supervisors, 4 leader)"""


class CloseSupervision(SupervisionCommand, message=sv.CloseSupervisionRequest):
    """督办办结: close a level with its outcome"""


class RecordVisit(SupervisionCommand, message=sv.RecordVisitRequest):
    """明察暗访记录 on an open level 3"""


class SetJointSupervision(SupervisionCommand, message=sv.SetJointSupervisionRequest):
    """联合纪委监委督办 flag"""


class ScheduleMeeting(SupervisionCommand, message=sv.ScheduleMeetingRequest):
    """有请诉求人到场"""


class RecordMeeting(SupervisionCommand, message=sv.RecordMeetingRequest):
    """到场会商结果"""


class SettleSupervision(LevelCommand, message=events_pb2.Case):
    """The case closed: its open supervision closes with it (a follow-up of CaseClosed)"""

    @property
    def reason(self) -> str:
        return ""


class DeputyEscalation(LevelCommand, message=deputy_pb2.DeputyEscalated):
    """代表提请督办: level 1 on the deputy's case"""

    @property
    def reason(self) -> str:
        return str(self.body.comment)[:500] or deputy_escalation.REASON


class MergeTickets(LevelCommand, message=sv.MergeTicketsRequest):
    """并单: the office merges tickets under a parent case"""

    @property
    def target(self) -> str:
        return str(self.body.parent_ticket_id)


class GenerateRecurringList(LevelCommand, message=sv.GenerateRecurringListRequest):
    """屡办不成: the month's recurring unresolved problems on its list"""

    @property
    def target(self) -> str:
        return str(self.body.month)

    @property
    def reason(self) -> str:
        return ""


class ResolveRecurringItem(LevelCommand, message=sv.ResolveRecurringItemRequest):
    """屡办不成: an item's outcome"""

    @property
    def target(self) -> str:
        return str(self.body.item_id).partition("/")[0]

    @property
    def reason(self) -> str:
        return str(self.body.outcome)[:500]


class WhistleCommand(LevelCommand):
    """吹哨报到 (whistles.decide); a new whistle's id is the caller's and the key's."""

    @property
    def target(self) -> str:
        if isinstance(self.body, sv.BlowWhistleRequest):
            return wh.whistle_id(self.actor, self.idempotency_key)
        return str(getattr(self.body, "whistle_id", ""))

    @property
    def reason(self) -> str:
        return ""


class BlowWhistle(WhistleCommand, message=sv.BlowWhistleRequest):
    """吹哨: a street office summons departments"""


class ReportIn(WhistleCommand, message=sv.ReportInRequest):
    """报到: a summoned unit reports in"""


class CloseWhistle(WhistleCommand, message=sv.CloseWhistleRequest):
    """The street office records the whistle's outcome"""


@dataclass(frozen=True)
class CirculationCommand(LevelCommand):
    """公文流转 and 约谈: the body is the route's JSON (a dict); ``ref`` the letter's or talk's id."""

    ref: str = ""

    @property
    def target(self) -> str:
        return self.ref

    @property
    def reason(self) -> str:
        return ""


class SendLetter(CirculationCommand, name="send_letter"):
    """发函 (numbered in the year's register)"""


class AcknowledgeLetter(CirculationCommand, name="acknowledge_letter"):
    """签收 of a letter"""


class AnswerLetter(CirculationCommand, name="answer_letter"):
    """回复 to a letter"""


class RecordTalk(CirculationCommand, name="record_talk"):
    """约谈记录"""


class RecordTalkFollowUp(CirculationCommand, name="record_talk_follow_up"):
    """整改跟踪 after a talk"""


SUPERVISION: tuple[type[SupervisionCommand], ...] = (
    RaiseSupervision, CloseSupervision, RecordVisit, SetJointSupervision, ScheduleMeeting, RecordMeeting)
WHISTLE: tuple[type[WhistleCommand], ...] = (BlowWhistle, ReportIn, CloseWhistle)
BY_NAME: dict[str, type[LevelCommand]] = {t.name: t for t in (*SUPERVISION, *WHISTLE)}


class LevelHandlers:
    """The one handler of each levels command (see :func:`register`)."""

    def __init__(self, db: AsyncDatabase[Doc], rules: esc.Rules, clock: Clock, topic: str,
                 unit_type: wh.UnitType, clocks: CaseClocks | None = None,
                 whistle_clocks: WhistleClocks | None = None, find_recurring: FindRecurring | None = None,
                 known_unit: KnownUnit | None = None) -> None:
        self.db = db  # the repositories' (the in-memory unit of work never reads them)
        self.rules, self.clock, self.topic, self.unit_type = rules, clock, topic, unit_type
        self.clocks, self.whistle_clocks = clocks, whistle_clocks
        self.find_recurring = find_recurring
        self.known_unit: KnownUnit = known_unit or (lambda _: True)

    def _now(self, command: LevelCommand) -> datetime:
        return command.at or self.clock.now()

    def _work(self, command: LevelCommand, repo: Any, decide: Callable[[Any], Decision[Any]]) -> Work[Any]:
        target = command.target
        if not target:
            what = "whistle_id" if isinstance(command, WhistleCommand) else \
                "ticket_id" if not isinstance(command, CirculationCommand) else "the id"
            raise Invalid(f"{what} is required")
        envelope = Command(command.name, target, command.actor, command.idempotency_key, command.reason)
        return Work(envelope, repo, decide, self.topic)

    def _supervised(self) -> SupervisedRepository:
        return SupervisedRepository(self.db, self.clocks)

    async def supervision(self, command: SupervisionCommand) -> Work[Any]:
        now = self._now(command)
        return self._work(command, self._supervised(),
                          lambda s: esc.decide(s, command.body, command.actor, now, self.rules))

    async def settle(self, command: SettleSupervision) -> Work[Any]:
        now = self._now(command)
        return self._work(command, self._supervised(), lambda s: esc.settle(s, command.body, now))

    async def deputy_escalation(self, command: DeputyEscalation) -> Work[Any]:
        now = self._now(command)
        return self._work(command, self._supervised(),
                          lambda s: deputy_escalation.decide(s, command.body, now, self.rules))

    async def merge(self, command: MergeTickets) -> Work[Any]:
        now = self._now(command)
        children = list(command.body.ticket_ids)[:merging.MAX_CHILDREN + 1]
        repo = MergeRepository(self.db, children, self.clocks)
        return self._work(command, repo, lambda s: merging.merge(s, command.body, command.actor, now))

    async def generate_recurring(self, command: GenerateRecurringList) -> Work[Any]:
        month = command.target
        recurring.month_span(month, self.rules.tz)  # validates
        if self.find_recurring is None:
            raise RuntimeError("generating a 屡办不成 list needs find_recurring")
        found = await self.find_recurring(month)
        now = self._now(command)
        return self._work(command, RecurringRepository(self.db),
                          lambda s: recurring.generate(s, month, found, now))

    async def resolve_recurring(self, command: ResolveRecurringItem) -> Work[Any]:
        now = self._now(command)
        return self._work(command, RecurringRepository(self.db),
                          lambda s: recurring.resolve(s, command.body, command.actor, now))

    async def whistle(self, command: WhistleCommand) -> Work[Any]:
        now, wid = self._now(command), command.target
        repo = WhistleRepository(self.db, self.whistle_clocks)
        return self._work(command, repo,
                          lambda s: wh.decide(s, wid, command.body, command.actor, now, self.rules, self.unit_type))

    async def send_letter(self, command: SendLetter) -> Work[Any]:
        now = self._now(command)
        repo = RegisterRepository(self.db, now.astimezone(self.rules.tz).year)

        def decide(state: circ.Registered | None) -> Decision[circ.Registered]:
            if state is None:  # the in-memory unit of work: no register yet
                state = circ.Registered(None, repo.year, 1)
            return circ.send(state, command.body, command.actor, now, self.rules.tz, self.known_unit)
        return self._work(command, repo, decide)

    async def acknowledge_letter(self, command: AcknowledgeLetter) -> Work[Any]:
        now = self._now(command)
        return self._work(command, LetterRepository(self.db),
                          lambda s: circ.acknowledge(s, command.ref, command.actor, now))

    async def answer_letter(self, command: AnswerLetter) -> Work[Any]:
        now = self._now(command)
        return self._work(command, LetterRepository(self.db),
                          lambda s: circ.answer(s, command.ref, command.body, command.actor, now))

    async def record_talk(self, command: RecordTalk) -> Work[Any]:
        now = self._now(command)
        return self._work(command, TalkRepository(self.db),
                          lambda s: talks.record(s, command.body, command.actor, now, self.known_unit))

    async def talk_follow_up(self, command: RecordTalkFollowUp) -> Work[Any]:
        now = self._now(command)
        return self._work(command, TalkRepository(self.db),
                          lambda s: talks.follow_up(s, command.ref, command.body, command.actor, now))


def register(bus: MessageBus, handlers: LevelHandlers) -> None:
    """The levels wing's commands, one handler each (called from main)."""
    for command_type in SUPERVISION:
        bus.register(command_type, handlers.supervision)
    for whistle_type in WHISTLE:
        bus.register(whistle_type, handlers.whistle)
    bus.register(SettleSupervision, handlers.settle)
    bus.register(DeputyEscalation, handlers.deputy_escalation)
    bus.register(MergeTickets, handlers.merge)
    bus.register(GenerateRecurringList, handlers.generate_recurring)
    bus.register(ResolveRecurringItem, handlers.resolve_recurring)
    bus.register(SendLetter, handlers.send_letter)
    bus.register(AcknowledgeLetter, handlers.acknowledge_letter)
    bus.register(AnswerLetter, handlers.answer_letter)
    bus.register(RecordTalk, handlers.record_talk)
    bus.register(RecordTalkFollowUp, handlers.talk_follow_up)
