"""Supervision's composition root (run: ``hotline serve supervision``)."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from hotline.clock import Clock
from hotline.kafka import ConsumerSpec
from hotline.logging import get_logger
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.timers import Timers
from hotline.v1 import services_pb2_grpc
from services.supervision import store as store_module
from services.supervision.api import SupervisionGrpc, http_routes
from services.supervision.calendar import WorkCalendar
from services.supervision.handlers import CALENDAR_AHEAD, CaseOpening, DeadlineAlarms
from services.supervision.sla import parse_policy

NAME = "supervision"
log = get_logger(__name__)


def check_calendar(calendar: WorkCalendar, clock: Clock, warn_days: int) -> int:
    """Start-up check: how far ahead the working-day calendar is known; loud when too short."""
    ahead = calendar.known_days_ahead(clock.now())
    CALENDAR_AHEAD.set_function(lambda: calendar.known_days_ahead(clock.now()))
    if ahead < warn_days:
        log.warning("WORKING-DAY CALENDAR RUNS OUT: deadlines past its last known day count weekdays and the "
                    "statutory holidays only; enter the State Council's holiday notice in the calendar file",
                    known_until=calendar.known_until().isoformat(), days_ahead=ahead, threshold=warn_days,
                    calendar_file=str(calendar.source))
    else:
        log.info("working-day calendar", known_until=calendar.known_until().isoformat(), days_ahead=ahead)
    return ahead


async def build(rt: Runtime) -> Service:
    sla = rt.settings.sla
    calendar = WorkCalendar(sla.calendar_file, ZoneInfo(rt.settings.timezone))
    check_calendar(calendar, rt.clock, sla.calendar_warn_days)
    store = store_module.CaseStore(rt.db)
    policies = store_module.PolicyStore(rt.db, rt.clock, sla.policy_refresh_seconds)
    policy = await policies.seed(parse_policy(json.loads(sla.policy_file.read_text("utf-8"))))
    log.info("SLA policy", version=policy.version, lanes=[lane.name for lane in policy.lanes])
    out_topic = rt.topic("case_events")
    timers = Timers(rt.db, rt.outbox, rt.clock, DeadlineAlarms(store, out_topic), collection="cases",
                    batch=sla.scan_batch, embedded=True)
    app = http_app("supervision", "Case clocks, deadlines and supervision of handling units (督办)")
    app.include_router(http_routes(store))
    handler = CaseOpening(store, timers, policies, calendar, out_topic, rt.clock)

    async def deadline_timers() -> None:
        await timers.run_forever(sla.scan_seconds)

    return Service(
        http=app,
        grpc=[GrpcApi(SupervisionGrpc(store), services_pb2_grpc.add_SupervisionServiceServicer_to_server,
                      "hotline.v1.SupervisionService")],
        consumers=[ConsumerSpec([rt.topic("assignment_events")], rt.group(), handler)],
        indexes=store_module.INDEXES,
        background=[deadline_timers],
    )
