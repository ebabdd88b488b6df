"""The workbench's defences against other sites (issue #19): a CSRF token on every POST, and
cookie flags. Browser security headers and the body limit come from hotline/security.py.

The token is double-submit, bound to a random per-browser cookie (``hotline_csrf``, HttpOnly)
by an HMAC with the session key: forms carry it as the hidden field ``csrf_token`` (Jinja global
``csrf_input()``), scripts as the ``X-CSRF-Token`` header (token in ``<meta name="csrf-token">``).
A POST without a matching token gets 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from jinja2 import pass_context
from markupsafe import Markup, escape

from hotline.settings import WorkbenchSettings

CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER = "hotline_csrf", "csrf_token", "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def secure_cookies(settings: WorkbenchSettings) -> bool:
    """Secure cookies whenever browsers reach the workbench over https (or when forced on)."""
    return settings.secure_cookie or any(
        url.lower().startswith("https://") for url in (settings.public_url, settings.oidc_redirect_url))


def token_for(seed: str, secret: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{seed}".encode(), hashlib.sha256).hexdigest()


def relative(path: str, default: str) -> str:
    """``back`` and other redirect targets from a form: only a path of this site (no scheme, no
    host, no ``//host``, no backslash tricks); anything else becomes ``default``."""
    path = (path or "").strip()
    parts = urllib.parse.urlsplit(path)
    if (not path.startswith("/") or path.startswith("//") or "\\" in path or parts.scheme or parts.netloc
            or any(ord(c) < 32 for c in path)):
        return default
    return path


def install(app: FastAPI, templates: Any, secret: str, secure: bool) -> None:
    """Register ``csrf_input()`` (unconditionally: it replaces any stub) and the POST check."""

    @pass_context
    def csrf_token(context: Any) -> str:
        """The token for this browser (also in <meta name="csrf-token"> for scripts' X-CSRF-Token)."""
        request: Request | None = context.get("request")
        return token_for(request.scope.get("csrf_seed", "") if request is not None else "", secret)

    @pass_context
    def csrf_input(context: Any) -> Markup:
        return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token(context))}">')

    templates.env.globals["csrf_token"] = csrf_token
    templates.env.globals["csrf_input"] = csrf_input

    @app.middleware("http")
    async def csrf(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        seed = request.cookies.get(CSRF_COOKIE, "")
        fresh = not seed
        if fresh:
            seed = secrets.token_urlsafe(32)
        request.scope["csrf_seed"] = seed
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            kind = request.headers.get("content-type", "")
            if not sent and kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                await request.body()  # kept for the route (Starlette replays a body read here)
                sent = str((await request.form()).get(CSRF_FIELD, ""))
            if fresh or not sent or not hmac.compare_digest(sent, token_for(seed, secret)):
                return PlainTextResponse("请求缺少有效的安全令牌（CSRF），请刷新页面后重试", status_code=403)
        response = await call_next(request)
        if fresh:
            response.set_cookie(CSRF_COOKIE, seed, httponly=True, samesite="lax", secure=secure)
        return response
