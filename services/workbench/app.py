"""The workbench (工作台): server-rendered pages for handling units, the district office,
deputies and leaders. Every page calls the services' APIs with the signed-in person's token;
the services decide what that person may see and do (their 403/404 become a clear page). The
workbench keeps no data: the session cookie (signed, HttpOnly) holds the token."""

from __future__ import annotations

import secrets
import urllib.parse
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from google.protobuf.timestamp_pb2 import Timestamp

from hotline.auth import AuthError, Principal, Verifier, issue
from hotline.policy import SCOPE_CLAIM, Role
from hotline.security import limit_bodies
from hotline.settings import Settings
from hotline.v1 import case_pb2, events_pb2, knowledge_pb2, kpis_pb2, lifecycle_pb2, services_pb2, ticket_pb2
from services.workbench import charts, core, day, knowledge, letters, office, park_forms
from services.workbench import security as csrf
from services.workbench.clients import Refused, Services, optional, similar_panel
from services.workbench.core import Action
from services.workbench.names import Names
from services.workbench.security import secure_cookies

HERE = Path(__file__).resolve().parent
COOKIE, FLASH, STATE = "hotline_session", "hotline_flash", "hotline_oidc_state"
TICKET_TYPES = {"help": "求助", "complaint": "投诉", "consultation": "咨询", "suggestion": "建议", "praise": "表扬"}


class SignIn(Exception):
    """No valid session: go to the sign-in page."""


