"""Supervision's composition root (run: ``hotline serve supervision``)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from hotline import policies
from hotline.bus import MessageBus
from hotline.calendar import WorkCalendar
from hotline.clock import Clock
from hotline.directory import DIRECTORY_FILE, Directory
from hotline.kafka import ConsumerSpec
from hotline.logging import get_logger
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.timers import Timers
from hotline.v1 import events_pb2, park_pb2_grpc, services_pb2_grpc, supervision_pb2_grpc
from services.supervision.cases import sla as sla_module
from services.supervision.cases import store as store_module
from services.supervision.cases.api import ParkGrpc, SupervisionGrpc, http_routes
from services.supervision.cases.commands import CaseCommands, CaseHandlers, CasePolicies, register
from services.supervision.cases.gauge_ledger import SlaGauges
from services.supervision.cases.handlers import CALENDAR_AHEAD, CaseInbox, DeadlineAlarms, count_opened
from services.supervision.cases.lifecycle import Limits, PeriodDeadlines, Policy
from services.supervision.cases.reminder_board import reminder_routes
from services.supervision.cases.search import COLLECTION as COLLECTION_SEARCH
from services.supervision.cases.search import INDEXES as SEARCH_INDEXES
from services.supervision.cases.search import ITEMS as SEARCH_ITEMS
from services.supervision.cases.search import CaseSearch, SearchIndexer
from services.supervision.cases.search_api import search_routes
from services.supervision.levels.circulation_store import INDEXES as CIRCULATION_INDEXES
from services.supervision.levels.circulation_store import Circulation, circulation_routes
from services.supervision.levels.commands import register as register_levels
from services.supervision.levels.deputy_escalation_handlers import DeputyEscalations
from services.supervision.levels.escalation import Rules as EscalationRules
from services.supervision.levels.escalation_api import EscalationGrpc, escalation_routes
from services.supervision.levels.escalation_handlers import EscalationFollowUps
from services.supervision.levels.escalation_store import INDEXES as ESCALATION_INDEXES
from services.supervision.levels.escalation_store import EscalationCommands, unit_types
from services.supervision.levels.repositories import WHISTLES
from services.supervision.levels.whistle_clocks import WhistleAlarms, WhistleClocks
from services.supervision.warnings import warning_policy
from services.supervision.warnings.warning_api import warning_routes
from services.supervision.warnings.warning_handlers import WarningInbox
from services.supervision.warnings.warning_store import INDEXES as WARNING_INDEXES
from services.supervision.warnings.warning_store import WarningStore
from services.supervision.warnings.warnings import RULES_FILE, Rules, street_finder

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
    settings = rt.settings
    sla = settings.sla
    tz = ZoneInfo(settings.timezone)
    calendar = WorkCalendar(sla.calendar_file, tz)
    check_calendar(calendar, rt.clock, sla.calendar_warn_days)
    store = store_module.CaseStore(rt.db)
    sla_store = policies.PolicyStore(rt.db, sla_module.POLICY_NAME)  # 时限政策: versions, the file seeds a newer one
    shipped = json.loads(sla.policy_file.read_text("utf-8"))
    await sla_store.ensure(shipped, f"system:{NAME}", rt.clock.now(), sla_module.parse_policy(shipped).version)
    sla_policies = policies.LivePolicy(sla_store, sla_module.parse_policy, sla.policy_refresh_seconds)
    current = await sla_policies.current()
    log.info("SLA policy", version=current.version, lanes=[lane.name for lane in current.lanes])
    out_topic = rt.topic("case_events")
    alarms = DeadlineAlarms(store, out_topic, rt.topic("notifications"), tz)  # and 事前提醒 to the units
    timers = store.clock_timers(rt.outbox, rt.clock, alarms, batch=sla.scan_batch)  # in the cases: store.py writes
    base = Policy(deadlines=PeriodDeadlines(calendar), tz=tz,
                  open_case=_no_policy,  # replaced per command by CasePolicies (the current policy)
                  limits=Limits.of(settings.limits), results_topic=rt.topic("city_results"))
    case_policies = CasePolicies(base, store, store_module.CaseClocks(sla_policies, calendar, timers))
    bus = MessageBus(rt.commands.uow)  # the case commands' one handler each (cases/commands.py)
    register(bus, CaseHandlers(store, case_policies, rt.clock, out_topic,
                               opened=lambda case: count_opened(case, rt.clock.now())))
    commands = CaseCommands(bus, store, case_policies, rt.clock, out_topic)
    app = http_app("supervision", "Case clocks, deadlines, the case lifecycle of handling units and the "
                                  "district office's review (督办)")
    inbox = CaseInbox(store, commands, out_topic, rt.topic("city_evaluations"))
    warning_store = WarningStore(rt.db)
    rules_store = warning_policy.store(rt.db)  # 预警规则: versions, the shipped file first
    await rules_store.ensure(json.loads(RULES_FILE.read_text("utf-8")), f"system:{NAME}", rt.clock.now())
    directory = json.loads(DIRECTORY_FILE.read_text("utf-8"))  # the jurisdiction gazetteer (属地)
    rules = warning_policy.live(rules_store, sla.policy_refresh_seconds)
    warning_inbox = WarningInbox(warning_store, Rules.load(), street_finder(directory),
                                 rt.topic("warning_events"), newest=rules.current)
    # 督办 levels, whistles, meetings, merges (escalation*.py): the one writer of a case's supervision level
    # 吹哨报到: each summons' report-in limit is a timer in its whistle's document (whistle_clocks.py)
    whistle_alarms = WhistleAlarms(rt.db, WHISTLES, out_topic, rt.topic("notifications"), tz,
                                   {u["unit_id"]: u.get("name", "") for u in directory["units"]})
    whistle_timers = Timers(rt.db, rt.outbox, rt.clock, whistle_alarms, collection=WHISTLES, batch=sla.scan_batch,
                            embedded=True)

    async def due_soon_fraction() -> float:
        return (await sla_policies.current()).due_soon_fraction

    escalation = EscalationCommands(bus, rt.db, EscalationRules.load(base.deadlines, tz), rt.clock,
                                    out_topic, unit_types(directory), rt.topic("city_results"),
                                    clocks=case_policies.clocks, cases=commands,
                                    whistle_clocks=WhistleClocks(whistle_timers, due_soon_fraction))
    units = {u["unit_id"] for u in directory["units"]}  # letters (公文流转) go to units of the directory
    escalation.handlers.known_unit = units.__contains__
    register_levels(bus, escalation.handlers)  # the levels wing's commands on the same bus (levels/commands.py)
    # its follow-ups of the case decisions (settle, close merged cases, level 1) run in process from the outbox
    rt.outbox.follow(EscalationFollowUps(escalation, out_topic).follow)

    circulation = Circulation(bus, rt.db, rt.clock, out_topic, tz, warning_store, units.__contains__)
    search = CaseSearch(rt.db, Directory.from_file(DIRECTORY_FILE))  # 案件查询 (search.py)
    gauges = SlaGauges(store.cases, store.db[store_module.INBOX], rt.clock, sla.gauge_reconcile_seconds)

    async def deadline_timers() -> None:
        await timers.run_forever(sla.scan_seconds)

    async def report_in_timers() -> None:  # 吹哨报到
        await whistle_timers.run_forever(sla.scan_seconds)

    async def sla_gauges() -> None:
        await gauges.run_forever(sla.gauge_seconds)

    async def level_gauges() -> None:
        await escalation.export_forever(sla.level_gauge_seconds)

    return Service(
        http=app,
        routes=[http_routes(store, commands), warning_routes(warning_store, tz),
                escalation_routes(escalation, tz), circulation_routes(circulation),
                search_routes(search, rt.clock, tz),
                reminder_routes(rt.db, rt.clock, tz),  # 事前提醒 of a unit's due-soon clocks (workbench)
                policies.policy_routes(rules_store, warning_policy.validate, rt.commands, rt.clock,
                                       rt.topic("warning_events"), "预警规则 (early-warning rules)"),
                policies.policy_routes(sla_store, sla_module.validate, rt.commands, rt.clock, out_topic,
                                       "时限政策 (SLA policy; new cases take the new version, a case keeps its own)")],
        grpc=[GrpcApi(SupervisionGrpc(store, commands), services_pb2_grpc.add_SupervisionServiceServicer_to_server,
                      "hotline.v1.SupervisionService"),
              GrpcApi(ParkGrpc(commands), park_pb2_grpc.add_ParkServiceServicer_to_server, "hotline.v1.ParkService"),
              GrpcApi(EscalationGrpc(escalation), supervision_pb2_grpc.add_EscalationServiceServicer_to_server,
                      "hotline.v1.EscalationService")],
        consumers=[ConsumerSpec([rt.topic("assignment_events"), rt.topic("city_evaluations")], rt.group(), inbox),
                   ConsumerSpec([rt.topic("ticket_events")], rt.group("warnings"), warning_inbox,
                                linger_ms=rt.settings.kafka.side_linger_ms),
                   ConsumerSpec([rt.topic("deputy_events")], rt.group("deputy"),
                                 DeputyEscalations(escalation, commands)),  # and deputies' ratings (回访)
                   ConsumerSpec([rt.topic("ticket_events"), rt.topic("assignment_events")], rt.group("search"),
                                SearchIndexer(search))],  # no linger: the office looks a new case up at once
        indexes={**store_module.INDEXES, **WARNING_INDEXES, **ESCALATION_INDEXES, **policies.INDEXES,
                 **CIRCULATION_INDEXES, COLLECTION_SEARCH: SEARCH_INDEXES[COLLECTION_SEARCH],
                 SEARCH_ITEMS: SEARCH_INDEXES[SEARCH_ITEMS],
                 "cases": [*store_module.INDEXES["cases"], *SEARCH_INDEXES["cases"]]},
        background=[deadline_timers, sla_gauges, level_gauges, report_in_timers],
    )


def _no_policy(assigned: events_pb2.TicketAssigned, now: datetime) -> events_pb2.Case:
    raise RuntimeError("a re-dispatch opens its case through CasePolicies.for_case")
