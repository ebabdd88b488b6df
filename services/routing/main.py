"""Routing's composition root (run: ``hotline serve routing``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from hotline.bus import MessageBus
from hotline.calendar import WorkCalendar
from hotline.directory import DIRECTORY_FILE
from hotline.kafka import ConsumerSpec
from hotline.logging import get_logger
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.settings import Settings
from hotline.v1 import services_pb2_grpc
from services.routing import store as store_module
from services.routing.api import RoutingGrpc, http_routes
from services.routing.commands import DeskCommands, DeskHandlers, LiveRouter, register
from services.routing.core import DATA_DIR, Directory, Prediction, Router
from services.routing.handlers import Classify, ReturnIntake, TicketRouting, queue_entry_of
from services.routing.responsibility import load_listing
from services.routing.routed import RoutedTickets, RoutingHandlers
from services.routing.routed import register as register_route

NAME = "routing"
log = get_logger(__name__)


def load_classifier(settings: Settings) -> Classify | None:
    """The trained ticket classifier, if one was trained into settings.model_dir."""
    if not (settings.model_dir / "metadata.json").exists():
        log.info("no trained classifier; routing by city category, keywords and street", path=str(settings.model_dir))
        return None
    from services.routing.classifier import load_model

    model = load_model(settings.model_dir)
    log.info("classifier loaded", path=str(settings.model_dir), version=model.model_version)

    def classify(texts: Sequence[str]) -> Sequence[Prediction]:
        return model.predict_batch(list(texts))

    return classify


async def build(rt: Runtime) -> Service:
    directory = Directory.from_file(DIRECTORY_FILE)
    lists = store_module.ResponsibilityStore(rt.db)
    current = await lists.ensure(load_listing(DATA_DIR / "responsibilities.json"), f"system:{NAME}", rt.clock.now())
    live = LiveRouter(Router.from_listing(directory, current.listing))
    log.info("responsibility list loaded", list_version=live.router.list_version, items=len(live.router.rules))
    store = store_module.AssignmentStore(rt.db)
    desk = store_module.DeskStore(rt.db, lists)
    calendar = WorkCalendar(rt.settings.sla.calendar_file, ZoneInfo(rt.settings.timezone))

    def add_working_days(at: datetime, days: int) -> datetime:  # the rule for periods (24:00 of the N-th day)
        return calendar.working_days_end(at, days)

    bus = MessageBus(rt.commands.uow)  # the desk commands' one handler each (commands.py)
    register(bus, DeskHandlers(desk, lists, live, rt.clock, rt.topic("assignment_events"), add_working_days))
    commands = DeskCommands(bus, desk, lists, live, rt.clock)
    classify = load_classifier(rt.settings)
    app = http_app("routing", "Dispatch of tickets to handling units (派单): responsibility list, units, gazetteer, "
                              "the office's desk (queue, returns, joint review, recategorisation)")
    handler = TicketRouting(live, store, rt.topic("assignment_events"), classify, desk, commands, bus)
    register_route(bus, RoutingHandlers(  # RouteTicket, the consumed tickets' one handler (routed.py)
        RoutedTickets(rt.db), lambda: live.router, rt.clock, rt.topic("assignment_events"),
        lambda t, p, now: queue_entry_of(live.router, t, p, now), handler.counted))
    return Service(
        http=app,
        routes=[http_routes(live, store, classify, desk, commands)],
        grpc=[GrpcApi(RoutingGrpc(live, store, classify, desk, commands),
                      services_pb2_grpc.add_RoutingServiceServicer_to_server, "hotline.v1.RoutingService")],
        consumers=[ConsumerSpec([rt.topic("ticket_events")], rt.group(), handler),
                   ConsumerSpec([rt.topic("case_events")], rt.group("returns"), ReturnIntake(commands))],
        indexes=store_module.INDEXES,
        background=[commands.background],
    )