def build(settings: Settings) -> FastAPI:
    app = FastAPI(title="12345 工作台", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    services = Services(settings)
    verifier = Verifier(settings.auth)
    secret = settings.workbench.session_secret.get_secret_value()
    tz = ZoneInfo(settings.timezone)
    oidc = settings.workbench
    secure = secure_cookies(oidc)  # Secure whenever the public URL is https (issue #19)
    dev_sign_in = settings.development and bool(settings.auth.dev_secret)  # never in production
    csrf.install(app, templates, secret, secure)  # csrf_input() and the 403 of a POST without its token
    limit_bodies(app, settings, browser=True)  # 413 past 1 MiB; CSP, X-Frame-Options, nosniff, Referrer-Policy

    def when(ts: Timestamp | None) -> str:
        if ts is None or not (ts.seconds or ts.nanos):
            return "—"
        return ts.ToDatetime(UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")

    def iso(ts: Timestamp | None) -> str:
        return ts.ToDatetime(UTC).isoformat() if ts is not None and ts.seconds else ""

    def deadline(ts: Timestamp | None) -> dict[str, Any]:
        due = ts.ToDatetime(UTC) if ts is not None and ts.seconds else None
        text, overdue = core.countdown(due, datetime.now(UTC))
        return {"at": when(ts), "iso": iso(ts), "text": text, "overdue": overdue}

    def local(value: str | None) -> str:
        """An ISO time from an HTTP read model, in district time like every other time shown."""
        try:
            at = datetime.fromisoformat(str(value))
        except ValueError:
            return "—"
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(tz).strftime("%Y-%m-%d %H:%M")

    templates.env.filters["local"] = local
    templates.env.filters["role_label"] = lambda role: core.ROLE_LABELS.get(role, role)
    templates.env.globals.update(when=when, deadline=deadline, STATE_LABELS=core.STATE_LABELS,
                                 ROLE_LABELS=core.ROLE_LABELS, Action=Action,
                                 case_pb2=case_pb2, ticket_pb2=ticket_pb2, TICKET_TYPES=TICKET_TYPES,
                                 development_sign_in=dev_sign_in)
    names = Names()  # units, streets, communities by name (the directory); ids only as secondary text
    templates.env.globals.update(names=names, unit=names.unit, LEVELS=core.SUPERVISION_LEVELS, LANES=day.lanes(),
                                 URGENCY=day.URGENCY, state_name=events_pb2.CaseState.Name)
    templates.env.filters["humanize"] = names.humanize

    def session(request: Request) -> tuple[str, Principal]:
        data = core.unsign(request.cookies.get(COOKIE, ""), secret)
        if not data or not data.get("token"):
            raise SignIn
        try:
            return str(data["token"]), verifier.verify(str(data["token"]))
        except AuthError as exc:
            raise SignIn from exc

    def page(request: Request, name: str, who: Principal | None, status: int = 200, **context: Any) -> Response:
        flash = core.unsign(request.cookies.get(FLASH, ""), secret)
        response = templates.TemplateResponse(request, name, {"who": who, "flash": flash, **context},
                                              status_code=status)
        if flash:
            response.delete_cookie(FLASH)
        return response

    def go(url: str, ok: bool = True, message: str = "") -> RedirectResponse:
        response = RedirectResponse(url, status_code=303)
        if message:
            response.set_cookie(FLASH, core.sign({"ok": ok, "message": message}, secret), httponly=True,
                                samesite="lax", max_age=60, secure=secure)
        return response

    def signed_in(token: str) -> RedirectResponse:
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, core.sign({"token": token}, secret), httponly=True, samesite="lax",
                            secure=secure, max_age=settings.auth.default_ttl_minutes * 60)
        return response

    @app.exception_handler(SignIn)
    async def to_sign_in(request: Request, exc: SignIn) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        try:
            _, who = session(request)
        except SignIn:
            who = None
        return page(request, "error.html", who, status=exc.status, error=exc)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # ------------------------------------------------------------ sign-in

    @app.get("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        return page(request, "login.html", None, dev=dev_sign_in,
                    provider=bool(oidc.oidc_authorize_url), issuer=oidc.oidc_issuer,
                    roles=[r for r in Role if r != Role.SYSTEM])

    @app.post("/login/dev")
    async def login_dev(request: Request) -> Response:
        if not dev_sign_in:  # production: the route does not exist
            return Response("Not Found", status_code=404, media_type="text/plain")
        form = await request.form()
        try:
            role = Role(str(form.get("role", "")))
        except ValueError:
            return go("/login", False, "请选择角色")
        scope = {k: str(form.get(k, "")).strip() for k in ("unit_id", "deputy_id", "officer_id")}
        claim = SCOPE_CLAIM.get(role)
        if claim and not scope[claim]:
            label = {"unit_id": "单位编号", "deputy_id": "代表编号", "officer_id": "联络员编号"}[claim]
            return go("/login", False, f"{core.ROLE_LABELS[role]}登录需要填写{label}")
        kept = {k: (v if k == claim else "") for k, v in scope.items()}
        return signed_in(issue(settings.auth, role, unit_id=kept["unit_id"], deputy_id=kept["deputy_id"],
                               officer_id=kept["officer_id"]))

    @app.get("/login/oidc")
    async def login_oidc() -> Response:
        if not oidc.oidc_authorize_url:
            return go("/login", False, "未配置统一身份认证")
        state = secrets.token_urlsafe(24)
        query = urllib.parse.urlencode({"response_type": "code", "client_id": oidc.oidc_client_id,
                                        "redirect_uri": oidc.oidc_redirect_url, "scope": oidc.oidc_scope,
                                        "state": state})
        response = RedirectResponse(f"{oidc.oidc_authorize_url}?{query}", status_code=303)
        response.set_cookie(STATE, state, httponly=True, samesite="lax", max_age=600, secure=secure)
        return response

    @app.get("/auth/callback")
    async def callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
        if error or not code:
            return go("/login", False, f"统一身份认证未通过：{error or '没有授权码'}")
        if not state or not secrets.compare_digest(state, request.cookies.get(STATE, "")):
            return go("/login", False, "登录请求已过期或不匹配，请重新登录")
        async with httpx.AsyncClient(timeout=15) as client:
            answer = await client.post(oidc.oidc_token_url, data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": oidc.oidc_redirect_url,
                "client_id": oidc.oidc_client_id, "client_secret": oidc.oidc_client_secret.get_secret_value()})
        token = answer.json().get("access_token") if answer.status_code == 200 else None
        if not token:
            return go("/login", False, f"换取令牌失败（HTTP {answer.status_code}）")
        try:
            verifier.verify(token)
        except AuthError as exc:
            return go("/login", False, f"令牌无效：{exc}")
        response = signed_in(token)
        response.delete_cookie(STATE)
        return response

    @app.post("/logout")
    async def logout() -> Response:
        response = go("/login", True, "已退出登录")
        response.delete_cookie(COOKIE)
        return response

    @app.get("/")
    async def home(request: Request) -> Response:
        _, who = session(request)
        target = {Role.UNIT: "/inbox", Role.OFFICE: "/office", Role.ADMIN: "/office", Role.DEPUTY: "/deputy",
                  Role.LIAISON: "/responsibilities"}.get(who.role, "/kpis")
        return RedirectResponse(target, status_code=303)

    # ------------------------------------------------------------ cases

    def due_of(c: events_pb2.Case) -> Timestamp:
        return c.sign_off_due if c.state == events_pb2.CASE_STATE_AWAITING_SIGN_OFF else c.reply_due

    @app.get("/inbox", response_class=HTMLResponse)
    async def inbox(request: Request, sort: str = "due", desc: str = "") -> Response:
        token, who = session(request)
        number = request.query_params.get("page", "1")
        due = await workday.find(token, "/inbox", size=50, open_only=True, due_within_days=1)  # overdue first
        mine = await workday.find(token, "/inbox", open_only=True, primary=True, sort=sort, desc=desc,
                                  page=int(number) if number.isdigit() and int(number) > 0 else 1)
        assisting = await workday.find(token, "/inbox", size=50, open_only=True, assisting=True, unit_id=who.unit_id)
        reminders = await park_forms.reminders(services, token)  # 事前提醒 (issue #22)
        return page(request, "inbox.html", who, due=due, mine=mine, assisting=assisting, due_of=due_of,
                    reminders=reminders)

    @app.get("/cases/{ticket_id}", response_class=HTMLResponse)
    async def case_page(request: Request, ticket_id: str) -> Response:
        token, who = session(request)
        case = await services.call(token, "supervision", "GetCase", services_pb2.GetCaseRequest(ticket_id=ticket_id))
        ticket = await optional(lambda: services.call(token, "intake", "GetTicket",
                                                      services_pb2.GetTicketRequest(ticket_id=ticket_id)))
        history = await services.call(token, "supervision", "GetCaseHistory",
                                      lifecycle_pb2.GetCaseHistoryRequest(ticket_id=ticket_id))
        # 可办理的操作: supervision answers which actions this person may take now (its lifecycle decides)
        offered = core.Offered.of((await services.get(
            token, "supervision", f"/cases/{urllib.parse.quote(ticket_id, safe='')}/actions")).json())
        similar = await similar_panel(services, token, ticket_id)  # 相似办结案例与知识库
        direct = Action.DIRECT_ANSWER in offered.names and case.ticket_type == ticket_pb2.TICKET_TYPE_CONSULTATION
        key = uuid.uuid4().hex
        return page(request, "case.html", who, case=case, ticket=ticket, history=history.entries,
                    actions=offered.forms, action_label=offered.label, key=key, due_of=due_of, similar=similar,
                    direct=f"{key}-direct" if direct else "",
                    **await workday.case_extras(token, who, ticket_id))

    def number(form: Any, name: str) -> Any:  # an int; Any: also a protobuf enum value
        try:
            return int(str(form.get(name, "") or 0))
        except ValueError:
            return -1

    @app.post("/cases/{ticket_id}/{action}")
    async def act(request: Request, ticket_id: str, action: str) -> Response:
        token, _ = session(request)
        form = await request.form()
        text = {k: str(v).strip() for k, v in form.items()}
        key, back = text.get("key", ""), f"/cases/{urllib.parse.quote(ticket_id)}"
        if action in park_forms.LABELS:  # 挂账审批, 恢复办理 (issue #22)
            return go(back, *await park_forms.act(services, token, ticket_id, action, text))
        L = lifecycle_pb2  # noqa: N806
        requests: dict[str, tuple[str, Any, str]] = {
            Action.SIGN_OFF: ("SignOff", L.SignOffRequest(ticket_id=ticket_id, note=text.get("note", "")), "已签收"),
            Action.ASSIST_SIGN_OFF: ("SignOff", L.SignOffRequest(ticket_id=ticket_id, note=text.get("note", "")),
                                     "已签收协办"),
            Action.RECORD_CONTACT: ("RecordContact", L.RecordContactRequest(
                ticket_id=ticket_id, channel=number(form, "channel"), outcome=number(form, "outcome"),
                note=text.get("note", "")), "已记录联系情况"),
            Action.REPLY: ("Reply", L.ReplyRequest(ticket_id=ticket_id, result=number(form, "result"),
                                                   text=text.get("text", ""),
                                                   explanation=text.get("explanation", "")),
                           "已办结反馈，等待区热线办审核"),
            Action.REQUEST_EXTENSION: ("RequestExtension", L.RequestExtensionRequest(
                ticket_id=ticket_id, working_days=number(form, "working_days"), reason=text.get("reason", "")),
                "已提交延期申请，等待区热线办审批"),
            Action.PARK: ("Park", L.ParkRequest(ticket_id=ticket_id, plan=text.get("plan", ""),
                                                target_date=text.get("target_date", ""),
                                                reason=text.get("reason", "")),
                          "已提交挂账申请，等待区热线办审批"),
            Action.REPORT_PROGRESS: ("ReportProgress", L.ReportProgressRequest(
                ticket_id=ticket_id, progress=text.get("progress", "")), "已报送挂账进展"),
            Action.REQUEST_RETURN: ("RequestReturn", L.RequestReturnRequest(
                ticket_id=ticket_id, reason=text.get("reason", "")), "已提交退单申请，等待重新派单决定"),
            Action.CONTRIBUTE: ("Contribute", L.ContributeRequest(ticket_id=ticket_id, text=text.get("text", "")),
                                "已提交协办意见"),
            Action.REVIEW: ("Review", L.ReviewRequest(
                ticket_id=ticket_id, passed=text.get("passed") == "1", reason=text.get("reason", ""),
                redo_working_days=max(0, number(form, "redo_working_days"))),
                "审核通过，办理结果已回传市平台" if text.get("passed") == "1" else "审核未通过，已退回承办单位重办"),
            Action.DECIDE_EXTENSION: ("DecideExtension", L.DecideExtensionRequest(
                ticket_id=ticket_id, approved=text.get("approved") == "1", reason=text.get("reason", ""),
                working_days=max(0, number(form, "working_days"))),
                "已批准延期" if text.get("approved") == "1" else "已驳回延期申请"),
            Action.DECIDE_REDO: ("DecideRedo", L.DecideRedoRequest(
                ticket_id=ticket_id, redo=text.get("redo") == "1", reason=text.get("reason", ""),
                redo_working_days=max(0, number(form, "redo_working_days"))),
                "已决定重办" if text.get("redo") == "1" else "已结案"),
            Action.WAIVE_ASSIST: ("WaiveAssist", L.WaiveAssistRequest(
                ticket_id=ticket_id, unit_id=text.get("unit_id", ""), reason=text.get("reason", "")), "已免于协办"),
            Action.DIRECT_ANSWER: ("DirectAnswer", knowledge_pb2.DirectAnswerRequest(
                ticket_id=ticket_id, text=text.get("text", ""), article=knowledge_pb2.ArticleRef(
                    article_id=text.get("article_id", ""), version=max(0, number(form, "article_version")),
                    title=text.get("article_title", ""), unit_id=text.get("article_unit", ""))),
                "已用知识库文章直接答复，等待区热线办审核"),
        }
        if action not in requests:
            return go(back, False, f"没有这个操作：{action}")
        method, message, done = requests[action]
        try:
            case = await services.call(token, "supervision", method, message, key=key)
        except Refused as exc:
            return go(back, False, f"{core.ACTION_LABELS.get(action, action)}未成功。{names.humanize(exc.message)}")
        return go(back, True, f"{done}（工单 {ticket_id}，当前状态：{core.STATE_LABELS.get(case.state, '')}）")

    # ------------------------------------------------------------ district office

    @app.get("/office", response_class=HTMLResponse)
    async def office_home(request: Request) -> Response:
        token, who = session(request)
        office.require_office(who)
        lists = {s: await workday.find(token, "/search", size=10, state=[events_pb2.CaseState.Name(s)])
                 for s in (events_pb2.CASE_STATE_REPLIED, events_pb2.CASE_STATE_EXTENSION_REQUESTED,
                           events_pb2.CASE_STATE_EVALUATED, events_pb2.CASE_STATE_RETURN_REQUESTED)}
        overdue = await workday.find(token, "/search", size=10, open_only=True, overdue=True)
        return page(request, "office.html", who, lists=lists, overdue=overdue, due_of=due_of)

    templates.env.globals["due_of"] = due_of
    workday = day.Day(session=session, page=page, go=go, services=services, names=names, tz=tz)
    day.register(app, workday)
    pages = office.Pages(session=session, page=page, go=go, services=services, settings=settings,
                         due_of=due_of, when=when)
    office.register(app, pages)
    office.register_policy_editor(app, pages)
    knowledge.register(app, pages)
    letters.register(app, pages)  # 公文流转 (services/workbench/letters.py)

    @app.get("/responsibilities", response_class=HTMLResponse)
    async def responsibilities(request: Request) -> Response:
        token, who = session(request)
        rows = (await services.get(token, "routing", "/responsibilities")).json()
        return page(request, "responsibilities.html", who, rows=rows)

    # ------------------------------------------------------------ deputies

    @app.get("/deputy", response_class=HTMLResponse)
    async def deputy(request: Request) -> Response:
        token, who = session(request)
        rows = (await services.get(token, "deputy_liaison",
                                   f"/deputies/{urllib.parse.quote(who.deputy_id)}/submissions")).json()
        return page(request, "deputy.html", who, rows=rows, key=uuid.uuid4().hex)

    @app.get("/deputy/submissions/{submission_id}", response_class=HTMLResponse)
    async def submission(request: Request, submission_id: str) -> Response:
        token, who = session(request)
        doc = (await services.get(token, "deputy_liaison",
                                  f"/submissions/{urllib.parse.quote(submission_id)}")).json()
        return page(request, "submission.html", who, doc=doc)

    @app.post("/deputy/submit")
    async def submit(request: Request) -> Response:
        token, who = session(request)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        kind = form.get("ticket_type", "help")
        kind = kind if kind in TICKET_TYPES else "help"
        try:
            answer = await services.call(token, "deputy_liaison", "SubmitProblem", services_pb2.SubmitProblemRequest(
                deputy_id=who.deputy_id, title=form.get("title", ""), content=form.get("content", ""),
                address=form.get("address", ""),
                ticket_type=ticket_pb2.TicketType.Value(f"TICKET_TYPE_{kind.upper()}")), key=form.get("key", ""))
        except Refused as exc:
            return go("/deputy", False, f"提交未成功。{exc.message}")
        return go("/deputy", True,
                  f"已受理，将转交承办单位办理（编号 {answer.submission_id}，工单 {answer.ticket_id}）")

    # ------------------------------------------------------------ leaders

    @app.get("/kpis", response_class=HTMLResponse)
    async def kpis(request: Request, period: str = "") -> Response:
        token, who = session(request)
        total = await services.call(token, "metrics", "GetKpis", kpis_pb2.GetKpisRequest(period=period))
        units = await services.call(token, "metrics", "GetKpis", kpis_pb2.GetKpisRequest(
            period=period, group_by=["unit"]))
        ranking = sorted(units.groups, key=lambda g: (not g.has_score, -g.score, -g.tickets))
        reports = await optional(lambda: services.call(token, "metrics", "ListReports",
                                                       kpis_pb2.ListReportsRequest()))
        return page(request, "kpis.html", who, total=total.total, ranking=ranking, period=period,
                    chart=charts.rates_svg(total.total.rates),
                    ranking_chart=charts.scores_svg([(names.unit(g.key.get("unit", "?")), g.score) for g in ranking
                                                     if g.has_score][:15]),
                    reports=reports.reports if reports else None, policy=total.policy_version)

    @app.get("/reports/{report_id}/{fmt}")
    async def report_file(request: Request, report_id: str, fmt: str) -> Response:
        token, _ = session(request)
        answer = await services.get(token, "metrics", f"/reports/{urllib.parse.quote(report_id)}/{fmt}")
        return Response(answer.content, media_type=answer.headers.get("content-type"),
                        headers={"Content-Disposition": f'attachment; filename="{report_id}.{fmt}"'})

    return app
