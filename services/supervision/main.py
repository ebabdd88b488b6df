"""Supervision's composition root (run: ``hotline serve supervision``)."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo

from hotline.kafka import ConsumerSpec
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.v1 import services_pb2_grpc
from services.supervision import store as store_module
from services.supervision.api import SupervisionGrpc, http_routes
from services.supervision.commands import CaseCommands
from services.supervision.core import WorkCalendar, open_case
from services.supervision.handlers import CaseInbox
from services.supervision.lifecycle import CalendarDeadlines, Limits, Policy

NAME = "supervision"


async def build(rt: Runtime) -> Service:
    store = store_module.CaseStore(rt.db)
    settings = rt.settings
    tz = ZoneInfo(settings.timezone)
    calendar = WorkCalendar()
    policy = Policy(
        deadlines=CalendarDeadlines(calendar, tz), tz=tz,
        open_case=functools.partial(open_case, limits=settings.limits, calendar=calendar, tz=tz),
        limits=Limits.of(settings.limits), results_topic=rt.topic("city_results"),
    )
    commands = CaseCommands(rt.commands, store, policy, rt.clock, rt.topic("case_events"))
    app = http_app("supervision", "Case clocks, deadlines, the case lifecycle of handling units and the "
                                  "district office's review (督办)")
    inbox = CaseInbox(store, commands, rt.topic("case_events"), rt.topic("city_evaluations"), settings.limits,
                      settings.timezone)
    return Service(
        http=app,
        routes=[http_routes(store, commands)],
        grpc=[GrpcApi(SupervisionGrpc(store, commands), services_pb2_grpc.add_SupervisionServiceServicer_to_server,
                      "hotline.v1.SupervisionService")],
        consumers=[ConsumerSpec([rt.topic("assignment_events"), rt.topic("city_evaluations")], rt.group(), inbox)],
        indexes=store_module.INDEXES,
    )
