"""Every command handler of deputy liaison (services/deputy_liaison/commands.py) through the bus
with the in-memory unit of work: no Kafka, no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.clock import ManualClock
from hotline.commands import DomainError
from hotline.policy import Role
from hotline.uow import InMemoryUnitOfWork
from hotline.v1 import deputy_pb2, events_pb2, services_pb2, ticket_pb2
from services.deputy_liaison import commands as lc
from services.deputy_liaison import core
from services.deputy_liaison.store import DeputyStore

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
ADMIN = Principal("admin", Role.ADMIN)
OFFICE = Principal("o1", Role.OFFICE)
LIAISON = Principal("l1", Role.LIAISON, officer_id="LO1")
DEPUTY = Principal("d1", Role.DEPUTY, deputy_id="DE1")
TOPICS = {"deputy_submissions": "t.deputy.submissions", "deputy_events": "t.deputy.events",
          "notifications": "t.notifications"}
DE1 = {"deputy_id": "DE1", "name": "王代表", "level": "district", "street": "ST01", "community": "CM0101",
       "contact_channel": "sms", "contact": "13800000000", "liaison_officer_id": "LO1"}


class NoStore:
    """The repositories' database: the in-memory unit of work never reads or writes through them."""

    def __getitem__(self, name: str) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) by an in-memory unit of work")


def environment() -> tuple[MessageBus, InMemoryUnitOfWork, ManualClock]:
    uow = InMemoryUnitOfWork("deputy_liaison")
    clock = ManualClock(NOW)
    bus = MessageBus(uow)
    lc.register(bus, lc.LiaisonHandlers(DeputyStore(NoStore()), TOPICS, clock))  # type: ignore[arg-type]
    return bus, uow, clock


def actions(uow: InMemoryUnitOfWork) -> list[str]:
    return [e["action"] for e in uow.audit]


async def test_every_liaison_command_type_has_its_one_handler() -> None:
    bus, _, clock = environment()
    assert set(bus.handlers) == set(lc.COMMANDS)
    with pytest.raises(ValueError, match="one handler per command type"):
        lc.register(bus, lc.LiaisonHandlers(DeputyStore(NoStore()), TOPICS, clock))  # type: ignore[arg-type]
    assert lc.InviteToWhistleMeeting.name == "invite_to_whistle_meeting"
    with pytest.raises(DomainError) as err:  # a command names its target
        await bus.handle(lc.RegisterDeputy(DE1, ADMIN, "k"))
    assert err.value.code == "invalid_argument"


async def test_the_registry_a_deputy_an_officer_and_an_import() -> None:
    bus, uow, _ = environment()
    assert (await bus.handle(lc.RegisterDeputy(DE1, LIAISON, "r1", ref="DE1")))["deputy_id"] == "DE1"
    assert uow.state("deputy", "DE1") == DE1
    with pytest.raises(DomainError) as err:
        await bus.handle(lc.RegisterDeputy(DE1, LIAISON, "r2", ref="DE1"))
    assert err.value.code == "already_exists"
    assert await bus.handle(lc.RegisterDeputy(DE1, LIAISON, "r1", ref="DE1")) == {"deputy_id": "DE1",
                                                                                  "message": "登记成功"}  # a retry
    officer = {"officer_id": "LO1", "name": "李联络员", "street": "ST01"}
    await bus.handle(lc.RegisterLiaisonOfficer(officer, ADMIN, "o1", ref="LO1"))
    assert uow.state("liaison_officer", "LO1") == officer
    batch = {"import_id": "IMP-1", "filename": "d.csv", "deputies": [{**DE1, "deputy_id": "DE2"}], "at": NOW,
             "by": "admin"}
    answer = await bus.handle(lc.ImportDeputies(batch, ADMIN, "i1", ref="IMP-1"))
    assert answer["imported"] == 1 and uow.state("deputy_import", "IMP-1")["deputies"][0]["deputy_id"] == "DE2"
    assert actions(uow) == ["register_deputy", "register_liaison_officer", "import_deputies"]


