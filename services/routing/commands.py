"""The desk's command side: every office decision (and every return routing takes in) is a typed
command (:class:`Dispatch`, :class:`ReceiveReturn`, ...) through the service's message bus
(hotline/bus.py) to its one handler (:class:`DeskHandlers`, registered in main by
:func:`register`), with the pure decisions of services/routing/desk.py: one transaction saves the
ticket's desk record and assignment (and a list version, and the labelled examples), stages
the events in the outbox and writes the audit entry. :class:`DeskCommands` is the adapters'
side: build the command, ``bus.handle``, then the gauges and the router's refresh.

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
from hotline.bus import MessageBus, Request
from hotline.clock import Clock
from hotline.commands import Command, Decision, Illegal
from hotline.logging import get_logger
from hotline.uow import Work
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


class DeskCommand(Request[Any]):
    """A desk command: its body is the request (or the case event) it acts on."""

    @property
    def target(self) -> str:
        body = self.body
        return str(body.case.ticket_id if isinstance(body, lifecycle_pb2.ReturnRequested) else body.ticket_id)

    @property
    def reason(self) -> str:
        return str(self.body.reason)[:500]


class Dispatch(DeskCommand, message=routing_pb2.DispatchRequest):
    """人工派单: the office dispatches a queued ticket."""


class ReceiveReturn(DeskCommand, message=lifecycle_pb2.ReturnRequested):
    """A unit asked to return its ticket (退单): kept for the office."""


class DecideReturn(DeskCommand, message=routing_pb2.DecideReturnRequest):
    """退单审核: the office keeps the ticket with the unit or re-dispatches it."""


class Recategorize(DeskCommand, message=routing_pb2.RecategorizeRequest):
    """改派 by category."""


class SubDispatch(DeskCommand, message=routing_pb2.SubDispatchRequest):
    """二次派单 to a unit's sub-unit."""


class OpenJointReview(DeskCommand, message=routing_pb2.OpenJointReviewRequest):
    """会商: a disputed responsibility goes to a joint review."""


class DecideJointReview(DeskCommand, message=routing_pb2.DecideJointReviewRequest):
    """会商结论 (may change the responsibility list)."""


class UpsertListItem(DeskCommand, message=routing_pb2.UpsertListItemRequest):
    """权责清单: an item added or changed (a new list version)."""

    @property
    def target(self) -> str:
        return "current"


class DeskHandlers:
    """The one handler of each desk command (see :func:`register`)."""

    def __init__(self, store: DeskStore, lists: ResponsibilityStore, live: LiveRouter, clock: Clock, topic: str,
                 add_working_days: AddWorkingDays) -> None:
        self.store, self.lists, self.live = store, lists, live
        self.clock, self.topic, self.add_working_days = clock, topic, add_working_days

    def _work(self, command: DeskCommand, decide: Any, repo: Any = None) -> Work[Any]:
        envelope = Command(command.name, command.target, command.actor, command.idempotency_key, command.reason)
        return Work(envelope, repo if repo is not None else self.store, decide, self.topic,
                    done=lambda _: DESK_COMMANDS.labels(command.name).inc())

    async def dispatch(self, command: Dispatch) -> Work[Any]:
        router = self.live.router
        return self._work(command, lambda s: desk.dispatch(s, command.body, router, self.clock.now()))

    async def receive_return(self, command: ReceiveReturn) -> Work[Any]:
        return self._work(command, lambda s: desk.receive_return(s, command.body, self.clock.now()))

    async def decide_return(self, command: DecideReturn) -> Work[Any]:
        router = self.live.router
        return self._work(command, lambda s: desk.decide_return(s, command.body, router, command.actor,
                                                                self.clock.now()))

    async def recategorize(self, command: Recategorize) -> Work[Any]:
        router = self.live.router
        return self._work(command, lambda s: desk.recategorize(s, command.body, router, self.clock.now()))

    async def sub_dispatch(self, command: SubDispatch) -> Work[Any]:
        router = self.live.router
        return self._work(command, lambda s: desk.sub_dispatch(s, command.body, router, command.actor,
                                                               self.clock.now(), self.add_working_days))

    async def open_review(self, command: OpenJointReview) -> Work[Any]:
        router = self.live.router
        return self._work(command, lambda s: desk.open_review(s, command.body, router, self.clock.now()))

    async def decide_review(self, command: DecideJointReview) -> Work[Any]:
        router = self.live.router
        current = await self.lists.load()
        if current is None:
            raise Illegal("the list is not loaded yet")
        return self._work(command, lambda s: desk.decide_review(s, command.body, router, current.listing,
                                                                command.actor, self.clock.now()))

    async def upsert_item(self, command: UpsertListItem) -> Work[Any]:
        units = self.live.router.directory.units

        def decide(current: ListVersion | None) -> Decision[ListVersion]:
            return desk.upsert_item(current, command.body, units, command.actor, self.clock.now())
        return self._work(command, decide, self.lists)


