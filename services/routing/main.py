"""Routing's composition root (run: ``hotline serve routing``)."""

from __future__ import annotations

from collections.abc import Sequence

from hotline.kafka import ConsumerSpec
from hotline.logging import get_logger
from hotline.runtime import GrpcApi, Runtime, Service, http_app
from hotline.settings import Settings
from hotline.v1 import services_pb2_grpc
from services.routing import store as store_module
from services.routing.api import RoutingGrpc, http_routes
from services.routing.core import Prediction, Router
from services.routing.handlers import Classify, TicketRouting

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
    router = Router.from_files()
    store = store_module.AssignmentStore(rt.db)
    classify = load_classifier(rt.settings)
    app = http_app("routing", "Dispatch of tickets to handling units (派单): responsibility list, units, gazetteer")
    handler = TicketRouting(router, store, rt.topic("assignment_events"), classify)
    return Service(
        http=app,
        routes=[http_routes(router, store, classify)],
        grpc=[GrpcApi(RoutingGrpc(router, store, classify), services_pb2_grpc.add_RoutingServiceServicer_to_server,
                      "hotline.v1.RoutingService")],
        consumers=[ConsumerSpec([rt.topic("ticket_events")], rt.group(), handler)],
        indexes=store_module.INDEXES,
    )
