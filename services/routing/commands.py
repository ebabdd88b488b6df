"""The desk's command side: every office decision (and every return routing takes in) is a kit
Command run through the CommandBus with the pure decisions of services/routing/desk.py: one
transaction saves the ticket's desk record and assignment (and a list version, and the
labelled examples), stages the events in the outbox and writes the audit entry.

:class:`LiveRouter` holds the router of the current list version; after a list change (an item
upserted, a joint review's change) the router is rebuilt, here at once and in every replica by
:meth:`DeskCommands.refresh` (run in the background), so the next ticket routes by the new list.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge

from hotline.auth import Principal
from hotline.clock import Clock
from hotline.commands import Command, CommandBus, Decision, Illegal
from hotline.logging import get_logger
from hotline.v1 import events_pb2, lifecycle_pb2, routing_pb2
from services.routing import desk
from services.routing.core import Directory, Router
from services.routing.desk import AddWorkingDays
from services.routing.responsibility import ListVersion
from services.routing.store import DeskStore, ResponsibilityStore

log = get_logger(__name__)
QUEUE_LENGTH = Gauge("hotline_dispatch_queue_length", "Tickets waiting for manual dispatch (人工派单).")
QUEUE_OLDEST = Gauge("hotline_dispatch_queue_oldest_age_seconds",
                     "Age of the oldest ticket waiting for manual dispatch, from its arrival in the district.")
DESK_COMMANDS = Counter("hotline_routing_desk_commands_total", "Desk commands applied, by command.", ["command"])
COMMAND_NAMES = ("dispatch", "receive_return", "decide_return", "recategorize", "sub_dispatch",
                 "open_joint_review", "decide_joint_review", "upsert_list_item")
REFRESH_SECONDS = 2.0


class LiveRouter:
    """The router of the current list version, shared by the consumer and the adapters."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def rebuild(self, listing: Any) -> None:
        if listing.list_version != self.router.list_version:
            self.router = Router.from_listing(self.router.directory, listing, self.router.label_map)
            log.info("router rebuilt", list_version=self.router.list_version, items=len(self.router.rules))


class DeskCommands:
    def __init__(self, bus: CommandBus, store: DeskStore, lists: ResponsibilityStore, live: LiveRouter,
                 clock: Clock, topic: str, add_working_days: AddWorkingDays) -> None:
        self.bus, self.store, self.lists, self.live = bus, store, lists, live
        self.clock, self.topic, self.add_working_days = clock, topic, add_working_days
        self._oldest: datetime | None = None
        QUEUE_OLDEST.set_function(self._oldest_age)
        for name in COMMAND_NAMES:
            DESK_COMMANDS.labels(name)

    @property
    def directory(self) -> Directory:
        return self.live.router.directory

    async def _run(self, name: str, target: str, actor: Principal, key: str, reason: str, decide: Any) -> Any:
        command = Command(name, target, actor, key, reason[:500])
        answer = await self.bus.run(command, self.store, decide, self.topic)
        DESK_COMMANDS.labels(name).inc()
        return answer

    async def dispatch(self, request: routing_pb2.DispatchRequest, actor: Principal,
                       key: str) -> events_pb2.Assignment:
        router = self.live.router
        answer: events_pb2.Assignment = await self._run("dispatch", request.ticket_id, actor, key, request.reason,
                                 lambda s: desk.dispatch(s, request, router, self.clock.now()))
        await self.update_gauges()
        return answer

    async def receive_return(self, event: lifecycle_pb2.ReturnRequested, actor: Principal,
                             key: str) -> routing_pb2.PendingReturn:
        answer: routing_pb2.PendingReturn = await self._run(
            "receive_return", event.case.ticket_id, actor, key, event.reason,
            lambda s: desk.receive_return(s, event, self.clock.now()))
        return answer

    async def decide_return(self, request: routing_pb2.DecideReturnRequest, actor: Principal,
                            key: str) -> routing_pb2.PendingReturn:
        router = self.live.router
        answer: routing_pb2.PendingReturn = await self._run(
            "decide_return", request.ticket_id, actor, key, request.reason,
            lambda s: desk.decide_return(s, request, router, actor, self.clock.now()))
        return answer

    async def recategorize(self, request: routing_pb2.RecategorizeRequest, actor: Principal,
                           key: str) -> events_pb2.Assignment:
        router = self.live.router
        answer: events_pb2.Assignment = await self._run("recategorize", request.ticket_id, actor, key, request.reason,
                                 lambda s: desk.recategorize(s, request, router, self.clock.now()))
        await self.update_gauges()
        return answer

    async def sub_dispatch(self, request: routing_pb2.SubDispatchRequest, actor: Principal,
                           key: str) -> routing_pb2.SubDispatched:
        router = self.live.router
        answer: routing_pb2.SubDispatched = await self._run(
            "sub_dispatch", request.ticket_id, actor, key, request.reason,
            lambda s: desk.sub_dispatch(s, request, router, actor, self.clock.now(), self.add_working_days))
        return answer

    async def open_review(self, request: routing_pb2.OpenJointReviewRequest, actor: Principal,
                          key: str) -> routing_pb2.JointReview:
        router = self.live.router
        answer: routing_pb2.JointReview = await self._run(
            "open_joint_review", request.ticket_id, actor, key, request.reason,
            lambda s: desk.open_review(s, request, router, self.clock.now()))
        return answer

    async def decide_review(self, request: routing_pb2.DecideJointReviewRequest, actor: Principal,
                            key: str) -> routing_pb2.JointReview:
        router = self.live.router
        current = await self.lists.load()
        if current is None:
            raise Illegal("the list is not loaded yet")
        answer: routing_pb2.JointReview = await self._run(
            "decide_joint_review", request.ticket_id, actor, key, request.reason,
            lambda s: desk.decide_review(s, request, router, current.listing, actor, self.clock.now()))
        await self.refresh()
        return answer

    async def upsert_item(self, request: routing_pb2.UpsertListItemRequest, actor: Principal,
                          key: str) -> routing_pb2.ListItem:
        units = self.directory.units

        def decide(current: ListVersion | None) -> Decision[ListVersion]:
            return desk.upsert_item(current, request, units, actor, self.clock.now())

        command = Command("upsert_list_item", "current", actor, key, request.reason[:500])
        answer: routing_pb2.ListItem = await self.bus.run(command, self.lists, decide, self.topic)
        DESK_COMMANDS.labels("upsert_list_item").inc()
        await self.refresh()
        return answer

    async def refresh(self) -> None:
        """Rebuild the router when the stored list moved on (a change here or in another replica)."""
        current = await self.lists.load()
        if current is not None:
            self.live.rebuild(current.listing)

    async def update_gauges(self) -> None:
        length, self._oldest = await self.store.queue_gauges()  # (no store round trip: the desk's ledger)
        QUEUE_LENGTH.set(length)

    def _oldest_age(self) -> float:
        return 0.0 if self._oldest is None else max(0.0, (self.clock.now() - self._oldest).total_seconds())

    async def background(self) -> None:
        """Keep the router on the stored list and the queue gauges current."""
        while True:
            try:
                await self.refresh()
                await self.update_gauges()
            except Exception as exc:  # noqa: BLE001 (the store may be briefly away; try again)
                log.warning("desk refresh failed", error=str(exc))
            await asyncio.sleep(REFRESH_SECONDS)

