"""Identity, access, personal data and idempotency through the running services (issue 7).

The authorization matrix is derived from what the services serve (each one's OpenAPI route
table and the gRPC services in the proto descriptors), so a new route or method without an
entry in hotline/policy.py fails here.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import grpc
import httpx
import hypothesis
import pytest
import schemathesis
from google.protobuf import message_factory
from pymongo import AsyncMongoClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from hotline import policy
from hotline.auth import grpc_channel
from hotline.policy import PEOPLE, Role
from hotline.settings import SERVICES, Settings
from hotline.v1 import park_pb2, services_pb2, supervision_pb2
from hotline_dev.simulator import generate
from tests.support import eventually, http, publish_raw, publish_tickets, token

pytestmark = pytest.mark.e2e

GRPC_SERVICE = {"intake": "IntakeService", "routing": "RoutingService", "supervision": "SupervisionService",
                "deputy_liaison": "DeputyLiaisonService", "metrics": "MetricsService"}
OPEN_PATHS = {"/healthz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
SCOPE = {Role.UNIT: {"unit_id": "U-MATRIX"}, Role.DEPUTY: {"deputy_id": "D-MATRIX"},
         Role.LIAISON: {"officer_id": "L-MATRIX"}}
MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")  # not the digits inside a hex digest


def base(settings: Settings, service: str) -> str:
    return f"http://{settings.bind_host}:{settings.ports.http(service)}"


def role_token(settings: Settings, role: Role) -> str:
    return token(settings, role, **SCOPE.get(role, {}))


async def http_operations(settings: Settings, service: str) -> list[tuple[str, str]]:
    async with httpx.AsyncClient() as client:
        spec = (await client.get(f"{base(settings, service)}/openapi.json")).json()
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops
            if path not in OPEN_PATHS]


# services a service serves beyond its main one, each from its own proto file
MORE_GRPC = {"supervision": [supervision_pb2.DESCRIPTOR.services_by_name["EscalationService"],
                              park_pb2.DESCRIPTOR.services_by_name["ParkService"]]}  # 挂账审批 (issue #22)


def grpc_methods(service: str) -> list[Any]:
    served = [services_pb2.DESCRIPTOR.services_by_name[GRPC_SERVICE[service]], *MORE_GRPC.get(service, [])]
    return [m for s in served for m in s.methods]


async def test_every_route_and_method_has_a_policy(platform: dict, settings: Settings) -> None:
    missing = []
    for service in SERVICES:
        for method, path in await http_operations(settings, service):
            if policy.roles(service, f"{method} {path}") is None:
                missing.append(f"{service}: {method} {path}")
        missing += [f"{service}: {m.name}" for m in grpc_methods(service) if policy.roles(service, m.name) is None]
    assert not missing, f"routes or methods without an access policy in hotline/policy.py: {missing}"


async def test_http_authorization_matrix(platform: dict, settings: Settings) -> None:
    """No token: 401. A role the policy does not name: 403. A role it names: neither."""
    wrong: list[str] = []
    async with httpx.AsyncClient(timeout=30) as client:
        for service in SERVICES:
            for method, path in await http_operations(settings, service):
                url = base(settings, service) + re.sub(r"\{[^}]+\}", "MATRIX-X", path)
                r = await client.request(method, url)
                if r.status_code != 401:
                    wrong.append(f"{service} {method} {path} without a token: {r.status_code}")
                r = await client.request(method, url, headers={"Authorization": "Bearer not.a.jwt"})
                if r.status_code != 401:
                    wrong.append(f"{service} {method} {path} with a bad token: {r.status_code}")
                allowed = policy.roles(service, f"{method} {path}") or frozenset()
                for role in sorted(PEOPLE):
                    r = await client.request(method, url, headers={
                        "Authorization": f"Bearer {role_token(settings, role)}", "Idempotency-Key": "matrix"})
                    refused = r.status_code in (401, 403)
                    if refused == (role in allowed) or r.status_code >= 500:
                        wrong.append(f"{service} {method} {path} as {role}: {r.status_code} {r.text[:80]}")
    assert not wrong, "\n".join(wrong)


async def test_grpc_authorization_matrix_and_precise_codes(platform: dict, settings: Settings) -> None:
    """Every method: UNAUTHENTICATED without a token, PERMISSION_DENIED for a role the policy
    does not name; for the roles it names an empty request is INVALID_ARGUMENT, NOT_FOUND or
    answered, never UNKNOWN or INTERNAL."""
    wrong: list[str] = []
    fine = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}
    for service in SERVICES:
        target = f"{settings.bind_host}:{settings.ports.grpc(service)}"
        for method in grpc_methods(service):
            path = f"/{method.containing_service.full_name}/{method.name}"
            request_cls = message_factory.GetMessageClass(method.input_type)
            response_cls = message_factory.GetMessageClass(method.output_type)
            allowed = policy.roles(service, method.name) or frozenset()

            async def call(chan: grpc.aio.Channel, request_cls: Any = request_cls, path: str = path,
                           response_cls: Any = response_cls) -> grpc.StatusCode:
                stub = chan.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_cls.FromString)
                try:
                    await stub(request_cls(), timeout=20)
                    return grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    return exc.code()

            async with grpc.aio.insecure_channel(target) as chan:
                if (code := await call(chan)) != grpc.StatusCode.UNAUTHENTICATED:
                    wrong.append(f"{path} without a token: {code}")
            for role in sorted(PEOPLE):
                async with grpc_channel(target, role_token(settings, role),
                                        metadata=[("idempotency-key", "matrix")]) as chan:
                    code = await call(chan)
                if role in allowed and code not in fine | {grpc.StatusCode.OK}:
                    wrong.append(f"{path} as {role}: {code}")
                if role not in allowed and code != grpc.StatusCode.PERMISSION_DENIED:
                    wrong.append(f"{path} as {role} (not allowed): {code}")
    assert not wrong, "\n".join(wrong)


async def test_open_endpoints_stay_open(platform: dict, settings: Settings) -> None:
    async with httpx.AsyncClient() as client:
        for service in SERVICES:
            for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
                r = await client.get(base(settings, service) + path)
                assert r.status_code == 200, (service, path, r.status_code)
            spec = (await client.get(base(settings, service) + "/openapi.json")).json()
            assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    async with grpc.aio.insecure_channel(f"{settings.bind_host}:{settings.ports.grpc('routing')}") as chan:
        status = await health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest())
        assert status.status == health_pb2.HealthCheckResponse.SERVING


async def register_deputy(settings: Settings, deputy_id: str, officer: str = "") -> None:
    async with http(settings, "admin") as admin:
        r = await admin.post(f"{base(settings, 'deputy_liaison')}/deputies", headers={"Idempotency-Key": deputy_id},
                             json={"deputy_id": deputy_id, "name": "代表" + deputy_id, "level": "区",
                                   "liaison_officer_id": officer})
        assert r.status_code == 201, r.text


async def test_deputies_liaisons_and_units_see_only_their_own(platform: dict, settings: Settings) -> None:
    liaison = base(settings, "deputy_liaison")
    await register_deputy(settings, "DA1", officer="LO-A")
    await register_deputy(settings, "DB1", officer="LO-B")
    async with http(settings, "deputy", deputy_id="DA1") as a, http(settings, "deputy", deputy_id="DB1") as b, \
            http(settings, "liaison", officer_id="LO-A") as officer_a, http(settings, "office") as office:
        r = await a.post(f"{liaison}/submissions", headers={"Idempotency-Key": "a-1"},
                         json={"title": "路灯不亮", "content": "中华路路灯不亮已经一周，夜间出行不便"})
        assert r.status_code == 201, r.text
        mine = r.json()
        assert (await a.get(f"{liaison}/submissions/{mine['submission_id']}")).status_code == 200
        assert (await b.get(f"{liaison}/submissions/{mine['submission_id']}")).status_code == 404
        assert (await b.get(f"{liaison}/deputies/DA1/submissions")).status_code == 404
        assert (await b.get(f"{liaison}/deputies/DA1")).status_code == 404
        r = await b.post(f"{liaison}/submissions", headers={"Idempotency-Key": "b-1"},
                         json={"deputy_id": "DA1", "title": "冒名提交", "content": "代表不能以另一位代表的名义提交"})
        assert r.status_code == 404
        assert (await officer_a.get(f"{liaison}/deputies/DA1/submissions")).json()[0]["submission_id"] \
            == mine["submission_id"]
        assert (await officer_a.get(f"{liaison}/deputies/DB1/submissions")).status_code == 404
        assert (await office.get(f"{liaison}/submissions/{mine['submission_id']}")).status_code == 200

        # units: the case of this ticket belongs to its primary unit only
        cases = base(settings, "supervision")
        case = await eventually(lambda: office.get(f"{cases}/cases/{mine['ticket_id']}"),
                                lambda r: r.status_code == 200, timeout=60)
        owner = case.json()["primary_unit"]["unit_id"]
        async with http(settings, "unit", unit_id=owner) as unit, \
                http(settings, "unit", unit_id="NOT-" + owner) as other:
            assert (await unit.get(f"{cases}/cases/{mine['ticket_id']}")).status_code == 200
            assert (await other.get(f"{cases}/cases/{mine['ticket_id']}")).status_code == 404
            listed = (await other.get(f"{cases}/cases")).json()["cases"]
            assert all(c["primary_unit"]["unit_id"] == "NOT-" + owner for c in listed)
            assert (await other.get(f"{cases}/cases", params={"unit_id": owner})).status_code == 404
            tickets = base(settings, "intake")
            await eventually(lambda: unit.get(f"{tickets}/tickets/{mine['ticket_id']}"),
                             lambda r: r.status_code == 200, timeout=30)
            assert (await other.get(f"{tickets}/tickets/{mine['ticket_id']}")).status_code == 404
            assert (await other.get(f"{base(settings, 'routing')}/assignments/{mine['ticket_id']}")).status_code == 404


async def test_a_retried_command_changes_nothing_and_answers_the_same(platform: dict, settings: Settings) -> None:
    await register_deputy(settings, "DIDEM")
    url = f"{base(settings, 'deputy_liaison')}/submissions"
    body = {"title": "井盖缺失", "content": "健康路与民主路路口井盖缺失，存在安全隐患", "address": "健康路1号"}
    async with http(settings, "deputy", deputy_id="DIDEM") as deputy:
        first = await deputy.post(url, json=body, headers={"Idempotency-Key": "same-key"})
        again = await deputy.post(url, json=body, headers={"Idempotency-Key": "same-key"})
        other = await deputy.post(url, json=body, headers={"Idempotency-Key": "another-key"})
        assert first.status_code == again.status_code == other.status_code == 201
        assert first.json() == again.json()
        assert other.json()["submission_id"] != first.json()["submission_id"]
        listed = (await deputy.get(f"{base(settings, 'deputy_liaison')}/deputies/DIDEM/submissions")).json()
        assert sorted(s["submission_id"] for s in listed) == sorted(
            [first.json()["submission_id"], other.json()["submission_id"]])
        missing = await deputy.post(url, json=body)
        assert missing.status_code == 422
    async with http(settings, "office") as office:
        trail = (await office.get(f"{base(settings, 'deputy_liaison')}/audit", params={"actor": "deputy:DIDEM"})).json()
        assert [e["action"] for e in trail["entries"]].count("submit_problem") == 2
        assert all(e["actor"]["role"] == "deputy" for e in trail["entries"])


def fuzz(url: str, bearer: str, examples: int) -> list[str]:
    """schemathesis over one service's OpenAPI: no 5xx, every response matches its schema."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def run(case: Any) -> None:
            headers = {"Authorization": f"Bearer {bearer}"}
            response = case.call(base_url=url, headers=headers)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    return failures


