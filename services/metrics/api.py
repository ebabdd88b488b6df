"""Metrics' HTTP and gRPC adapters."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import grpc
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel

from hotline import auth, pb
from hotline.api import as_json
from hotline.auth import Principal
from hotline.commands import Invalid
from hotline.v1 import kpis_pb2, services_pb2, services_pb2_grpc
from services.metrics import report
from services.metrics.store import RollupStore
from services.metrics.views import Views, parse_filters, window

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
        stages={k: v for k, v in overall.items() if v},
        computed_at=pb.ts(datetime.now(UTC)),
    )


def filter_pairs(filters: list[str]) -> list[tuple[str, list[str]]]:
    """HTTP filters ``dimension:value1,value2``."""
    pairs = []
    for f in filters:
        dimension, sep, values = f.partition(":")
        if not sep:
            raise Invalid(f"a filter is dimension:value[,value...], got {f!r}")
        pairs.append((dimension, values.split(",")))
    return pairs


def report_info(meta: dict[str, Any]) -> kpis_pb2.ReportInfo:
    return kpis_pb2.ReportInfo(report_id=meta["_id"], kind=meta["kind"], period=meta["period"], title=meta["title"],
                               created_at=pb.ts(meta["created_at"]), as_of=pb.ts(meta["as_of"]),
                               tickets=meta.get("tickets", 0), sizes=meta.get("sizes", {}))


class ReportRequest(BaseModel):
    kind: str  # weekly | monthly | half_yearly | annual
    period: str  # 2026-W47 | 2026-11 | 2026-H1 | 2026


def http_routes(store: RollupStore, views: Views) -> APIRouter:
    api = APIRouter(tags=["metrics"])

    @api.get("/kpis", summary="KPI rates (响应率, 解决率, 满意率, 按时办结率, 回退率, 重办率) by filters and group-by")
    async def get_kpis(
        period: str = "", from_date: str = "", to_date: str = "",
        group_by: list[str] = Query([]), filter: list[str] = Query([]),  # noqa: A002 - the query parameter's name
        who: Principal = Depends(auth.principal),
    ) -> dict[str, Any]:
        w = window(views.tz, period, from_date, to_date)
        return as_json(await views.kpis(w, group_by, parse_filters(filter_pairs(filter)), who))

    @api.get("/reports", summary="Reports stored (周报, 月报, 半年报, 年度报告)")
    async def list_reports(kind: str = "") -> list[dict[str, Any]]:
        return [as_json(report_info(m)) for m in await views.store.list_reports(kind)]

    @api.post("/reports", summary="Generate (or regenerate) a weekly, monthly, half-year or annual report now")
    async def create_report(body: ReportRequest) -> dict[str, Any]:
        return as_json(report_info(await views.generate(body.kind, body.period)))

    files: dict[int | str, dict[str, Any]] = {
        200: {"content": {media: {} for media in report.FORMATS.values()}, "description": "the file"}}

    @api.get("/reports/{report_id}/{fmt}", summary="Download a report as html, pdf or xlsx",
             response_class=Response, responses=files)
    async def download_report(report_id: str, fmt: str) -> Response:
        data = await views.report_file(report_id, fmt)
        return Response(data, media_type=report.FORMATS[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{report_id}.{fmt}"'})

    @api.get("/bulletins/enterprise/{week}", response_class=Response,
             summary="涉企诉求一周一通报 (HTML): the week's (2026-W47) enterprise tickets, state, limits, late "
                     "ones named")
    async def enterprise_bulletin(week: str) -> Response:
        return Response(await views.enterprise_bulletin(week), media_type="text/html; charset=utf-8")

    exports: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/csv": {}, report.FORMATS["xlsx"]: {}}, "description": "the file"}}

    @api.get("/exports/cases/{fmt}", summary="Cases (per dispatch and redo round) assigned in a window, CSV or XLSX",
             response_class=Response, responses=exports)
    async def export_cases(
        fmt: str, period: str = "", from_date: str = "", to_date: str = "", filter: list[str] = Query([]),  # noqa: A002
        ticket: list[str] = Query([], max_length=500, description="only these tickets (a search result)"),
        who: Principal = Depends(auth.principal),
    ) -> Response:
        w = window(views.tz, period, from_date, to_date)
        data = await views.export(w, parse_filters(filter_pairs(filter)), who, fmt, tickets=ticket)
        media = "text/csv; charset=utf-8" if fmt == "csv" else report.FORMATS["xlsx"]
        return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="cases.{fmt}"'})

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
    def __init__(self, store: RollupStore, views: Views) -> None:
        self.store = store
        self.views = views

    async def GetKpis(  # noqa: N802
        self, request: kpis_pb2.GetKpisRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kpis_pb2.KpiResult:
        w = window(self.views.tz, request.period, request.from_date, request.to_date)
        filters = parse_filters([(f.dimension, list(f.values)) for f in request.filters])
        return await self.views.kpis(w, list(request.group_by), filters, auth.current())

    async def ListReports(  # noqa: N802
        self, request: kpis_pb2.ListReportsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kpis_pb2.ListReportsResponse:
        return kpis_pb2.ListReportsResponse(
            reports=[report_info(m) for m in await self.views.store.list_reports(request.kind)])

    async def GetSummary(  # noqa: N802
        self, request: services_pb2.GetSummaryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> services_pb2.Summary:
        if error := check_days(request.from_date, request.to_date):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
        return await summary(self.store, request.from_date, request.to_date)