def register(bus: MessageBus, handlers: DeskHandlers) -> None:
    """Routing's desk commands, one handler each (called from main)."""
    bus.register(Dispatch, handlers.dispatch)
    bus.register(ReceiveReturn, handlers.receive_return)
    bus.register(DecideReturn, handlers.decide_return)
    bus.register(Recategorize, handlers.recategorize)
    bus.register(SubDispatch, handlers.sub_dispatch)
    bus.register(OpenJointReview, handlers.open_review)
    bus.register(DecideJointReview, handlers.decide_review)
    bus.register(UpsertListItem, handlers.upsert_item)


class DeskCommands:
    """The adapters' side of the desk: each method builds the command, ``bus.handle``, and keeps
    the queue gauges and the router current."""

    def __init__(self, bus: MessageBus, store: DeskStore, lists: ResponsibilityStore, live: LiveRouter,
                 clock: Clock) -> None:
        self.bus, self.store, self.lists, self.live, self.clock = bus, store, lists, live, clock
        self._oldest: datetime | None = None
        QUEUE_OLDEST.set_function(self._oldest_age)
        for name in COMMAND_NAMES:
            DESK_COMMANDS.labels(name)

    @property
    def directory(self) -> Directory:
        return self.live.router.directory

    async def dispatch(self, request: routing_pb2.DispatchRequest, actor: Principal,
                       key: str) -> events_pb2.Assignment:
        answer: events_pb2.Assignment = await self.bus.handle(Dispatch(request, actor, key))
        await self.update_gauges()
        return answer

    async def receive_return(self, event: lifecycle_pb2.ReturnRequested, actor: Principal,
                             key: str) -> routing_pb2.PendingReturn:
        answer: routing_pb2.PendingReturn = await self.bus.handle(ReceiveReturn(event, actor, key))
        return answer

    async def decide_return(self, request: routing_pb2.DecideReturnRequest, actor: Principal,
                            key: str) -> routing_pb2.PendingReturn:
        answer: routing_pb2.PendingReturn = await self.bus.handle(DecideReturn(request, actor, key))
        return answer

    async def recategorize(self, request: routing_pb2.RecategorizeRequest, actor: Principal,
                           key: str) -> events_pb2.Assignment:
        answer: events_pb2.Assignment = await self.bus.handle(Recategorize(request, actor, key))
        await self.update_gauges()
        return answer

    async def sub_dispatch(self, request: routing_pb2.SubDispatchRequest, actor: Principal,
                           key: str) -> routing_pb2.SubDispatched:
        answer: routing_pb2.SubDispatched = await self.bus.handle(SubDispatch(request, actor, key))
        return answer

    async def open_review(self, request: routing_pb2.OpenJointReviewRequest, actor: Principal,
                          key: str) -> routing_pb2.JointReview:
        answer: routing_pb2.JointReview = await self.bus.handle(OpenJointReview(request, actor, key))
        return answer

    async def decide_review(self, request: routing_pb2.DecideJointReviewRequest, actor: Principal,
                            key: str) -> routing_pb2.JointReview:
        answer: routing_pb2.JointReview = await self.bus.handle(DecideJointReview(request, actor, key))
        await self.refresh()
        return answer

    async def upsert_item(self, request: routing_pb2.UpsertListItemRequest, actor: Principal,
                          key: str) -> routing_pb2.ListItem:
        answer: routing_pb2.ListItem = await self.bus.handle(UpsertListItem(request, actor, key))
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

