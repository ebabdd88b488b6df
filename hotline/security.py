"""Secure by default (issue #19): the start-up check of production settings, HTTP body limits,
browser security headers, and spreadsheet/CSV cells that can never become formulas.

``HOTLINE_ENV`` is ``production`` unless set. In production a process refuses to start (exit 2,
one line naming every missing or unsafe setting) when the development secret is set, when no
identity provider (JWKS URL or file, issuer, audience) is configured, when the PII HMAC key is
unset, a published default or shorter than 32 bytes, or when the workbench session key is.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from hotline.settings import DEV_ISSUER, KNOWN_DEFAULTS, HttpLimitSettings, Settings

MIN_KEY_BYTES = 32


def production_problems(settings: Settings, service: str) -> list[str]:
    """What keeps ``service`` from starting in production (empty in development)."""
    if settings.development:
        return []
    problems: list[str] = []
    auth = settings.auth
    if auth.dev_secret:
        problems.append("HOTLINE_AUTH__DEV_SECRET is set (development tokens; must be empty in production)")
    if not (auth.jwks_url or auth.jwks_file):
        problems.append("HOTLINE_AUTH__JWKS_URL or HOTLINE_AUTH__JWKS_FILE is missing (identity provider keys)")
    if not auth.issuer or auth.issuer == DEV_ISSUER:
        problems.append("HOTLINE_AUTH__ISSUER is missing (the identity provider's issuer)")
    if not auth.audience:
        problems.append("HOTLINE_AUTH__AUDIENCE is missing")
    if service == "workbench":
        key = settings.workbench.session_secret.get_secret_value()
        if _weak(key):
            problems.append("HOTLINE_WORKBENCH__SESSION_SECRET is missing, a published default or shorter than "
                            f"{MIN_KEY_BYTES} bytes")
    else:
        if _weak(settings.privacy.hash_secret):
            problems.append("HOTLINE_PRIVACY__HASH_SECRET is missing, a published default or shorter than "
                            f"{MIN_KEY_BYTES} bytes (HMAC key of callers' phone numbers)")
    return problems


def _weak(key: str) -> bool:
    return not key or key in KNOWN_DEFAULTS or len(key.encode()) < MIN_KEY_BYTES


def check_startup(settings: Settings, service: str) -> None:
    """Exit 2 with one line naming the missing settings (production only)."""
    problems = production_problems(settings, service)
    if problems:
        print(f"{service}: refusing to start in production (HOTLINE_ENV=production): " + "; ".join(problems)
              + ". Set them, or HOTLINE_ENV=development on a developer's machine.", file=sys.stderr, flush=True)
        raise SystemExit(2)


# --- HTTP ---------------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                 b"script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
API_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))


class BodyLimit:
    """ASGI middleware: 413 for a body larger than the limit (by Content-Length, or counted while
    streaming when there is none). Paths ending in ``/import`` get the larger import limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, import_bytes: int,
                 headers: tuple[tuple[bytes, bytes], ...] = API_HEADERS) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.import_bytes = import_bytes
        self.headers = headers

    def limit(self, path: str) -> int:
        return self.import_bytes if path.rstrip("/").endswith("/import") else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((k, v) for k, v in headers if k not in present)]
            await send(message)

        limit = self.limit(str(scope.get("path", "")))
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None:
            try:
                too_large = int(length) > limit
            except ValueError:
                too_large = True
            if too_large:
                await _too_large(send_with_headers, limit)
                return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counted, send_with_headers)
        except BodyTooLarge:
            if refused:
                await _too_large(send_with_headers, limit)
            else:
                raise


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so that FastAPI answers 413, not 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body larger than {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def limit_bodies(app: Any, settings: Settings, *, browser: bool = False) -> None:
    """Add the body limit (and the security headers) to a FastAPI/Starlette app."""
    app.add_middleware(BodyLimit, max_bytes=settings.http.max_body_bytes,
                       import_bytes=settings.http.max_import_bytes,
                       headers=SECURITY_HEADERS if browser else API_HEADERS)


# --- spreadsheets and CSV -----------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell_text(value: Any) -> Any:
    """A value safe to write into a CSV or spreadsheet cell: text that a spreadsheet would read
    as a formula (``=HYPERLINK(...)``, ``+1``, ``-2``, ``@SUM``, or a leading tab/CR) gets a
    leading apostrophe, so it opens as text. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def cell_value(text: str) -> str:
    """The inverse of :func:`cell_text` for files the platform exported and gets back (an edited list)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def text_cells(workbook: Any) -> None:
    """Every string cell of an openpyxl workbook stored as text, never as a formula (openpyxl makes
    a string starting with ``=`` a formula): ``=HYPERLINK(...)`` from a citizen opens as those characters."""
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and (cell.data_type == "f" or cell.value.startswith(FORMULA_STARTS)):
                    cell.data_type = "s"


class SpreadsheetTooLarge(ValueError):
    """An upload past the import bounds (rows, uncompressed size): refused before it is read."""


def bounded_rows(data: bytes, *, max_rows: int | None = None, max_uncompressed: int | None = None,
                 sheet: str | None = None) -> list[tuple[Any, ...]]:
    """The rows of an XLSX upload, read with bounds: the sum of the uncompressed members is checked
    from the zip directory before anything is inflated (zip bombs), the sheet is streamed (openpyxl
    read-only; its XML parser refuses entity expansion) and more than ``max_rows`` rows are refused."""
    import io
    import zipfile

    from openpyxl import load_workbook

    limits = HttpLimitSettings()
    max_rows = limits.max_import_rows if max_rows is None else max_rows
    max_uncompressed = limits.max_xlsx_uncompressed_bytes if max_uncompressed is None else max_uncompressed
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        inflated = sum(member.file_size for member in archive.infolist())
    if inflated > max_uncompressed:
        raise SpreadsheetTooLarge(f"the workbook inflates to {inflated} bytes (at most {max_uncompressed})")
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        ws = book[sheet] if sheet and sheet in book.sheetnames else book.worksheets[0]
        rows: list[tuple[Any, ...]] = []
        for row in ws.iter_rows(values_only=True):
            rows.append(row)
            if len(rows) > max_rows + 1:  # + the header
                raise SpreadsheetTooLarge(f"more than {max_rows} rows (at most {max_rows} per import)")
        return rows
    finally:
        book.close()