@pytest.mark.parametrize("service", SERVICES)
async def test_openapi_fuzzing_with_valid_tokens(platform: dict, settings: Settings, service: str) -> None:
    roles = {"deputy_liaison": Role.DEPUTY, "metrics": Role.LEADER}
    bearer = role_token(settings, roles.get(service, Role.OFFICE))
    failures = await asyncio.to_thread(fuzz, base(settings, service), bearer, 25)
    assert not failures, "\n".join(failures)


async def test_no_phone_number_in_logs_events_or_the_repeat_index(
    platform: dict, settings: Settings, log_dir: Path
) -> None:
    tickets = list(generate(500, seed=4242))
    phones = {t.caller.phone for t in tickets if t.caller.phone}
    assert len(phones) > 300
    await publish_tickets(settings, tickets)
    # a malformed record with a phone number in it: its dead-letter log line must not show the number
    await publish_raw(settings, settings.topics.name("city_tickets"),
                      [(b"BAD-PHONE", b'{"cityTicketId": "BAD-PHONE", "ticketType": "call 13912345678"}')])
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo.url)
    try:
        cases = client[f"{settings.mongo.database_prefix}_supervision"]["cases"]
        ids = [t.city_ticket_id for t in tickets]
        await eventually(lambda: cases.count_documents({"_id": {"$in": ids}}), lambda n: n == len(ids), timeout=120)
        keys = await client[f"{settings.mongo.database_prefix}_intake"]["repeat_keys"].find({}).to_list()
        assert keys and not [k["_id"] for k in keys if MOBILE.search(k["_id"])]
        for service in ("routing", "supervision", "metrics"):  # they never receive a caller's contact
            db = client[f"{settings.mongo.database_prefix}_{service}"]
            for name in await db.list_collection_names():
                async for doc in db[name].find({}):
                    assert not (set(MOBILE.findall(repr(doc))) & phones), f"{service}.{name} holds a phone number"
    finally:
        await client.close()
    await asyncio.sleep(2)  # let the services flush their logs
    logs = await asyncio.to_thread(lambda: {p.name: p.read_text("utf-8", "replace") for p in log_dir.glob("*.log")})
    assert set(logs) >= {f"{s}.log" for s in SERVICES}
    leaked = {name: sorted(set(MOBILE.findall(text)))[:5] for name, text in logs.items() if MOBILE.search(text)}
    assert not leaked, f"phone numbers in service logs: {leaked}"
    assert "139****5678" in logs["intake.log"]  # the dead letter was logged, masked

