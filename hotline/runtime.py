"""Runs one service: its HTTP API, gRPC API, Kafka consumers and background tasks, in one
event loop, until SIGTERM/SIGINT. Each service's ``main.py`` is its composition root: it
gets a :class:`Runtime` (settings, store, producer, outbox) and returns a :class:`Service`.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from hotline import audit, kafka, logging, mongo, security
from hotline.auth import GrpcAuth, Verifier, http_guard
from hotline.clock import Clock
from hotline.clock import from_settings as clock_from_settings
from hotline.commands import HTTP_STATUS, CommandBus, DomainError, grpc_status
from hotline.kafka import ConsumerLoop, ConsumerSpec
from hotline.memory import limit_malloc_arenas
from hotline.mongo import Doc
from hotline.outbox import INDEXES as OUTBOX_INDEXES
from hotline.outbox import Outbox
from hotline.settings import Settings, get_settings

log = logging.get_logger(__name__)


@dataclass
class Runtime:
    """What the platform hands to a service's composition root."""

    name: str
    settings: Settings
    mongo_client: AsyncMongoClient[Doc]
    db: AsyncDatabase[Doc]
    producer: AIOKafkaProducer
    outbox: Outbox
    commands: CommandBus
    clock: Clock  # the platform clock (simulated when settings.clock says so)

    def topic(self, field_name: str) -> str:
        return self.settings.topics.name(field_name)

    def group(self, purpose: str = "main") -> str:
        return f"{self.settings.topics.prefix}hotline.{self.name}.{purpose}"


@dataclass
class GrpcApi:
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    service_name: str  # full name, e.g. "hotline.v1.IntakeService"


@dataclass
class Service:
    http: FastAPI
    routes: Sequence[APIRouter] = ()  # mounted behind authentication and the policy table
    grpc: Sequence[GrpcApi] = ()
    consumers: Sequence[ConsumerSpec[Any]] = ()
    indexes: Mapping[str, Sequence[IndexModel]] = field(default_factory=dict)
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()


def http_app(title: str, description: str = "") -> FastAPI:
    """A FastAPI app with the routes every service has: /healthz and /metrics."""
    app = FastAPI(title=title, description=description, version="1")
    app.state.ready = False

    @app.get("/healthz", tags=["ops"], summary="Liveness and readiness")
    async def healthz(request: Request) -> JSONResponse:
        check: Callable[[], Awaitable[dict[str, Any]]] | None = getattr(request.app.state, "health", None)
        detail = await check() if check else {"ready": request.app.state.ready}
        return JSONResponse(detail, status_code=200 if detail.get("ready") else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=HTTP_STATUS[exc.code])

    return app


def mount(service: Service, name: str, verifier: Verifier, db: AsyncDatabase[Doc],
          settings: Settings | None = None) -> FastAPI:
    """Put the service's routes, and the audit trail every service has, behind authentication
    and the policy table (hotline/auth.py, hotline/policy.py); with ``settings``, also behind the
    body size limit (413) of hotline/security.py."""
    if settings is not None:
        security.limit_bodies(service.http, settings)
    guard = http_guard(name, verifier)
    for router in (*service.routes, audit.routes(db)):
        service.http.include_router(router, dependencies=[guard])
    return service.http


async def _serve_grpc(
    apis: Sequence[GrpcApi], settings: Settings, port: int, health_servicer: health.aio.HealthServicer,
    auth: GrpcAuth,
) -> grpc.aio.Server:
    server = grpc.aio.server(interceptors=[auth])
    for api in apis:
        api.add_to_server(api.servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [api.service_name for api in apis] + [health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{settings.bind_host}:{port}")
    if bound == 0:
        raise RuntimeError(f"gRPC port {port} is in use")
    await server.start()
    return server


async def run(name: str, build: Callable[[Runtime], Awaitable[Service]], settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    security.check_startup(settings, name)
    limit_malloc_arenas()  # before the clients start their threads (hotline/memory.py)
    logging.configure(name, settings.log_level, settings.log_json)
    mongo_client = mongo.client(settings)
    db = mongo.database(mongo_client, settings, name)
    producer = kafka.producer(settings)
    await producer.start()
    outbox = Outbox(db, producer, name)
    clock = clock_from_settings(settings.clock)
    rt = Runtime(name, settings, mongo_client, db, producer, outbox, CommandBus(mongo_client, db, outbox, name, clock,
                 group_max=settings.mongo.command_group_max, groups_in_flight=settings.mongo.command_groups_in_flight),
                 clock)
    service = await build(rt)
    verifier = Verifier(settings.auth)
    if settings.auth.dev_secret:  # development only: production refuses to start with it (hotline/security.py)
        log.warning("accepting tokens signed with the development secret: anyone who knows it can sign in; "
                    "production sets HOTLINE_AUTH__JWKS_URL and an empty HOTLINE_AUTH__DEV_SECRET")
    mount(service, name, verifier, db, settings)
    await mongo.ensure_indexes(db, {**OUTBOX_INDEXES, **audit.INDEXES, **service.indexes})

    loops = [ConsumerLoop(spec, settings, producer, name) for spec in service.consumers]
    health_servicer = health.aio.HealthServicer()

    async def health_detail() -> dict[str, Any]:
        try:
            await mongo_client.admin.command("ping")
            store_ok = True
        except Exception:
            store_ok = False
        consumers_ok = all(loop.running for loop in loops)
        ready = store_ok and consumers_ok
        await health_servicer.set(
            "", health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        return {"service": name, "ready": ready, "store": store_ok, "consumers": consumers_ok}

    service.http.state.health = health_detail
    grpc_server = await _serve_grpc(service.grpc, settings, settings.ports.grpc(name), health_servicer,
                                    GrpcAuth(name, verifier, grpc_status))
    for api in service.grpc:
        await health_servicer.set(api.service_name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    http_server = uvicorn.Server(
        uvicorn.Config(service.http, host=settings.bind_host, port=settings.ports.http(name), log_config=None,
                       access_log=False, lifespan="off")
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    tasks = [asyncio.create_task(c.run(), name=f"consume:{c.spec.group_id}") for c in loops]
    tasks += [asyncio.create_task(job(), name=getattr(job, "__name__", "job")) for job in service.background]
    tasks.append(asyncio.create_task(rt.outbox.relay_forever(), name="outbox"))
    http_task = asyncio.create_task(http_server.serve(), name="http")
    log.info("service started", http=settings.ports.http(name), grpc=settings.ports.grpc(name))

    stopper = asyncio.create_task(stop.wait())
    pending: set[asyncio.Task[Any]] = {stopper, http_task, *tasks}
    while True:  # a background job that returns (e.g. one switched off by a setting) is no reason to stop
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done or http_task in done or any(t.exception() for t in done):
            break
    failed = [t for t in done if t is not stopper and t.exception()]
    for t in failed:
        exc = t.exception()
        assert exc is not None
        log.error("task failed, stopping", task=t.get_name(), exc_info=(type(exc), exc, exc.__traceback__))
    log.info("stopping")
    http_server.should_exit = True
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.wait_for(http_task, 5)
    await grpc_server.stop(2)
    await producer.stop()
    await mongo_client.close()
    if failed:
        raise SystemExit(1)
