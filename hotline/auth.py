"""Identity and access, one mechanism for every service.

* **Who**: a bearer JWT, verified against the configured keys (an OIDC provider's JWKS, or the
  development HS256 secret; see :class:`hotline.settings.AuthSettings`). Its claims give a
  :class:`Principal`: subject, role and the unit, deputy or officer it acts for.
* **What**: the role must be allowed the operation in the one policy table,
  :mod:`hotline.policy`. An operation missing from the table is refused (fail closed).
* **Which**: scope (a unit sees only its own cases, a deputy only their submissions) is checked
  by each service next to its data; out of scope answers "not found", never "forbidden", so
  existence is not leaked.

HTTP: routers are mounted behind :func:`http_guard` (``Authorization: Bearer <jwt>``); route
functions ask for the caller with ``principal: Principal = Depends(auth.principal)``.
gRPC: one server interceptor, :class:`GrpcAuth`, checks the ``authorization`` metadata;
servicer methods call :func:`current`. Health, ``/metrics``, the OpenAPI docs and gRPC
reflection stay open.

| failure                         | HTTP | gRPC              |
|---------------------------------|------|-------------------|
| no or bad credentials           | 401  | UNAUTHENTICATED   |
| credentials without the right   | 403  | PERMISSION_DENIED |
| a resource outside one's scope  | 404  | NOT_FOUND         |
"""

from __future__ import annotations

import contextvars
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hotline import policy
from hotline.policy import SCOPE_CLAIM, Role
from hotline.settings import AuthSettings


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    unit_id: str = ""
    deputy_id: str = ""
    officer_id: str = ""

    @classmethod
    def system(cls, service: str) -> Principal:
        return cls(f"service:{service}", Role.SYSTEM)

    def as_doc(self) -> dict[str, str]:
        doc = {"subject": self.subject, "role": str(self.role)}
        doc.update({k: v for k, v in (("unit_id", self.unit_id), ("deputy_id", self.deputy_id),
                                       ("officer_id", self.officer_id)) if v})
        return doc


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def unauthenticated(message: str) -> AuthError:
    return AuthError(401, message)


def forbidden(message: str) -> AuthError:
    return AuthError(403, message)


DEV_ALGORITHM = "HS256"  # the development secret's, and only its
PROVIDER_ALGORITHMS = ("RS256", "ES256")  # an identity provider's keys (JWKS URL or file)


class Verifier:
    """Turns a bearer token into a :class:`Principal`, or raises a 401 :class:`AuthError`."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKClient | None = jwt.PyJWKClient(settings.jwks_url) if settings.jwks_url else None
        self._keyset: jwt.PyJWKSet | None = None
        if settings.jwks_file:
            self._keyset = jwt.PyJWKSet.from_dict(json.loads(settings.jwks_file.read_text("utf-8")))
        if not (settings.dev_secret or self._jwks or self._keyset):
            raise ValueError("no keys to verify tokens: set HOTLINE_AUTH__JWKS_URL, _JWKS_FILE or _DEV_SECRET")

    def _key(self, token: str, header: dict[str, Any]) -> tuple[Any, list[str]]:
        """The key and the one algorithm allowed for this token: HS256 only with the development
        secret, RS256/ES256 only with the provider's keys (never what the header alone asks for)."""
        alg = str(header.get("alg", ""))
        if alg == DEV_ALGORITHM:
            if not self.settings.dev_secret:
                raise unauthenticated("HS256 tokens are not accepted here")
            return self.settings.dev_secret, [DEV_ALGORITHM]
        if alg not in PROVIDER_ALGORITHMS:
            raise unauthenticated(f"tokens signed with {alg or 'no algorithm'} are not accepted here "
                                  f"(allowed: {', '.join(PROVIDER_ALGORITHMS)} from the identity provider)")
        if self._keyset is not None:
            kid = header.get("kid")
            for key in self._keyset.keys:
                if kid is None or key.key_id == kid:
                    return key.key, [alg]
            raise unauthenticated(f"no key with kid {kid!r}")
        if self._jwks is not None:
            return self._jwks.get_signing_key_from_jwt(token).key, [alg]
        raise unauthenticated(f"tokens signed with {alg} are not accepted here (no identity provider keys)")

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            key, algorithms = self._key(token, header)
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=self.settings.audience, issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds, options={"require": ["exp", "sub"]},
            )
        except AuthError:
            raise
        except jwt.ExpiredSignatureError as exc:
            raise unauthenticated("token expired") from exc
        except jwt.PyJWTError as exc:
            raise unauthenticated(f"invalid token: {exc}") from exc
        except Exception as exc:  # a key of another type than the algorithm (TypeError, ValueError...): still 401
            raise unauthenticated(f"invalid token: {type(exc).__name__}") from exc
        if not isinstance(claims, dict):
            raise unauthenticated("invalid token: claims are not an object")
        role = _role(_claim(claims, self.settings.role_claim))
        if role is None:
            raise unauthenticated(f"token names no known role in claim {self.settings.role_claim!r}")
        principal = Principal(str(claims["sub"]), role, str(claims.get("unit_id", "")),
                              str(claims.get("deputy_id", "")), str(claims.get("officer_id", "")))
        claim = SCOPE_CLAIM.get(role)
        if claim and not getattr(principal, claim):
            raise unauthenticated(f"a {role} token must carry the claim {claim}")
        return principal


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _role(value: Any) -> Role | None:
    for candidate in value if isinstance(value, list) else [value]:
        if isinstance(candidate, str) and candidate in Role.__members__.values() and candidate != Role.SYSTEM:
            return Role(candidate)
    return None


