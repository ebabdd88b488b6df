"""Early warnings through HTTP (office and leaders): the list, one warning, its warning letter (预警函)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from hotline import masking
from hotline.api import as_json
from hotline.commands import Invalid, NotFound
from hotline.v1 import warnings_pb2
from services.supervision.warnings import warnings as w
from services.supervision.warnings.warning_store import WarningStore


def warning_routes(store: WarningStore, tz: ZoneInfo) -> APIRouter:
    api = APIRouter(tags=["warnings"])

    def role(request: Request) -> Any:
        who = getattr(request.state, "principal", None)
        return who.role if who is not None else None

    async def one(warning_id: str, request: Request) -> warnings_pb2.EarlyWarning:
        found = await store.get(warning_id)
        if found is None:
            raise NotFound("warning", warning_id)
        shown: warnings_pb2.EarlyWarning = masking.mask_warning(found, role(request))  # the one masking table
        return shown

    @api.get("/warnings", summary="预警: early warnings, newest first, optionally of one kind")
    async def list_warnings(request: Request, kind: str = "",
                            limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
        if kind and kind not in w.KINDS:
            raise Invalid(f"unknown warning kind {kind!r}; one of {', '.join(w.KINDS)}")
        return {"warnings": [as_json(masking.mask_warning(x, role(request))) for x in await store.list(kind, limit)]}

    @api.get("/warnings/{warning_id}/letter", response_class=HTMLResponse, summary="预警函 (HTML)")
    async def warning_letter(warning_id: str, request: Request) -> HTMLResponse:
        return HTMLResponse(w.letter(await one(warning_id, request), tz))

    @api.get("/warnings/{warning_id}", summary="One early warning with its explanation")
    async def get_warning(warning_id: str, request: Request) -> dict[str, Any]:
        return as_json(await one(warning_id, request))

    return api
