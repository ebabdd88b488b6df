"""Metrics' HTTP and gRPC adapters."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import grpc
from fastapi import APIRouter, Query

from hotline import pb
from hotline.api import as_json
from hotline.commands import Invalid
from hotline.v1 import services_pb2, services_pb2_grpc
from services.metrics.store import RollupStore

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_days(from_day: str, to_day: str) -> str | None:
    for name, value in (("from_date", from_day), ("to_date", to_day)):
        if value and not DAY.match(value):
            return f"{name} must be YYYY-MM-DD, got {value!r}"
    if from_day and to_day and from_day > to_day:
        return "from_date is after to_date"
    return None


async def summary(store: RollupStore, from_day: str, to_day: str) -> services_pb2.Summary:
    totals = await store.totals(from_day, to_day)
    overall = totals.get("all", {}).get("all", {})

    def by(dim: str, stage: str) -> dict[str, int]:
        return {k: v[stage] for k, v in totals.get(dim, {}).items() if v[stage]}

    return services_pb2.Summary(
        received=overall.get("received", 0),
        assigned=overall.get("assigned", 0),
        cases_opened=overall.get("case_opened", 0),
        by_ticket_type=by("ticket_type", "received"),
        by_category=by("category", "assigned"),
        by_unit_type=by("unit_type", "assigned"),
        computed_at=pb.ts(datetime.now(UTC)),
    )


def http_routes(store: RollupStore) -> APIRouter:
    api = APIRouter(tags=["metrics"])

    @api.get("/summary", summary="Counts by stage, ticket type, category and unit type")
    async def get_summary(from_date: str = "", to_date: str = "") -> dict[str, Any]:
        if error := check_days(from_date, to_date):
            raise Invalid(error)
        return as_json(await summary(store, from_date, to_date))

    @api.get("/daily", summary="Day-by-day counts for one dimension")
    async def daily(
        dimension: str = Query("all", pattern="^(all|ticket_type|category|unit_type|method|source)$"),
        from_date: str = "", to_date: str = "",
    ) -> list[dict[str, Any]]:
        if error := check_days(from_date, to_date):
            raise Invalid(error)
        return await store.daily(dimension, from_date, to_date)

    return api


class MetricsGrpc(services_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: RollupStore) -> None:
        self.store = store

    async def GetSummary(  # noqa: N802
        self, request: services_pb2.GetSummaryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> services_pb2.Summary:
        if error := check_days(request.from_date, request.to_date):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
        return await summary(self.store, request.from_date, request.to_date)
