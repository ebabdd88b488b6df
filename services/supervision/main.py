"""Supervision's composition root (run: ``hotline serve supervision``)."""

from __future__ import annotations

from hotline.kafka import ConsumerSpec
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.v1 import services_pb2_grpc
from services.supervision import store as store_module
from services.supervision.api import SupervisionGrpc, http_routes
from services.supervision.handlers import CaseOpening

NAME = "supervision"


async def build(rt: Runtime) -> Service:
    store = store_module.CaseStore(rt.db)
    app = http_app("supervision", "Case clocks, deadlines and supervision of handling units (督办)")
    handler = CaseOpening(store, rt.topic("case_events"), rt.settings.limits, rt.settings.timezone)
    return Service(
        http=app,
        routes=[http_routes(store)],
        grpc=[GrpcApi(SupervisionGrpc(store), services_pb2_grpc.add_SupervisionServiceServicer_to_server,
                      "hotline.v1.SupervisionService")],
        consumers=[ConsumerSpec([rt.topic("assignment_events")], rt.group(), handler)],
        indexes=store_module.INDEXES,
    )
