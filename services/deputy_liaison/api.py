"""Deputy liaison's HTTP and gRPC adapters. Messages for deputies are in Chinese.

Who sees what: a deputy their own record, submissions, monthly lists and invitations; a liaison
officer (人大联络) the deputies it manages and theirs; the office every submission; admins the
registry. Anything else answers "not found".
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

import grpc
from fastapi import APIRouter, Depends, Query, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError

from hotline import auth, masking
from hotline.api import grpc_idempotency_key, idempotency_key
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.clock import Clock
from hotline.commands import DomainError, Invalid, NotFound
from hotline.directory import Directory
from hotline.mongo import Doc
from hotline.policy import Role
from hotline.text import ATTACHMENT_URI, MAX_ATTACHMENT_NAME_CHARS, MAX_ATTACHMENTS, TEXT_LIMITS, clean_text
from hotline.v1 import services_pb2, services_pb2_grpc, ticket_pb2
from services.deputy_liaison import commands as lc
from services.deputy_liaison import core, documents
from services.deputy_liaison.store import DeputyStore

ID = r"^[A-Za-z0-9_\-]{1,32}$"
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def _cleaned(value: Any) -> Any:
    return clean_text(value).strip() if isinstance(value, str) else value


def _level(value: str) -> str:
    try:
        return core.level_of(value)
    except Exception as exc:  # the DomainError's message, as pydantic's
        raise ValueError(str(getattr(exc, "message", exc))) from exc


def _text(field: str, least: int) -> Any:
    """A ticket text field: cleaned as intake cleans it, limited as intake limits it (hotline/text.py)."""
    def check(value: str) -> str:
        if len(value) < least:
            raise ValueError(f"内容过短，至少 {least} 个字")
        if len(value) > TEXT_LIMITS[field]:
            raise ValueError(f"内容过长，最多 {TEXT_LIMITS[field]} 个字（当前 {len(value)} 个字）")
        return value
    return Annotated[str, BeforeValidator(_cleaned), AfterValidator(check)]


Clean = Annotated[str, BeforeValidator(_cleaned)]


class DeputyIn(BaseModel):
    deputy_id: str = Field(pattern=ID, description="代表编号")
    name: Clean = Field(min_length=1, max_length=50, description="姓名")
    level: Annotated[str, AfterValidator(_level)] = Field(
        description="代表层级: national/provincial/municipal/district（全国/省/市/区）")
    street: str = Field("", max_length=16, description="选区所在街道（单位编号，如 ST01）")
    community: str = Field("", max_length=16, description="选区所在社区（单位编号，如 CM0101）")
    contact_channel: Literal["sms", "wechat", "email", "app", ""] = Field("sms", description="通知渠道")
    contact: Clean = Field("", max_length=64, description="联系方式（手机号、微信号等）")
    liaison_point: Clean = Field("", max_length=100, description="代表联系点")
    liaison_officer_id: str = Field("", max_length=64, description="负责联络的人大联络员编号")


class OfficerIn(BaseModel):
    officer_id: str = Field(pattern=ID, description="联络员编号")
    name: Clean = Field(min_length=1, max_length=50, description="姓名")
    street: str = Field("", max_length=16, description="所在街道（单位编号）")
    contact: Clean = Field("", max_length=64, description="联系方式")


class CitizenIn(BaseModel):
    name: Clean = Field("", max_length=100, description="群众姓名")
    phone: str = Field("", pattern=r"^[0-9+\-]{0,32}$", description="群众电话")
    consent: bool = Field(False, description="群众同意留存联系方式（不同意则不保存）")


class AttachmentIn(BaseModel):
    uri: str = Field(pattern=ATTACHMENT_URI, description="附件地址（只传引用）")
    name: Clean = Field("", max_length=MAX_ATTACHMENT_NAME_CHARS)
    content_type: str = Field("", max_length=100)


class ProblemIn(BaseModel):
    deputy_id: str = Field("", description="代表编号（可省略：取自登录身份）")
    title: _text("title", 2) = Field(description="问题标题")  # type: ignore[valid-type]
    content: _text("content", 5) = Field(description="群众反映的问题")  # type: ignore[valid-type]
    address: _text("address", 0) = Field("", description="地点")  # type: ignore[valid-type]
    street: str = Field("", max_length=16, description="所在街道（单位编号，可省略）")
    community: str = Field("", max_length=16, description="所在社区（单位编号，可省略）")
    citizen: CitizenIn = Field(CitizenIn.model_validate({}), description="反映问题的群众及其同意")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS,
                                            description="附件（引用）")
    ticket_type: Literal["complaint", "help", "consultation", "suggestion", "praise"] = "help"


class RatingIn(BaseModel):
    rating: Literal["满意", "基本满意", "不满意"] = Field(description="满意 / 基本满意 / 不满意")
    comment: Clean = Field("", max_length=500, description="评价意见")
    resolution: Literal["", "解决", "部分解决", "未解决"] = Field(
        "", description="问题解决情况（可选）：解决 / 部分解决 / 未解决；不填则不满意记为未解决，其余记为解决")


class EscalationIn(BaseModel):
    reason: Clean = Field("", max_length=500, description="提请督办的理由")


class MonthIn(BaseModel):
    month: str = Field(pattern=MONTH, description="月份 YYYY-MM")


class InvitationIn(BaseModel):
    deputy_id: str = Field(pattern=ID)
    month: str = Field(pattern=MONTH)
    item_id: str = Field(pattern=r"^[0-9a-f]{12}$", description="清单事项编号")
    meeting_at: datetime = Field(description="会议时间")
    place: Clean = Field(min_length=1, max_length=100, description="会议地点")
    topic: Clean = Field("", max_length=200, description="会议议题")


def may_see_deputy(who: Principal, deputy: Doc) -> bool:
    if who.role in (Role.ADMIN, Role.OFFICE):
        return True
    if who.role == Role.DEPUTY:
        return bool(deputy["deputy_id"] == who.deputy_id)
    return who.role == Role.LIAISON and deputy.get("liaison_officer_id") == who.officer_id


class Liaison:
    """The use cases of deputy liaison, shared by the HTTP and gRPC adapters."""

    def __init__(self, store: DeputyStore, bus: MessageBus, clock: Clock, directory: Directory,
                 list_policy: core.ListPolicy | None = None) -> None:
        """``bus``: the service's MessageBus with the handlers of commands.py (main registers them)."""
        self.store, self.bus, self.clock, self.directory = store, bus, clock, directory
        self.list_policy = list_policy or core.ListPolicy.load()

    # ------------------------------------------------------------ registry

    def check_area(self, street: str, community: str, what: str = "") -> None:
        """Street and community are unit ids of the directory (hotline/data/directory.json)."""
        streets = set(self.directory.parents.values())
        if street and street not in streets:
            raise Invalid(f"{what}街道编号 {street} 不在单位目录中")
        if community and community not in self.directory.parents:
            raise Invalid(f"{what}社区编号 {community} 不在单位目录中")
        if community and street and self.directory.parents[community] != street:
            raise Invalid(f"{what}社区 {community} 不属于街道 {street}")

    def name_of(self, unit_id: str) -> str:
        unit = self.directory.units.get(unit_id)
        return unit.name if unit is not None else ""

    async def register(self, deputy: DeputyIn, who: Principal, key: str) -> Doc:
        self.check_area(deputy.street, deputy.community)
        doc = deputy.model_dump()
        if who.role == Role.LIAISON:
            doc["liaison_officer_id"] = who.officer_id  # a liaison officer registers the deputies it manages
        answer: Doc = await self.bus.handle(lc.RegisterDeputy(doc, who, key, ref=deputy.deputy_id))
        return answer

    async def register_officer(self, officer: OfficerIn, who: Principal, key: str) -> Doc:
        self.check_area(officer.street, "")
        doc = officer.model_dump()
        answer: Doc = await self.bus.handle(lc.RegisterLiaisonOfficer(doc, who, key, ref=officer.officer_id))
        return answer

    async def officers(self) -> list[Doc]:
        return await self.store.officers.find({}, {"_id": 0}).to_list()

    async def import_deputies(self, filename: str, data: bytes, who: Principal, key: str) -> Doc:
        if filename.lower().endswith(".xlsx"):
            rows = core.rows_of_xlsx(data)
        elif filename.lower().endswith(".csv"):
            rows = core.rows_of_csv(data)
        else:
            raise Invalid("只支持 CSV 或 XLSX 文件")
        if not rows:
            raise Invalid("文件中没有代表数据")
        deputies, errors, row_of = [], [], {}
        for n, row in enumerate(rows, start=2):  # row 1 is the header
            try:
                deputy = DeputyIn.model_validate(row)
                self.check_area(deputy.street, deputy.community)
            except ValidationError as exc:
                errors += [f"第{n}行 {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
                continue
            except Exception as exc:
                errors.append(f"第{n}行: {getattr(exc, 'message', exc)}")
                continue
            doc = deputy.model_dump()
            if who.role == Role.LIAISON:
                doc["liaison_officer_id"] = who.officer_id
            deputies.append(doc)
            row_of[doc["deputy_id"]] = n
        if errors:
            raise Invalid("导入失败，请修正后重新导入：" + "；".join(errors[:20]))
        ids = [d["deputy_id"] for d in deputies]
        if len(set(ids)) != len(ids):
            raise Invalid("文件中代表编号重复")
        if who.role == Role.LIAISON:  # issue #19: an officer never takes over another officer's deputies
            await self.refuse_others_deputies(ids, row_of, who)
        import_id = "IMP-" + hashlib.sha1(data).hexdigest()[:16]
        batch = {"import_id": import_id, "filename": filename, "deputies": deputies, "at": self.clock.now(),
                 "by": who.subject}
        answer: Doc = await self.bus.handle(lc.ImportDeputies(batch, who, key, ref=import_id))
        return answer

    async def refuse_others_deputies(self, ids: list[str], row_of: dict[str, int], who: Principal) -> None:
        """A liaison officer's import may add deputies and change its own, never one registered to
        another officer (its contacts and submissions would follow); the admin may reassign."""
        theirs = [d async for d in self.store.deputies.find(
            {"_id": {"$in": ids}, "liaison_officer_id": {"$nin": ["", None, who.officer_id]}}, {"_id": 1})]
        if theirs:
            named = sorted((row_of[d["_id"]], str(d["_id"])) for d in theirs)
            raise DomainError("permission_denied", "导入被拒绝，未做任何修改：" + "；".join(
                f"第{n}行 代表 {deputy_id} 由其他联络员负责，只能由管理员调整" for n, deputy_id in named[:20]))

    async def deputy(self, deputy_id: str, who: Principal) -> Doc:
        found = await self.store.deputy(deputy_id)
        if found is None or not may_see_deputy(who, found):
            raise NotFound("代表", deputy_id)
        return found

    async def deputies(self, who: Principal) -> list[Doc]:
        return await self.store.all_deputies(who.officer_id if who.role == Role.LIAISON else "")

    # ------------------------------------------------------------ submissions

    async def submit(self, problem: ProblemIn, who: Principal, key: str) -> services_pb2.SubmitProblemResponse:
        if problem.deputy_id and problem.deputy_id != who.deputy_id:
            raise NotFound("代表", problem.deputy_id)  # one deputy never acts for another
        if not await self.store.deputy(who.deputy_id):
            raise NotFound("代表", f"{who.deputy_id}（未登记，请联系人大联络员登记）")
        self.check_area(problem.street, problem.community, "问题所在")
        now = self.clock.now()
        submission_id = now.strftime("%Y%m%d") + secrets.token_hex(4)  # a retry gets the first answer back
        ticket_type = ticket_pb2.TicketType.Value(f"TICKET_TYPE_{problem.ticket_type.upper()}")
        street = problem.street or self.directory.parents.get(problem.community, "")
        fields = problem.model_dump() | {"deputy_id": who.deputy_id, "street": street,
                                         "street_name": self.name_of(street)}
        answer: services_pb2.SubmitProblemResponse = await self.bus.handle(
            lc.SubmitProblem(fields, who, key, ref=submission_id, at=now, ticket_type=ticket_type))
        return answer

    async def submission(self, submission_id: str, who: Principal) -> Doc:
        found = await self.store.submission(submission_id)
        if found is None or not await self._may_see_submissions_of(found["deputy_id"], who):
            raise NotFound("问题", submission_id)
        shown(found, who)
        found["timeline"] = found.get("timeline", [])  # in the order of the case's events (one Kafka key)
        return found

    async def of_deputy(self, deputy_id: str, who: Principal, limit: int) -> list[Doc]:
        if not await self._may_see_submissions_of(deputy_id, who):
            raise NotFound("代表", deputy_id)
        return [shown(d, who) for d in await self.store.of_deputy(deputy_id, limit)]

    async def _own_submission(self, submission_id: str, who: Principal) -> Doc:
        found = await self.store.submission(submission_id)
        if found is None or found["deputy_id"] != who.deputy_id:
            raise NotFound("问题", submission_id)
        return found

    async def rate(self, submission_id: str, rating: RatingIn, who: Principal, key: str) -> Doc:
        await self._own_submission(submission_id, who)
        body = {"rating": rating.rating, "comment": rating.comment, "resolution": rating.resolution}
        answer: Doc = await self.bus.handle(lc.RateOutcome(body, who, key, ref=submission_id))
        return answer

    async def escalate(self, submission_id: str, body: EscalationIn, who: Principal, key: str) -> Doc:
        await self._own_submission(submission_id, who)
        answer: Doc = await self.bus.handle(lc.EscalateOutcome({"reason": body.reason}, who, key, ref=submission_id))
        return answer

    async def _may_see_submissions_of(self, deputy_id: str, who: Principal) -> bool:
        if who.role == Role.OFFICE:
            return True
        if who.role == Role.DEPUTY:
            return deputy_id == who.deputy_id
        deputy = await self.store.deputy(deputy_id)
        return deputy is not None and who.role == Role.LIAISON and deputy.get("liaison_officer_id") == who.officer_id

    # ------------------------------------------------------------ monthly lists

    async def publish_month(self, month: str, who: Principal, key: str) -> Doc:
        """Generate the month's lists from ticket facts and push one to every deputy with a
        constituency (event MonthlyListPublished and a notification)."""
        policy = self.list_policy
        items = core.monthly_items(await self.store.facts_of_month(month), month, policy)
        deputies = [d for d in await self.store.all_deputies() if d.get("street")]
        answer: Doc = await self.bus.handle(lc.PublishMonthlyLists({"items": items, "deputies": deputies}, who, key,
                                                                   ref=month))
        return answer

    async def monthly_list(self, deputy_id: str, month: str, who: Principal) -> Doc:
        await self.deputy(deputy_id, who)  # scope
        found: Doc | None = await self.store.monthly_lists.find_one({"_id": f"{month}/{deputy_id}"}, {"_id": 0})
        if found is None:
            raise NotFound("问题清单", f"{month}/{deputy_id}")
        return found

    async def adopt(self, deputy_id: str, month: str, item_id: str, who: Principal, key: str) -> Doc:
        if who.deputy_id != deputy_id:
            raise NotFound("代表", deputy_id)
        found = await self.monthly_list(deputy_id, month, who)
        if item_id not in {i["item_id"] for i in found["items"]}:
            raise NotFound("清单事项", item_id)
        answer: Doc = await self.bus.handle(lc.AdoptListItem({"deputy_id": deputy_id, "item_id": item_id}, who, key,
                                                             ref=found["list_id"]))
        return answer

    async def invite(self, body: InvitationIn, who: Principal, key: str) -> Doc:
        deputy = await self.deputy(body.deputy_id, who)
        found = await self.monthly_list(body.deputy_id, body.month, who)
        if body.item_id not in {i["item_id"] for i in found["items"]}:
            raise Invalid("只能邀请代表参加其选区清单事项的吹哨会议")
        now = self.clock.now()
        invitation_id = f"{found['list_id']}/{body.item_id}/{body.meeting_at:%Y%m%d%H%M}"
        doc = {**body.model_dump(), "invitation_id": invitation_id, "list_id": found["list_id"], "invited_at": now,
               "invited_by": who.subject}
        answer: Doc = await self.bus.handle(lc.InviteToWhistleMeeting({"invitation": doc, "deputy": deputy}, who, key,
                                                                      ref=invitation_id, at=now))
        return answer

    async def invitations(self, deputy_id: str, who: Principal) -> list[Doc]:
        await self.deputy(deputy_id, who)
        return await self.store.invitations.find({"deputy_id": deputy_id}, {"_id": 0}).to_list()

    # ------------------------------------------------------------ figures

    async def figures(self) -> list[Doc]:
        deputies = {d["deputy_id"]: d for d in await self.store.all_deputies()}
        rows = core.figures(await self.store.all_submissions(), deputies)
        documents.export(rows)
        return rows


def shown(submission: Doc, who: Principal) -> Doc:
    """A submission as ``who`` may read it (hotline/masking.py): the citizen's contact only for the
    deputy who brought it (the handling unit gets it from intake's ticket); never for liaison or office
    in a list (issue #19: ``GET /deputies/{id}/submissions`` returned it while ``GET /submissions/{id}``
    did not)."""
    if not (who.role == Role.DEPUTY and masking.clear(masking.CONTACT, who.role, own=True)):
        submission.pop("citizen", None)
    return submission


def http_routes(liaison: Liaison) -> APIRouter:
    api = APIRouter(tags=["deputies"])
    me = Depends(auth.principal)
    idem = Depends(idempotency_key)

    @api.post("/deputies", status_code=201, summary="登记人大代表")
    async def add_deputy(deputy: DeputyIn, who: Principal = me, key: str = idem) -> Doc:
        return await liaison.register(deputy, who, key)

    @api.get("/deputies", summary="代表名册（联络员：所联系的代表）")
    async def list_deputies(who: Principal = me) -> list[Doc]:
        return await liaison.deputies(who)

    @api.post("/deputies/import", status_code=201, summary="从 CSV 或 XLSX 导入代表")
    async def import_deputies(file: UploadFile, who: Principal = me, key: str = idem) -> Doc:
        return await liaison.import_deputies(file.filename or "", await file.read(), who, key)

    @api.get("/deputies/{deputy_id}", summary="代表信息")
    async def get_deputy(deputy_id: str, who: Principal = me) -> Doc:
        return await liaison.deputy(deputy_id, who)

    @api.post("/liaison-officers", status_code=201, summary="登记人大联络员")
    async def add_officer(officer: OfficerIn, who: Principal = me, key: str = idem) -> Doc:
        return await liaison.register_officer(officer, who, key)

    @api.get("/liaison-officers", summary="人大联络员名册")
    async def list_officers() -> list[Doc]:
        return await liaison.officers()

    @api.post("/submissions", status_code=201, summary="代表转交群众反映的问题")
    async def submit(problem: ProblemIn, who: Principal = me, key: str = idem) -> dict[str, str]:
        answer = await liaison.submit(problem, who, key)
        return {"submission_id": answer.submission_id, "ticket_id": answer.ticket_id,
                "message": "已受理，将转交承办单位办理"}

    @api.get("/submissions/{submission_id}", summary="问题办理进度（含时间线）")
    async def get_submission(submission_id: str, who: Principal = me) -> Doc:
        return await liaison.submission(submission_id, who)

    @api.get("/submissions/{submission_id}/timeline", summary="办理时间线：派单、签收、联系、答复、审核、回访、办结")
    async def timeline(submission_id: str, who: Principal = me) -> list[Doc]:
        found = await liaison.submission(submission_id, who)
        return list(found["timeline"])

    @api.post("/submissions/{submission_id}/rating", summary="代表评价办理结果")
    async def rate(submission_id: str, rating: RatingIn, who: Principal = me, key: str = idem) -> Doc:
        return await liaison.rate(submission_id, rating, who, key)

    @api.post("/submissions/{submission_id}/escalation", summary="对不满意的办理结果提请督办")
    async def escalate(submission_id: str, body: EscalationIn, who: Principal = me, key: str = idem) -> Doc:
        return await liaison.escalate(submission_id, body, who, key)

    @api.get("/deputies/{deputy_id}/submissions", summary="代表转交的问题及办理进度")
    async def of_deputy(deputy_id: str, limit: int = Query(100, ge=1, le=500), who: Principal = me) -> list[Doc]:
        return await liaison.of_deputy(deputy_id, who, limit)

    @api.post("/monthly-lists", status_code=201, summary="生成并推送每月问题清单")
    async def publish(body: MonthIn, who: Principal = me, key: str = idem) -> Doc:
        return await liaison.publish_month(body.month, who, key)

    @api.get("/deputies/{deputy_id}/monthly-lists/{month}", summary="代表的每月问题清单")
    async def monthly_list(deputy_id: str, month: str, who: Principal = me) -> Doc:
        return await liaison.monthly_list(deputy_id, month, who)

    @api.get("/deputies/{deputy_id}/monthly-lists/{month}/document", response_class=HTMLResponse,
             summary="每月问题清单（可打印）")
    async def monthly_document(deputy_id: str, month: str, who: Principal = me) -> HTMLResponse:
        found = await liaison.monthly_list(deputy_id, month, who)
        deputy = await liaison.deputy(deputy_id, who)
        return HTMLResponse(documents.monthly_html(deputy, found, liaison.directory))

    @api.post("/deputies/{deputy_id}/monthly-lists/{month}/items/{item_id}/adoption", summary="领办清单事项")
    async def adopt(deputy_id: str, month: str, item_id: str, who: Principal = me, key: str = idem) -> Doc:
        return await liaison.adopt(deputy_id, month, item_id, who, key)

    @api.post("/whistle-meetings/invitations", status_code=201, summary="邀请代表参加吹哨会议")
    async def invite(body: InvitationIn, who: Principal = me, key: str = idem) -> Doc:
        return await liaison.invite(body, who, key)

    @api.get("/deputies/{deputy_id}/invitations", summary="代表收到的吹哨会议邀请")
    async def invitations(deputy_id: str, who: Principal = me) -> list[Doc]:
        return await liaison.invitations(deputy_id, who)

    @api.get("/statistics", summary="代表履职数据：按层级和街道的转交量、按时办结率、满意率")
    async def statistics() -> list[Doc]:
        return await liaison.figures()

    return api


class DeputyGrpc(services_pb2_grpc.DeputyLiaisonServiceServicer):
    def __init__(self, liaison: Liaison) -> None:
        self.liaison = liaison

    async def SubmitProblem(  # noqa: N802
        self, request: services_pb2.SubmitProblemRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> services_pb2.SubmitProblemResponse:
        kind = ticket_pb2.TicketType.Name(request.ticket_type or ticket_pb2.TICKET_TYPE_HELP)
        d = request.details
        try:
            problem = ProblemIn.model_validate({
                "deputy_id": request.deputy_id, "title": request.title, "content": request.content,
                "address": request.address, "ticket_type": kind.removeprefix("TICKET_TYPE_").lower(),
                "street": d.street, "community": d.community,
                "citizen": {"name": d.citizen.name, "phone": d.citizen.phone, "consent": d.citizen.consent},
                "attachments": [{"uri": a.uri, "name": a.name, "content_type": a.content_type}
                                for a in d.attachments]})
        except ValidationError as exc:
            raise Invalid("提交内容不完整或格式有误：" + "；".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
        return await self.liaison.submit(problem, auth.current(), grpc_idempotency_key(context))
