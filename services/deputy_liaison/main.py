"""Deputy liaison's composition root (run: ``hotline serve deputy_liaison``)."""

from __future__ import annotations

from hotline.kafka import ConsumerSpec
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.v1 import services_pb2_grpc
from services.deputy_liaison import store as store_module
from services.deputy_liaison.api import DeputyGrpc, Liaison, http_routes
from services.deputy_liaison.handlers import CaseFollowing

NAME = "deputy_liaison"


async def build(rt: Runtime) -> Service:
    store = store_module.DeputyStore(rt.db)
    liaison = Liaison(store, rt.commands, rt.topic("deputy_submissions"), rt.clock)
    return Service(
        http=http_app("deputy_liaison", "人大代表联络: 代表转交群众诉求、跟踪办理、每月问题清单"),
        routes=[http_routes(liaison)],
        grpc=[GrpcApi(DeputyGrpc(liaison), services_pb2_grpc.add_DeputyLiaisonServiceServicer_to_server,
                      "hotline.v1.DeputyLiaisonService")],
        consumers=[ConsumerSpec([rt.topic("case_events")], rt.group(), CaseFollowing(store))],
        indexes=store_module.INDEXES,
    )