async def test_a_submission_rated_unsatisfied_and_escalated() -> None:
    bus, uow, clock = environment()
    fields = {"deputy_id": "DE1", "title": "路灯不亮", "content": "中华路1号路灯连续一周不亮", "street": "ST01",
              "street_name": "一街道", "citizen": {"name": "张三", "phone": "13900000000", "consent": True}}
    answer = await bus.handle(lc.SubmitProblem(fields, DEPUTY, "s1", ref="S1", ticket_type=ticket_pb2.TICKET_TYPE_HELP))
    assert isinstance(answer, services_pb2.SubmitProblemResponse) and answer.ticket_id == core.ticket_id_of("S1")
    (event,) = uow.events
    assert event.topic == TOPICS["deputy_submissions"] and isinstance(event.message, events_pb2.DeputySubmission)
    assert event.message.ticket.caller.phone == "13900000000"
    with pytest.raises(DomainError) as early:  # no reply yet
        await bus.handle(lc.RateOutcome({"rating": "不满意", "comment": "没修"}, DEPUTY, "r0", ref="S1"))
    assert early.value.code == "failed_precondition"
    uow.states["submission", "S1"] = {**uow.state("submission", "S1"), "status": "replied"}  # the case replied
    clock.advance(timedelta(days=3))
    await bus.handle(lc.RateOutcome({"rating": "不满意", "comment": "没修"}, DEPUTY, "r1", ref="S1"))
    escalated = await bus.handle(lc.EscalateOutcome({"reason": "请督办"}, DEPUTY, "e1", ref="S1"))
    assert escalated["message"] == "已提请热线办督办"
    (sent,) = uow.published(deputy_pb2.DeputyEscalated)
    assert sent.comment == "请督办" and sent.occurred_at.ToDatetime(UTC) == NOW + timedelta(days=3)
    assert [e["reason"] for e in uow.audit] == ["", "没修", "请督办"]
    assert actions(uow) == ["submit_problem", "rate_outcome", "escalate_outcome"]


async def test_monthly_lists_published_an_item_adopted_and_a_deputy_invited() -> None:
    bus, uow, _ = environment()
    items = [{"item_id": "I1", "street": "ST01", "community": "CM0101", "category": "路灯"},
             {"item_id": "I2", "street": "ST02", "community": "CM0201", "category": "噪音"}]
    answer = await bus.handle(lc.PublishMonthlyLists({"items": items, "deputies": [DE1]}, OFFICE, "p1", ref="2026-11"))
    assert (answer["items"], answer["deputies"]) == (2, 1)
    (listed,) = uow.published(deputy_pb2.MonthlyListPublished)
    assert [i.item_id for i in listed.items] == ["I1"]  # the deputy's constituency only
    notified = [e.topic for e in uow.events if isinstance(e.message, deputy_pb2.DeputyNotified)]
    assert notified == [TOPICS["notifications"]]
    with pytest.raises(DomainError, match="已发布"):
        await bus.handle(lc.PublishMonthlyLists({"items": items, "deputies": [DE1]}, OFFICE, "p2", ref="2026-11"))
    # the month's lists are saved one per deputy by the month's repository; the list's repository reads one
    uow.states["monthly_list", "2026-11/DE1"] = uow.state("monthly_lists", "2026-11")["lists"][0]
    await bus.handle(lc.AdoptListItem({"deputy_id": "DE1", "item_id": "I1"}, DEPUTY, "a1", ref="2026-11/DE1"))
    assert uow.state("monthly_list", "2026-11/DE1")["adopted"] == ["I1"]
    with pytest.raises(DomainError, match="已领办"):
        await bus.handle(lc.AdoptListItem({"deputy_id": "DE1", "item_id": "I1"}, DEPUTY, "a2", ref="2026-11/DE1"))
    meeting = datetime(2026, 12, 10, 7, 0, tzinfo=UTC)
    iid = f"2026-11/DE1/I1/{meeting:%Y%m%d%H%M}"
    invitation = {"deputy_id": "DE1", "month": "2026-11", "item_id": "I1", "meeting_at": meeting, "place": "街道会议室",
                  "topic": "路灯维修", "invitation_id": iid, "list_id": "2026-11/DE1", "invited_at": NOW,
                  "invited_by": "o1"}
    await bus.handle(lc.InviteToWhistleMeeting({"invitation": invitation, "deputy": DE1}, LIAISON, "v1", ref=iid))
    (invited,) = uow.published(deputy_pb2.WhistleMeetingInvited)
    assert invited.place == "街道会议室" and uow.state("invitation", iid) == invitation
    assert actions(uow) == ["publish_monthly_lists", "adopt_list_item", "invite_to_whistle_meeting"]
