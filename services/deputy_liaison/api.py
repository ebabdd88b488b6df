"""Deputy liaison's HTTP and gRPC adapters. Messages for deputies are in Chinese."""

from __future__ import annotations

import secrets
from typing import Any, Literal

import grpc
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from hotline.envelope import Event
from hotline.mongo import utcnow
from hotline.v1 import services_pb2, services_pb2_grpc, ticket_pb2
from services.deputy_liaison import core
from services.deputy_liaison.store import DeputyStore


class DeputyIn(BaseModel):
    deputy_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$", description="代表编号")
    name: str = Field(min_length=1, max_length=50, description="姓名")
    level: Literal["区", "市", "省", "全国"] = Field(description="代表层级")
    liaison_point: str = Field("", max_length=100, description="代表联系点")


class ProblemIn(BaseModel):
    deputy_id: str
    title: str = Field(min_length=2, max_length=200, description="问题标题")
    content: str = Field(min_length=5, max_length=5000, description="群众反映的问题")
    address: str = Field("", max_length=200, description="地址")
    ticket_type: Literal["complaint", "help", "consultation", "suggestion", "praise"] = "help"


class Submitter:
    def __init__(self, store: DeputyStore, topic: str) -> None:
        self.store, self.topic = store, topic

    async def submit(self, problem: ProblemIn) -> dict[str, str]:
        if not await self.store.deputy(problem.deputy_id):
            raise LookupError(f"代表 {problem.deputy_id} 未登记，请先登记代表信息")
        submission_id = utcnow().strftime("%Y%m%d") + secrets.token_hex(4)
        now = utcnow()
        ticket_type = ticket_pb2.TicketType.Value(f"TICKET_TYPE_{problem.ticket_type.upper()}")
        message = core.submission_event(submission_id, problem.deputy_id, problem.title, problem.content,
                                        problem.address, ticket_type, now)
        ticket_id = core.ticket_id_of(submission_id)
        doc = {"submission_id": submission_id, "ticket_id": ticket_id, "status": "submitted",
               "submitted_at": now, **problem.model_dump()}
        await self.store.submit(doc, Event(self.topic, ticket_id, message, f"{ticket_id}/submitted", ticket_id))
        return {"submission_id": submission_id, "ticket_id": ticket_id, "message": "已受理，将转交承办单位办理"}


def http_routes(store: DeputyStore, submitter: Submitter) -> APIRouter:
    api = APIRouter(tags=["deputies"])

    @api.post("/deputies", status_code=201, summary="登记人大代表")
    async def add_deputy(deputy: DeputyIn) -> dict[str, str]:
        if not await store.add_deputy(deputy.model_dump()):
            raise HTTPException(status_code=409, detail=f"代表编号 {deputy.deputy_id} 已登记")
        return {"deputy_id": deputy.deputy_id, "message": "登记成功"}

    @api.get("/deputies/{deputy_id}", summary="代表信息")
    async def get_deputy(deputy_id: str) -> dict[str, Any]:
        deputy = await store.deputy(deputy_id)
        if not deputy:
            raise HTTPException(status_code=404, detail=f"代表 {deputy_id} 未登记")
        return deputy

    @api.post("/submissions", status_code=201, summary="代表转交群众反映的问题")
    async def submit(problem: ProblemIn) -> dict[str, str]:
        try:
            return await submitter.submit(problem)
        except LookupError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc

    @api.get("/submissions/{submission_id}", summary="问题办理进度")
    async def get_submission(submission_id: str) -> dict[str, Any]:
        found = await store.submission(submission_id)
        if not found:
            raise HTTPException(status_code=404, detail=f"未找到编号为 {submission_id} 的问题")
        return found

    @api.get("/deputies/{deputy_id}/submissions", summary="代表转交的问题及办理进度")
    async def of_deputy(deputy_id: str, limit: int = Query(100, ge=1, le=500)) -> list[dict[str, Any]]:
        return await store.of_deputy(deputy_id, limit)

    return api


class DeputyGrpc(services_pb2_grpc.DeputyLiaisonServiceServicer):
    def __init__(self, submitter: Submitter) -> None:
        self.submitter = submitter

    async def SubmitProblem(  # noqa: N802
        self, request: services_pb2.SubmitProblemRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> services_pb2.SubmitProblemResponse:
        kind = ticket_pb2.TicketType.Name(request.ticket_type or ticket_pb2.TICKET_TYPE_HELP)
        try:
            problem = ProblemIn.model_validate({
                "deputy_id": request.deputy_id, "title": request.title, "content": request.content,
                "address": request.address, "ticket_type": kind.removeprefix("TICKET_TYPE_").lower()})
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"提交内容不完整或格式有误: {exc}")
        try:
            result = await self.submitter.submit(problem)
        except LookupError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return services_pb2.SubmitProblemResponse(submission_id=result["submission_id"], ticket_id=result["ticket_id"])
