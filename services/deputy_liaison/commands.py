"""Deputy liaison's command side: every write is a typed command (:class:`RegisterDeputy`,
:class:`SubmitProblem`, :class:`PublishMonthlyLists`, ...) through the service's message bus
(hotline/bus.py) to its one handler (:class:`LiaisonHandlers`, registered in main by
:func:`register`), with the pure decisions of core.py. The adapters (api.py ``Liaison``) check
scope, read what a command needs (a month's items, a deputy), build the command and
``bus.handle`` it.

A command's body is the document it carries (a dict: a deputy, a batch, a submission's fields),
``ref`` its target (a deputy, an import, a submission, a month, a list, an invitation), ``at``
when it acts (None: the clock's now).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotline import pb
from hotline.bus import MessageBus, Request
from hotline.clock import Clock
from hotline.commands import Command, Decision, Illegal, Invalid
from hotline.envelope import Event
from hotline.mongo import Doc
from hotline.uow import Work
from hotline.v1 import deputy_pb2, ticket_pb2
from services.deputy_liaison import core
from services.deputy_liaison.store import (
    DeputyRepository,
    DeputyStore,
    DocRepository,
    ImportRepository,
    MonthRepository,
    SubmissionRepository,
)


@dataclass(frozen=True)
class LiaisonCommand(Request[Any]):
    """A deputy liaison command: ``body`` its document, ``ref`` its target."""

    ref: str = ""
    at: datetime | None = None

    @property
    def reason(self) -> str:
        return ""


class RegisterDeputy(LiaisonCommand, name="register_deputy"):
    """代表登记 (body: the deputy)"""


class RegisterLiaisonOfficer(LiaisonCommand, name="register_liaison_officer"):
    """人大联络员登记 (body: the officer)"""


class ImportDeputies(LiaisonCommand, name="import_deputies"):
    """代表导入 (body: the batch: import_id, filename, deputies, at, by)"""


@dataclass(frozen=True)
class SubmitProblem(LiaisonCommand, name="submit_problem"):
    """代表转交群众诉求 (body: the submission's fields)"""

    ticket_type: int = ticket_pb2.TICKET_TYPE_UNSPECIFIED


class RateOutcome(LiaisonCommand, name="rate_outcome"):
    """代表评价办理结果 (body: rating, comment, resolution)"""

    @property
    def reason(self) -> str:
        return str(self.body.get("comment", ""))


class EscalateOutcome(LiaisonCommand, name="escalate_outcome"):
    """代表提请督办 (body: reason)"""

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", ""))


class PublishMonthlyLists(LiaisonCommand, name="publish_monthly_lists"):
    """每月问题清单 pushed to every deputy with a constituency (body: month, items, deputies)"""


class AdoptListItem(LiaisonCommand, name="adopt_list_item"):
    """领办 of a list item (body: deputy_id, item_id; ref: the list)"""


class InviteToWhistleMeeting(LiaisonCommand, name="invite_to_whistle_meeting"):
    """邀请代表参加吹哨会议 (body: invitation, deputy)"""


COMMANDS: tuple[type[LiaisonCommand], ...] = (
    RegisterDeputy, RegisterLiaisonOfficer, ImportDeputies, SubmitProblem, RateOutcome, EscalateOutcome,
    PublishMonthlyLists, AdoptListItem, InviteToWhistleMeeting)


class LiaisonHandlers:
    """The one handler of each deputy liaison command (see :func:`register`)."""

    def __init__(self, store: DeputyStore, topics: dict[str, str], clock: Clock,
                 list_policy: core.ListPolicy | None = None) -> None:
        self.store, self.clock = store, clock
        self.list_policy = list_policy or core.ListPolicy.load()
        self.topic, self.events_topic = topics["deputy_submissions"], topics["deputy_events"]
        self.notifications_topic = topics["notifications"]

    def notify(self, deputy: Doc, message: deputy_pb2.DeputyNotified) -> Event:
        """A notification for the deputy's channel, on the notifications topic."""
        return Event(self.notifications_topic, deputy["deputy_id"], message, message.notification_id)

    def _work(self, command: LiaisonCommand, repo: Any, decide: Callable[[Any], Decision[Any]],
              topic: str = "") -> Work[Any]:
        if not command.ref:
            raise Invalid("缺少编号")
        envelope = Command(command.name, command.ref, command.actor, command.idempotency_key, command.reason)
        return Work(envelope, repo, decide, topic or self.events_topic)

    def _now(self, command: LiaisonCommand) -> datetime:
        return command.at or self.clock.now()

    async def register_deputy(self, command: RegisterDeputy) -> Work[Any]:
        return self._work(command, DeputyRepository(self.store), lambda s: core.register(s, command.body))

    async def register_officer(self, command: RegisterLiaisonOfficer) -> Work[Any]:
        repo = DocRepository(self.store.officers, "liaison_officer", "officer_id")
        return self._work(command, repo, lambda s: core.register_officer(s, command.body))

    async def import_deputies(self, command: ImportDeputies) -> Work[Any]:
        return self._work(command, ImportRepository(self.store), lambda s: core.imported(s, command.body))

    async def submit(self, command: SubmitProblem) -> Work[Any]:
        now = self._now(command)
        return self._work(command, SubmissionRepository(self.store),
                          lambda _: core.submit(command.ref, command.body, command.ticket_type,  # type: ignore[arg-type]
                                                now), self.topic)

    async def rate(self, command: RateOutcome) -> Work[Any]:
        now, b = self._now(command), command.body
        return self._work(command, SubmissionRepository(self.store),
                          lambda s: core.rate(s, b["rating"], b.get("comment", ""), now, b.get("resolution", "")))

    async def escalate(self, command: EscalateOutcome) -> Work[Any]:
        now = self._now(command)
        return self._work(command, SubmissionRepository(self.store),
                          lambda s: core.escalate(s, command.body.get("reason", ""), now))

    async def publish_month(self, command: PublishMonthlyLists) -> Work[Any]:
        """The month's lists, one per deputy with a constituency, each with its event and notification."""
        month, items, deputies = command.ref, command.body["items"], command.body["deputies"]
        policy, now = self.list_policy, self._now(command)

        def decide(existing: Doc | None) -> Decision[Doc]:
            if existing is not None:
                raise Illegal(f"{month} 的问题清单已发布")
            lists = [{"list_id": f"{month}/{d['deputy_id']}", "month": month, "deputy_id": d["deputy_id"],
                      "street": d["street"], "community": d.get("community", ""),
                      "items": core.items_for(d, items), "adopted": [], "published_at": now,
                      "policy_version": policy.version} for d in deputies]
            events = [core.list_event(x, now) for x in lists]
            notes = [self.notify(d, core.notification(d, "", "", "monthly_list",
                                                      f"{month} 问题清单已发布，共 {len(x['items'])} 项", now,
                                                      f"{x['list_id']}/notify"))
                     for d, x in zip(deputies, lists, strict=True)]
            return Decision(state={"month": month, "lists": lists, "items": len(items),
                                   "policy_version": policy.version}, events=events,
                            outbound=notes,
                            answer={"month": month, "items": len(items), "deputies": len(lists),
                                    "policy_version": policy.version,
                                    "message": f"已向 {len(lists)} 位代表推送 {month} 问题清单"})
        return self._work(command, MonthRepository(self.store), decide)

    async def adopt(self, command: AdoptListItem) -> Work[Any]:
        deputy_id, item_id, now = command.body["deputy_id"], command.body["item_id"], self._now(command)

        def decide(existing: Doc | None) -> Decision[Doc]:
            if existing is None:
                raise Illegal("问题清单不存在")
            if item_id in existing["adopted"]:
                raise Illegal("该事项已领办")
            event = deputy_pb2.MonthlyItemAdopted(list_id=existing["list_id"], item_id=item_id, deputy_id=deputy_id,
                                                  occurred_at=pb.ts(now))
            return Decision(state={**existing, "adopted": [*existing["adopted"], item_id]}, events=[event],
                            answer={"item_id": item_id, "message": "已领办，将跟踪该事项的办理"})
        return self._work(command, DocRepository(self.store.monthly_lists, "monthly_list", "list_id"), decide)

    async def invite(self, command: InviteToWhistleMeeting) -> Work[Any]:
        doc, deputy, now = command.body["invitation"], command.body["deputy"], self._now(command)

        def decide(existing: Doc | None) -> Decision[Doc]:
            if existing is not None:
                raise Illegal("已邀请该代表参加此次会议")
            meeting_at: datetime = doc["meeting_at"]
            event = deputy_pb2.WhistleMeetingInvited(
                invitation_id=doc["invitation_id"], deputy_id=doc["deputy_id"], list_id=doc["list_id"],
                item_id=doc["item_id"], meeting_at=meeting_at.isoformat(), place=doc["place"], topic=doc["topic"],
                invited_at=pb.ts(now))
            text = f"邀请您于 {meeting_at:%Y-%m-%d %H:%M} 在{doc['place']}参加吹哨会议：{doc['topic']}"
            note = core.notification(deputy, "", "", "whistle_meeting", text, now, f"{doc['invitation_id']}/notify")
            return Decision(state=doc, events=[event], outbound=[self.notify(deputy, note)],
                            answer={"invitation_id": doc["invitation_id"], "message": "已邀请代表参加吹哨会议"})
        return self._work(command, DocRepository(self.store.invitations, "invitation", "invitation_id"), decide)


def register(bus: MessageBus, handlers: LiaisonHandlers) -> None:
    """Deputy liaison's commands, one handler each (called from main)."""
    bus.register(RegisterDeputy, handlers.register_deputy)
    bus.register(RegisterLiaisonOfficer, handlers.register_officer)
    bus.register(ImportDeputies, handlers.import_deputies)
    bus.register(SubmitProblem, handlers.submit)
    bus.register(RateOutcome, handlers.rate)
    bus.register(EscalateOutcome, handlers.escalate)
    bus.register(PublishMonthlyLists, handlers.publish_month)
    bus.register(AdoptListItem, handlers.adopt)
    bus.register(InviteToWhistleMeeting, handlers.invite)
