"""Supervision's composition root (run: ``hotline serve supervision``)."""

from __future__ import annotations

import functools
import json
from zoneinfo import ZoneInfo

from hotline import policies
from hotline.kafka import ConsumerSpec
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.settings import REPO_ROOT
from hotline.v1 import services_pb2_grpc, supervision_pb2_grpc
from services.supervision import store as store_module
from services.supervision import warning_policy
from services.supervision.api import SupervisionGrpc, http_routes
from services.supervision.commands import CaseCommands
from services.supervision.core import WorkCalendar, open_case
from services.supervision.deputy_escalation_handlers import DeputyEscalations
from services.supervision.escalation import Rules as EscalationRules
from services.supervision.escalation_api import EscalationGrpc, escalation_routes
from services.supervision.escalation_handlers import EscalationInbox
from services.supervision.escalation_store import INDEXES as ESCALATION_INDEXES
from services.supervision.escalation_store import EscalationCommands, unit_types
from services.supervision.handlers import CaseInbox
from services.supervision.lifecycle import CalendarDeadlines, Limits, Policy
from services.supervision.warning_api import warning_routes
from services.supervision.warning_handlers import WarningInbox
from services.supervision.warning_store import INDEXES as WARNING_INDEXES
from services.supervision.warning_store import WarningStore
from services.supervision.warnings import RULES_FILE, Rules, street_finder

DIRECTORY = REPO_ROOT / "services" / "routing" / "data" / "directory.json"  # the jurisdiction gazetteer (属地)

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
    warning_store = WarningStore(rt.db)
    rules_store = warning_policy.store(rt.db)  # 预警规则: versions, the shipped file first
    await rules_store.ensure(json.loads(RULES_FILE.read_text("utf-8")), f"system:{NAME}", rt.clock.now())
    directory = json.loads(DIRECTORY.read_text("utf-8"))
    warning_inbox = WarningInbox(warning_store, Rules.load(), street_finder(directory),
                                 rt.topic("warning_events"), newest=warning_policy.live(rules_store).current)
    # 督办 levels, whistles, meetings, merges (escalation*.py); the SLA timers call escalation.raise_supervision
    escalation = EscalationCommands(rt.commands, rt.db, EscalationRules.load(policy.deadlines, tz), rt.clock,
                                    rt.topic("case_events"), unit_types(directory), rt.topic("city_results"))
    return Service(
        http=app,
        routes=[http_routes(store, commands), warning_routes(warning_store, tz), escalation_routes(escalation, tz),
                policies.policy_routes(rules_store, warning_policy.validate, rt.commands, rt.clock,
                                       rt.topic("warning_events"), "预警规则 (early-warning rules)")],
        grpc=[GrpcApi(SupervisionGrpc(store, commands), services_pb2_grpc.add_SupervisionServiceServicer_to_server,
                      "hotline.v1.SupervisionService"),
              GrpcApi(EscalationGrpc(escalation), supervision_pb2_grpc.add_EscalationServiceServicer_to_server,
                      "hotline.v1.EscalationService")],
        consumers=[ConsumerSpec([rt.topic("assignment_events"), rt.topic("city_evaluations")], rt.group(), inbox),
                   ConsumerSpec([rt.topic("ticket_events")], rt.group("warnings"), warning_inbox),
                   ConsumerSpec([rt.topic("deputy_events")], rt.group("deputy"), DeputyEscalations(commands)),
                   ConsumerSpec([rt.topic("case_events")], rt.group("escalation"), EscalationInbox(escalation))],
        indexes={**store_module.INDEXES, **WARNING_INDEXES, **ESCALATION_INDEXES, **policies.INDEXES},
        background=[escalation.export_forever],
    )