def issue(
    settings: AuthSettings, role: Role | str, *, subject: str = "", unit_id: str = "", deputy_id: str = "",
    officer_id: str = "", ttl_minutes: float | None = None,
) -> str:
    """A development token signed with the dev secret (what ``hotline token issue`` prints)."""
    if not settings.dev_secret:
        raise ValueError("no development secret configured (HOTLINE_AUTH__DEV_SECRET); use your identity provider")
    role = Role(role)
    if role == Role.SYSTEM:
        raise ValueError("the system role is never given to a token")
    now = int(time.time())
    ttl = settings.default_ttl_minutes if ttl_minutes is None else ttl_minutes
    claims: dict[str, Any] = {
        "sub": subject or f"{role}:{unit_id or deputy_id or officer_id or uuid.uuid4().hex[:8]}",
        "iss": settings.issuer, "aud": settings.audience, "iat": now, "exp": now + int(ttl * 60),
        settings.role_claim: str(role),
    }
    claims.update({k: v for k, v in (("unit_id", unit_id), ("deputy_id", deputy_id), ("officer_id", officer_id)) if v})
    return jwt.encode(claims, settings.dev_secret, algorithm="HS256")


def check(service: str, operation: str, principal: Principal) -> None:
    """Raise 403 unless the policy table lets ``principal`` call ``operation`` of ``service``."""
    allowed = policy.roles(service, operation)
    if allowed is None:
        raise forbidden(f"{service} has no access policy for {operation}; refused")
    if principal.role not in allowed:
        raise forbidden(f"role {principal.role} may not call {operation}")


# --- HTTP -------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="A JWT from the identity provider (or `hotline token issue`)")


def http_guard(service: str, verifier: Verifier) -> Any:
    """A router dependency: authenticate the bearer token and apply the policy table."""

    async def guard(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if credentials is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = verifier.verify(credentials.credentials)
            check(service, http_operation(request), principal)
        except AuthError as exc:
            raise HTTPException(exc.status, exc.message,
                                headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None) from exc
        request.state.principal = principal

    return Depends(guard)


def http_operation(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def principal(request: Request) -> Principal:
    """The authenticated caller of an HTTP route (set by :func:`http_guard`)."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None:
        raise HTTPException(401, "not authenticated")
    return found


# --- gRPC -------------------------------------------------------------------------------------

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
OPEN_GRPC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def current() -> Principal:
    """The authenticated caller of the gRPC method being served (set by :class:`GrpcAuth`)."""
    return _current.get()


class GrpcAuth(grpc.aio.ServerInterceptor):
    """The one gRPC server interceptor: authentication, the policy table, and domain errors
    mapped to status codes (so no method ever answers UNKNOWN for a refused request)."""

    def __init__(self, service: str, verifier: Verifier,
                 on_error: Callable[[BaseException], tuple[grpc.StatusCode, str] | None]) -> None:
        self.service = service
        self.verifier = verifier
        self.on_error = on_error

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(OPEN_GRPC_PREFIXES):
            return handler
        metadata = dict(details.invocation_metadata or ())
        operation = method.rsplit("/", 1)[-1]
        refusal: tuple[grpc.StatusCode, str] | None = None
        who: Principal | None = None
        token = str(metadata.get("authorization", ""))
        if not token.lower().startswith("bearer "):
            refusal = (grpc.StatusCode.UNAUTHENTICATED, "missing authorization metadata: 'Bearer <jwt>'")
        else:
            try:
                who = self.verifier.verify(token[7:].strip())
                check(self.service, operation, who)
            except AuthError as exc:
                code = grpc.StatusCode.UNAUTHENTICATED if exc.status == 401 else grpc.StatusCode.PERMISSION_DENIED
                refusal = (code, exc.message)
        return self._wrap(handler, who, refusal)

    def _wrap(self, handler: Handler, who: Principal | None,
              refusal: tuple[grpc.StatusCode, str] | None) -> Handler:
        if handler.unary_unary is None:  # only unary methods exist; others pass through checked
            if refusal:
                raise RuntimeError("streaming methods are not supported by GrpcAuth")
            return handler
        inner = handler.unary_unary

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if refusal is not None:
                await context.abort(*refusal)
            assert who is not None
            reset = _current.set(who)
            try:
                return await inner(request, context)  # type: ignore[arg-type]
            except Exception as exc:
                mapped = self.on_error(exc)
                if mapped is None:
                    raise
                await context.abort(*mapped)
            finally:
                _current.reset(reset)

        return grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)


class _Bearer(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str, extra: Sequence[tuple[str, str]]) -> None:
        self.metadata = (("authorization", f"Bearer {token}"), *extra)

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = tuple(details.metadata or ()) + self.metadata
        return await continuation(details._replace(metadata=metadata), request)


def grpc_channel(target: str, token: str, *, metadata: Sequence[tuple[str, str]] = ()) -> grpc.aio.Channel:
    """A client channel that sends ``token`` (and any extra metadata) with every call."""
    return grpc.aio.insecure_channel(target, interceptors=[_Bearer(token, metadata)])
