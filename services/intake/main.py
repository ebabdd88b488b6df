"""Intake's composition root: wires store, consumer and APIs (run: ``hotline serve intake``)."""

from __future__ import annotations

from datetime import timedelta

from hotline.bus import MessageBus
from hotline.kafka import ConsumerSpec
from hotline.retention import StoreRetention, audit_scrub
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.v1 import services_pb2_grpc
from services.intake import store as store_module
from services.intake.api import IntakeGrpc, http_routes
from services.intake.commands import IntakeHandlers, StoredRepeats, TicketRepository, register
from services.intake.handlers import HandlingUnits, TicketIntake
from services.intake.retention import Retention, policy

NAME = "intake"


async def build(rt: Runtime) -> Service:
    store = store_module.TicketStore(rt.db)
    app = http_app("intake", "Tickets as received from the city 12345 platform and NPC deputies (工单受理)")
    handler = TicketIntake(store, rt.topic("city_tickets"), rt.topic("deputy_submissions"), rt.topic("ticket_events"),
                           rt.settings.privacy.hash_secret, rt.clock,
                           timedelta(seconds=rt.settings.intake.future_tolerance_seconds),
                           bus := MessageBus(rt.commands.uow))
    register(bus, IntakeHandlers(TicketRepository(rt.db), StoredRepeats(rt.db), rt.topic("ticket_events"),
                                 rt.settings.privacy.hash_secret, handler.counted))  # ReceiveTicket (commands.py)
    p = rt.settings.privacy
    retention = Retention(store, rt.mongo_client, rt.clock, policy(p.retention_days), p.retention_interval_seconds,
                          p.retention_batch)
    rule = policy(p.retention_days)
    audit_retention = StoreRetention(NAME, rt.db, rt.clock, rule.days, rule.version, [audit_scrub()],
                                     p.retention_interval_seconds)  # issue #19: contact in older audit snapshots
    return Service(
        http=app,
        routes=[http_routes(store)],
        grpc=[GrpcApi(IntakeGrpc(store), services_pb2_grpc.add_IntakeServiceServicer_to_server,
                      "hotline.v1.IntakeService")],
        consumers=[ConsumerSpec([rt.topic("city_tickets"), rt.topic("deputy_submissions")], rt.group(), handler),
                   ConsumerSpec([rt.topic("assignment_events")], rt.group("units"), HandlingUnits(store),
                                linger_ms=rt.settings.kafka.side_linger_ms)],
        indexes=store_module.INDEXES,
        background=[retention.forever, audit_retention.forever],
    )
