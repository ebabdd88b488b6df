"""Deputy liaison's composition root (run: ``hotline serve deputy_liaison``)."""

from __future__ import annotations

import asyncio
import contextlib

from hotline.bus import MessageBus
from hotline.directory import DIRECTORY_FILE, Directory
from hotline.kafka import ConsumerSpec
from hotline.retention import Scrub, StoreRetention, audit_scrub
from hotline.retention import policy as retention_policy
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.v1 import services_pb2_grpc
from services.deputy_liaison import store as store_module
from services.deputy_liaison.api import DeputyGrpc, Liaison, http_routes
from services.deputy_liaison.commands import LiaisonHandlers, register
from services.deputy_liaison.core import ListPolicy
from services.deputy_liaison.handlers import CaseFollowing, TicketFacts

NAME = "deputy_liaison"
FIGURES_EVERY_SECONDS = 30.0  # how often the Prometheus figures of deputy work are refreshed


async def build(rt: Runtime) -> Service:
    store = store_module.DeputyStore(rt.db)
    directory = Directory.from_file(DIRECTORY_FILE)
    topics = {t: rt.topic(t) for t in ("deputy_submissions", "deputy_events", "notifications")}
    list_policy = ListPolicy.load(rt.settings.deputy.monthly_list_policy)
    bus = MessageBus(rt.commands.uow)  # deputy liaison's commands, one handler each (commands.py)
    register(bus, LiaisonHandlers(store, topics, rt.clock, list_policy))
    liaison = Liaison(store, bus, rt.clock, directory, list_policy)

    async def refresh_figures() -> None:
        while True:
            with contextlib.suppress(Exception):  # figures are best effort; the next round retries
                await liaison.figures()
            await asyncio.sleep(FIGURES_EVERY_SECONDS)

    p = rt.settings.privacy
    rule = retention_policy(p.retention_days)
    personal_data = StoreRetention(NAME, rt.db, rt.clock, rule.days, rule.version,  # issue #19: every store
                                   [Scrub("submissions", "submitted_at", ("citizen",)), audit_scrub()],
                                   p.retention_interval_seconds)
    return Service(
        http=http_app("deputy_liaison", "人大代表联络: 代表转交群众诉求、跟踪办理、每月问题清单"),
        routes=[http_routes(liaison)],
        grpc=[GrpcApi(DeputyGrpc(liaison), services_pb2_grpc.add_DeputyLiaisonServiceServicer_to_server,
                      "hotline.v1.DeputyLiaisonService")],
        consumers=[ConsumerSpec([rt.topic("case_events")], rt.group(), CaseFollowing(store, rt.topic("notifications")),
                                linger_ms=rt.settings.kafka.side_linger_ms),
                   ConsumerSpec([rt.topic("ticket_events"), rt.topic("assignment_events"), rt.topic("case_events")],
                                rt.group("facts"), TicketFacts(store, directory, rt.settings.timezone),
                                linger_ms=rt.settings.kafka.side_linger_ms)],
        indexes=store_module.INDEXES,
        background=[refresh_figures, personal_data.forever],
    )
