"""Early warnings through HTTP (office and leaders): the list, one warning, its warning letter (预警函)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from hotline.api import as_json
from hotline.commands import Invalid, NotFound
from hotline.v1 import warnings_pb2
from services.supervision import warnings as w
from services.supervision.warning_store import WarningStore


def warning_routes(store: WarningStore, tz: ZoneInfo) -> APIRouter:
    api = APIRouter(tags=["warnings"])

    async def one(warning_id: str) -> warnings_pb2.EarlyWarning:
        found = await store.get(warning_id)
        if found is None:
            raise NotFound("warning", warning_id)
        return found

    @api.get("/warnings", summary="预警: early warnings, newest first, optionally of one kind")
    async def list_warnings(kind: str = "", limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
        if kind and kind not in w.KINDS:
            raise Invalid(f"unknown warning kind {kind!r}; one of {', '.join(w.KINDS)}")
        return {"warnings": [as_json(x) for x in await store.list(kind, limit)]}

    @api.get("/warnings/{warning_id}/letter", response_class=HTMLResponse, summary="预警函 (HTML)")
    async def warning_letter(warning_id: str) -> HTMLResponse:
        return HTMLResponse(w.letter(await one(warning_id), tz))

    @api.get("/warnings/{warning_id}", summary="One early warning with its explanation")
    async def get_warning(warning_id: str) -> dict[str, Any]:
        return as_json(await one(warning_id))

    return api
