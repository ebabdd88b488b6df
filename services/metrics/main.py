"""Metrics' composition root (run: ``hotline serve metrics``)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from hotline.bus import MessageBus
from hotline.kafka import ConsumerSpec
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.v1 import services_pb2_grpc
from services.metrics import store as store_module
from services.metrics.api import MetricsGrpc, http_routes
from services.metrics.commands import MetricsHandlers, register
from services.metrics.handlers import KpiProjection, StageCounting, export_forever, export_kpis_forever
from services.metrics.holidays import holiday_routes
from services.metrics.knowledge import api as knowledge_api
from services.metrics.knowledge import service as knowledge
from services.metrics.knowledge import store as knowledge_store
from services.metrics.kpi import KpiPolicy
from services.metrics.schedule import reports_on_schedule
from services.metrics.views import Views

NAME = "metrics"


async def build(rt: Runtime) -> Service:
    store = store_module.RollupStore(rt.mongo_client, rt.db)
    kpi_store = store_module.KpiStore(rt.db, ZoneInfo(rt.settings.timezone))
    policy = KpiPolicy.load(rt.settings.metrics.kpi_policy)
    views = Views(kpi_store, policy, ZoneInfo(rt.settings.timezone), rt.clock)
    app = http_app("metrics", "Roll-ups, KPI rates and reports on how the district serves its people (分析研判)")
    topics = [rt.topic("ticket_events"), rt.topic("assignment_events"), rt.topic("case_events")]
    kb_store = knowledge_store.KnowledgeStore(rt.db)  # 知识库 and similar cases (docs/knowledge.md)
    indexer = knowledge.Indexer(kb_store)
    bus = MessageBus(rt.commands.uow)  # metrics' commands, one handler each (commands.py)
    register(bus, MetricsHandlers(rt.db, kb_store, rt.clock, rt.topic("case_events")))
    return Service(
        http=app,
        routes=[http_routes(store, views),
                knowledge_api.http_routes(kb_store, knowledge.Knowledge(kb_store, indexer), bus, rt.clock),
                holiday_routes(views, rt.db, bus)],  # 节假日预案 (holidays.py)
        grpc=[GrpcApi(MetricsGrpc(store, views), services_pb2_grpc.add_MetricsServiceServicer_to_server,
                      "hotline.v1.MetricsService")],
        consumers=[ConsumerSpec(topics, rt.group(), StageCounting(store, rt.settings.timezone),
                                linger_ms=rt.settings.kafka.rollup_linger_ms),
                   ConsumerSpec(topics, rt.group("kpi"), KpiProjection(kpi_store),
                                linger_ms=rt.settings.kafka.rollup_linger_ms),
                   ConsumerSpec(topics, rt.group("knowledge"), knowledge.KnowledgeProjection(kb_store),
                                linger_ms=rt.settings.kafka.rollup_linger_ms)],
        indexes={**store_module.INDEXES, **knowledge_store.INDEXES},
        background=[lambda: export_forever(store),
                    lambda: export_kpis_forever(views, rt.settings.metrics.gauge_seconds),
                    lambda: reports_on_schedule(views, rt.settings.metrics),
                    indexer.run_forever],
    )
