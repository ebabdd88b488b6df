"""The workbench's calls to the services: gRPC with the signed-in person's token (and an
idempotency key for commands), HTTP for the read models only served over HTTP. Refusals become
:class:`Refused` with a precise Chinese message."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import httpx

from hotline.auth import grpc_channel
from hotline.settings import Settings
from hotline.v1 import services_pb2_grpc
from services.workbench.core import HTTP_STATUS, PAGE_STATUS, explain, http_detail

T = TypeVar("T")
STUBS: dict[str, Any] = {
    "intake": services_pb2_grpc.IntakeServiceStub,
    "routing": services_pb2_grpc.RoutingServiceStub,
    "supervision": services_pb2_grpc.SupervisionServiceStub,
    "deputy_liaison": services_pb2_grpc.DeputyLiaisonServiceStub,
    "metrics": services_pb2_grpc.MetricsServiceStub,
}


class Refused(Exception):
    """A service refused or failed a call; ``message`` says why in Chinese."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details
        self.message = explain(code, details)
        self.status = PAGE_STATUS.get(code, 502)


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def host(self, service: str) -> str:
        return self.settings.workbench.hosts.get(service, self.settings.bind_host)

    async def call(self, token: str, service: str, method: str, request: Any, key: str = "") -> Any:
        """One gRPC call; ``key`` (commands): the idempotency key, so a resubmitted form acts once."""
        metadata = [("idempotency-key", key or uuid.uuid4().hex)]
        target = f"{self.host(service)}:{self.settings.ports.grpc(service)}"
        async with grpc_channel(target, token, metadata=metadata) as channel:
            stub = STUBS[service](channel)
            try:
                return await getattr(stub, method)(request, timeout=60)
            except grpc.aio.AioRpcError as exc:
                raise Refused(exc.code(), exc.details() or "") from exc

    async def get(self, token: str, service: str, path: str, **params: Any) -> httpx.Response:
        """A GET on a service's HTTP API; a refusal raises :class:`Refused`."""
        return await self._http(token, service, "GET", path, params=params)

    async def put(self, token: str, service: str, path: str, body: Any, key: str) -> httpx.Response:
        """A command over HTTP (for the APIs served only over HTTP, e.g. versioned policies)."""
        return await self._http(token, service, "PUT", path, json=body,
                                headers={"Idempotency-Key": key or uuid.uuid4().hex})

    async def post(self, token: str, service: str, path: str, body: Any, key: str) -> httpx.Response:
        """A command over HTTP (APIs served only over HTTP, e.g. whistles, merges, 督办)."""
        return await self._http(token, service, "POST", path, json=body,
                                headers={"Idempotency-Key": key or uuid.uuid4().hex})

    async def _http(self, token: str, service: str, method: str, path: str, **options: Any) -> httpx.Response:
        url = f"http://{self.host(service)}:{self.settings.ports.http(service)}{path}"
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            try:
                response = await client.request(method, url, **options)
            except httpx.HTTPError as exc:
                raise Refused(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", "")
            except ValueError:
                detail = response.text[:300]
            code = HTTP_STATUS.get(response.status_code, grpc.StatusCode.UNKNOWN)
            raise Refused(code, http_detail(detail))
        return response


async def similar_panel(services: Services, token: str, ticket_id: str) -> dict[str, Any] | None:
    """The similar resolved cases and matching articles of a case (None: not available to this person);
    shown on the case page (app.py) and the dispatch queue (office.py)."""
    found = await optional(lambda: services.get(
        token, "metrics", f"/knowledge/cases/{urllib.parse.quote(ticket_id, safe='')}/similar"))
    return found.json() if found is not None else None


async def optional(call: Callable[[], Awaitable[T]]) -> T | None:
    """The answer, or None when the service refuses (a page part the person may not see)."""
    try:
        return await call()
    except Refused:
        return None
