"""Deputy liaison's HTTP and gRPC adapters. Messages for deputies are in Chinese.

Who sees what: a deputy their own record and submissions; a liaison officer (人大联络) the
deputies it manages and their submissions; the office every submission; admins the registry.
Anything else answers "not found".
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

import grpc
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, ValidationError

from hotline import auth
from hotline.api import grpc_idempotency_key, idempotency_key
from hotline.auth import Principal
from hotline.clock import Clock
from hotline.commands import Command, CommandBus, Invalid, NotFound
from hotline.mongo import Doc
from hotline.policy import Role
from hotline.v1 import services_pb2, services_pb2_grpc, ticket_pb2
from services.deputy_liaison import core
from services.deputy_liaison.store import DeputyRepository, DeputyStore, SubmissionRepository


class DeputyIn(BaseModel):
    deputy_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$", description="代表编号")
    name: str = Field(min_length=1, max_length=50, description="姓名")
    level: Literal["区", "市", "省", "全国"] = Field(description="代表层级")
    liaison_point: str = Field("", max_length=100, description="代表联系点")
    liaison_officer_id: str = Field("", max_length=64, description="负责联络的人大联络员（联络员登记时为本人）")


class ProblemIn(BaseModel):
    deputy_id: str = Field("", description="代表编号（可省略：取自登录身份）")
    title: str = Field(min_length=2, max_length=200, description="问题标题")
    content: str = Field(min_length=5, max_length=5000, description="群众反映的问题")
    address: str = Field("", max_length=200, description="地址")
    ticket_type: Literal["complaint", "help", "consultation", "suggestion", "praise"] = "help"


def may_see_deputy(who: Principal, deputy: Doc) -> bool:
    if who.role in (Role.ADMIN, Role.OFFICE):
        return True
    if who.role == Role.DEPUTY:
        return bool(deputy["deputy_id"] == who.deputy_id)
    return who.role == Role.LIAISON and deputy.get("liaison_officer_id") == who.officer_id


class Liaison:
    """The use cases of deputy liaison, shared by the HTTP and gRPC adapters."""

    def __init__(self, store: DeputyStore, commands: CommandBus, topic: str, clock: Clock) -> None:
        self.store, self.commands, self.topic, self.clock = store, commands, topic, clock

    async def register(self, deputy: DeputyIn, who: Principal, key: str) -> Doc:
        doc = deputy.model_dump()
        if who.role == Role.LIAISON:
            doc["liaison_officer_id"] = who.officer_id  # a liaison officer registers the deputies it manages
        command = Command("register_deputy", deputy.deputy_id, who, key)
        answer: Doc = await self.commands.run(command, DeputyRepository(self.store), lambda existing:
                                              core.register(existing, doc), self.topic)
        return answer

    async def deputy(self, deputy_id: str, who: Principal) -> Doc:
        found = await self.store.deputy(deputy_id)
        if found is None or not may_see_deputy(who, found):
            raise NotFound("代表", deputy_id)
        return found

    async def submit(self, problem: ProblemIn, who: Principal, key: str) -> services_pb2.SubmitProblemResponse:
        if problem.deputy_id and problem.deputy_id != who.deputy_id:
            raise NotFound("代表", problem.deputy_id)  # one deputy never acts for another
        if not await self.store.deputy(who.deputy_id):
            raise NotFound("代表", f"{who.deputy_id}（未登记，请联系人大联络员登记）")
        now = self.clock.now()
        submission_id = now.strftime("%Y%m%d") + secrets.token_hex(4)  # a retry gets the first answer back
        ticket_type = ticket_pb2.TicketType.Value(f"TICKET_TYPE_{problem.ticket_type.upper()}")
        fields = problem.model_dump() | {"deputy_id": who.deputy_id}
        command = Command("submit_problem", submission_id, who, key)
        answer: services_pb2.SubmitProblemResponse = await self.commands.run(
            command, SubmissionRepository(self.store),
            lambda _: core.submit(submission_id, fields, ticket_type, now), self.topic)
        return answer

    async def submission(self, submission_id: str, who: Principal) -> Doc:
        found = await self.store.submission(submission_id)
        if found is None or not await self._may_see_submissions_of(found["deputy_id"], who):
            raise NotFound("问题", submission_id)
        return found

    async def of_deputy(self, deputy_id: str, who: Principal, limit: int) -> list[Doc]:
        if not await self._may_see_submissions_of(deputy_id, who):
            raise NotFound("代表", deputy_id)
        return await self.store.of_deputy(deputy_id, limit)

    async def _may_see_submissions_of(self, deputy_id: str, who: Principal) -> bool:
        if who.role == Role.OFFICE:
            return True
        if who.role == Role.DEPUTY:
            return deputy_id == who.deputy_id
        deputy = await self.store.deputy(deputy_id)
        return deputy is not None and who.role == Role.LIAISON and deputy.get("liaison_officer_id") == who.officer_id


def http_routes(liaison: Liaison) -> APIRouter:
    api = APIRouter(tags=["deputies"])
    me = Depends(auth.principal)

    @api.post("/deputies", status_code=201, summary="登记人大代表")
    async def add_deputy(deputy: DeputyIn, who: Principal = me, key: str = Depends(idempotency_key)) -> Doc:
        return await liaison.register(deputy, who, key)

    @api.get("/deputies/{deputy_id}", summary="代表信息")
    async def get_deputy(deputy_id: str, who: Principal = me) -> Doc:
        return await liaison.deputy(deputy_id, who)

    @api.post("/submissions", status_code=201, summary="代表转交群众反映的问题")
    async def submit(problem: ProblemIn, who: Principal = me, key: str = Depends(idempotency_key)) -> dict[str, str]:
        answer = await liaison.submit(problem, who, key)
        return {"submission_id": answer.submission_id, "ticket_id": answer.ticket_id,
                "message": "已受理，将转交承办单位办理"}

    @api.get("/submissions/{submission_id}", summary="问题办理进度")
    async def get_submission(submission_id: str, who: Principal = me) -> Doc:
        return await liaison.submission(submission_id, who)

    @api.get("/deputies/{deputy_id}/submissions", summary="代表转交的问题及办理进度")
    async def of_deputy(deputy_id: str, limit: int = Query(100, ge=1, le=500), who: Principal = me) -> list[Doc]:
        return await liaison.of_deputy(deputy_id, who, limit)

    return api


class DeputyGrpc(services_pb2_grpc.DeputyLiaisonServiceServicer):
    def __init__(self, liaison: Liaison) -> None:
        self.liaison = liaison

    async def SubmitProblem(  # noqa: N802
        self, request: services_pb2.SubmitProblemRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> services_pb2.SubmitProblemResponse:
        kind = ticket_pb2.TicketType.Name(request.ticket_type or ticket_pb2.TICKET_TYPE_HELP)
        try:
            problem = ProblemIn.model_validate({
                "deputy_id": request.deputy_id, "title": request.title, "content": request.content,
                "address": request.address, "ticket_type": kind.removeprefix("TICKET_TYPE_").lower()})
        except ValidationError as exc:
            raise Invalid(f"提交内容不完整或格式有误: {exc.errors(include_url=False)}") from exc
        return await self.liaison.submit(problem, auth.current(), grpc_idempotency_key(context))
