"""A working day in the workbench (工作台): the case lists every role triages from, the search
page (案件查询) with its export, and the office's pages beyond dispatch: the supervision board's
overdue and due-today cases (督办看板), whistles (吹哨报到), the 屡办不成 monthly list, on-site
meetings (有请诉求人到场), merges with their suggestions (并单), 督办 letters (print view) and
conduct visits (明察暗访).

Every list is one call of supervision's ``GET /case-search`` (filters, sort and paging on the
server, a unit only its own cases); the pages call the services with the signed-in person's
token and show their refusals in Chinese with unit names, never bare ids.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from google.protobuf import json_format

from hotline.auth import Principal
from hotline.policy import Role
from hotline.settings import REPO_ROOT
from hotline.v1 import events_pb2, routing_pb2, ticket_pb2
from services.workbench import core
from services.workbench.clients import Refused, Services, optional
from services.workbench.names import Names

WHISTLERS = ("UNIT_TYPE_STREET", "UNIT_TYPE_DEPARTMENT")  # as supervision's whistles.WHISTLERS

PAGE_SIZE = 20
EXPORT_MAX = 500  # tickets one export of a search carries (the export is asked for them by id)
SEARCH_ROLES = frozenset({Role.OFFICE, Role.ADMIN, Role.UNIT, Role.LEADER})
SORT_LABELS = {"due": "时限", "received": "受理时间", "level": "督办级别", "state": "状态", "ticket": "工单编号",
               "updated": "最近办理"}
URGENCY = {ticket_pb2.URGENCY_URGENT: "紧急", ticket_pb2.URGENCY_NORMAL: "一般"}
FILTERS = ("q", "unit_id", "category", "rule_id", "street", "state", "lane", "received_from", "received_to",
           "overdue", "level", "sort", "desc", "page")
WHISTLE_STATES = {"WHISTLE_STATE_OPEN": "待报到", "WHISTLE_STATE_REPORTED": "已全部报到",
                  "WHISTLE_STATE_CLOSED": "已办结"}
SUPERVISION_STATES = {"SUPERVISION_STATE_OPEN": "督办中", "SUPERVISION_STATE_RESOLVED": "已办结",
                      "SUPERVISION_STATE_UNRESOLVED": "未解决"}


def lanes() -> dict[str, str]:
    """The SLA policy's lanes (通道) by name, with their Chinese labels (the shipped policy file)."""
    try:
        doc = json.loads((REPO_ROOT / "hotline/data/sla_policy.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {lane["name"]: lane.get("label", lane["name"]) for lane in doc.get("lanes", []) if "name" in lane}


@dataclass
class Listing:
    """One page of a case list: rows (``case``: the Case message, with title, address, street...)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    page: int = 1
    size: int = PAGE_SIZE
    params: dict[str, Any] = field(default_factory=dict)
    path: str = "/search"

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    def url(self, **changes: Any) -> str:
        """This list's address with some parameters changed (sort, page)."""
        params = {k: v for k, v in {**self.params, **changes}.items() if v not in ("", None, False, [])}
        return f"{self.path}?{urllib.parse.urlencode(params, doseq=True)}"

    def sort_url(self, key: str) -> str:
        same = self.params.get("sort", "due") == key
        return self.url(sort=key, desc="1" if same and not self.params.get("desc") else "", page="")


def case_of(doc: dict[str, Any]) -> events_pb2.Case:
    return json_format.ParseDict(doc, events_pb2.Case(), ignore_unknown_fields=True)


def month_now(tz: ZoneInfo) -> str:
    return datetime.now(UTC).astimezone(tz).strftime("%Y-%m")


def local_ts(text: str, tz: ZoneInfo) -> str:
    """A datetime-local form value (district time) as an RFC 3339 UTC string ("" when empty)."""
    if not text:
        return ""
    at = datetime.fromisoformat(text)
    at = at if at.tzinfo else at.replace(tzinfo=tz)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Day:
    session: Callable[[Request], tuple[str, Principal]]
    page: Callable[..., Response]
    go: Callable[..., RedirectResponse]
    services: Services
    names: Names
    tz: ZoneInfo

    async def find(self, token: str, path: str = "/search", size: int = PAGE_SIZE, **params: Any) -> Listing:
        """One page of supervision's case search; ``params`` as the search page's fields."""
        clean = {k: v for k, v in params.items() if v not in ("", None, False, [], "0") or k == "level"}
        if clean.get("level") in ("", None, "-1"):
            clean.pop("level", None)
        query = dict(clean)
        query.setdefault("size", size)
        if query.get("overdue"):
            query["overdue"] = "true"
        if query.get("desc"):
            query["desc"] = "true"
        answer = (await self.services.get(token, "supervision", "/case-search", **query)).json()
        rows = [{**r, "case": case_of(r["case"])} for r in answer["cases"]]
        return Listing(rows, answer["total"], answer["page"], answer["size"], clean, path)

    def message(self, exc: Refused) -> str:
        return self.names.humanize(exc.message)

    async def case_extras(self, token: str, who: Principal, ticket_id: str) -> dict[str, Any]:
        """What the case page shows beside the lifecycle: its 督办 (levels, visits, meeting, merges)
        and, for the office, the merge suggestions with their titles."""
        path = f"/cases/{urllib.parse.quote(ticket_id)}"
        found = await optional(lambda: self.services.get(token, "supervision", f"{path}/supervision"))
        sup = found.json() if found is not None else None
        suggestions: list[dict[str, Any]] = []
        if who.role in (Role.OFFICE, Role.ADMIN):
            answer = await optional(lambda: self.services.get(token, "supervision", f"{path}/merge-suggestions"))
            merged = set((sup or {}).get("merged", []))
            raw = [s for s in (answer.json().get("suggestions", []) if answer is not None else [])
                   if s["ticket_id"] not in merged]
            if raw:
                listing = await self.find(token, size=50, ticket_id=[s["ticket_id"] for s in raw])
                cards = {r["case"].ticket_id: r for r in listing.rows}
                suggestions = [{**s, "row": cards.get(s["ticket_id"])} for s in raw]
        return {"sup": sup, "suggestions": suggestions, "SUPERVISION_STATES": SUPERVISION_STATES}


def search_params(request: Request) -> dict[str, Any]:
    q = request.query_params
    params: dict[str, Any] = {k: q.get(k, "") for k in FILTERS if k != "state"}
    params["state"] = [s for s in q.getlist("state") if s]
    return params


def register(app: FastAPI, d: Day) -> None:  # noqa: C901 (one page per function, registered here)
    services, names = d.services, d.names

    async def form(request: Request) -> dict[str, str]:
        return {k: str(v).strip() for k, v in (await request.form()).items()}

    async def items(token: str) -> list[routing_pb2.ListItem]:
        found = await optional(lambda: services.call(token, "routing", "ListListItems",
                                                     routing_pb2.ListListItemsRequest()))
        return list(found.items) if found is not None else []

    def searcher(request: Request) -> tuple[str, Principal]:
        token, who = d.session(request)
        if who.role not in SEARCH_ROLES:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                          f"案件查询不向您的角色开放（您的角色：{core.ROLE_LABELS.get(who.role, who.role)}）")
        return token, who

    # ------------------------------------------------------------ 案件查询

    @app.get("/search", response_class=HTMLResponse)
    async def search(request: Request) -> Response:
        token, who = searcher(request)
        params = search_params(request)
        if who.role == Role.UNIT:
            params["unit_id"] = ""
        error = ""
        listing = Listing(params=params)
        try:
            listing = await d.find(token, **params)
        except Refused as exc:
            error = d.message(exc)
        list_items = await items(token)
        return d.page(request, "search.html", who, listing=listing, params=params, error=error,
                      units=names.handling(), streets=names.streets(), list_items=list_items,
                      categories=sorted({i.category for i in list_items}), LANES=lanes(),
                      export=urllib.parse.urlencode({k: v for k, v in params.items() if v and k != "page"},
                                                    doseq=True))

    @app.get("/search/export.{fmt}")
    async def search_export(request: Request, fmt: str) -> Response:
        token, who = searcher(request)
        if fmt not in ("csv", "xlsx"):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "导出格式只能是 csv 或 xlsx")
        params = search_params(request)
        params.pop("page", None)
        ids: list[str] = []
        page = 1
        while len(ids) < EXPORT_MAX:
            listing = await d.find(token, size=200, page=page, **params)
            ids.extend(r["case"].ticket_id for r in listing.rows)
            if page >= listing.pages:
                break
            page += 1
        if not ids:
            return d.go(f"/search?{urllib.parse.urlencode(params, doseq=True)}", False, "没有可导出的案件")
        answer = await services.get(token, "metrics", f"/exports/cases/{fmt}", ticket=ids[:EXPORT_MAX])
        return Response(answer.content, media_type=answer.headers.get("content-type"),
                        headers={"Content-Disposition": f'attachment; filename="cases-search.{fmt}"'})

    # ------------------------------------------------------------ 督办函, 督办, 明察暗访, 到场, 并单 (on a case)

    @app.get("/cases/{ticket_id}/letter", response_class=HTMLResponse)
    async def letter(request: Request, ticket_id: str) -> Response:
        token, _ = d.session(request)
        answer = await services.get(token, "supervision", f"/cases/{urllib.parse.quote(ticket_id)}/supervision/letter")
        text = names.humanize(answer.text)
        bar = ('<div class="noprint" style="margin:12px 0">'
               '<button type="button" onclick="window.print()">打印督办函</button> '
               f'<a href="/cases/{urllib.parse.quote(ticket_id)}">返回工单</a></div>'
               '<style>@media print {.noprint {display:none}}</style>')
        return HTMLResponse(text.replace("<body>", "<body>" + bar, 1) if "<body>" in text else bar + text)

    async def escalate(request: Request, ticket_id: str, path: str, body: dict[str, Any], label: str,
                       done: str, back: str = "") -> Response:
        token, _ = d.session(request)
        f = await form(request)
        back = back or f"/cases/{urllib.parse.quote(ticket_id)}#t-supervision"
        try:
            await services.post(token, "supervision", path, body, f.get("key", ""))
        except Refused as exc:
            return d.go(back, False, f"{label}未成功。{d.message(exc)}")
        return d.go(back, True, done)

    @app.post("/cases/{ticket_id}/escalation/supervise")
    async def supervise(request: Request, ticket_id: str) -> Response:
        f = await form(request)
        level = int(f.get("level", "2") or 2) if f.get("level", "2").isdigit() else 0
        body = {"level": level, "reason": f.get("reason", ""), "leader": f.get("leader", ""),
                "joint_discipline": f.get("joint") == "1"}
        label = core.SUPERVISION_LEVELS.get(level, "督办")
        return await escalate(request, ticket_id, f"/cases/{urllib.parse.quote(ticket_id)}/supervision", body,
                              f"发起{label}", f"已发起{label}（工单 {ticket_id}）"
                              + ("，可打印督办函" if level == 2 else ""))

    @app.post("/cases/{ticket_id}/escalation/supervise-close")
    async def supervise_close(request: Request, ticket_id: str) -> Response:
        f = await form(request)
        body = {"level": int(f.get("level", "0") or 0), "resolved": f.get("resolved") == "1",
                "outcome": f.get("outcome", "")}
        return await escalate(request, ticket_id, f"/cases/{urllib.parse.quote(ticket_id)}/supervision/close", body,
                              "督办办结", f"已办结督办（工单 {ticket_id}）")

    @app.post("/cases/{ticket_id}/escalation/visit")
    async def visit(request: Request, ticket_id: str) -> Response:
        f = await form(request)
        try:
            at = local_ts(f.get("visited_at", ""), d.tz)
        except ValueError:
            return d.go(f"/cases/{urllib.parse.quote(ticket_id)}", False, "明察暗访记录未成功：时间格式不正确")
        body = {"supervisor": f.get("supervisor", ""), "covert": f.get("covert") == "1",
                "findings": f.get("findings", ""), **({"visited_at": at} if at else {})}
        return await escalate(request, ticket_id, f"/cases/{urllib.parse.quote(ticket_id)}/supervision/visits", body,
                              "明察暗访记录", f"已记录明察暗访（工单 {ticket_id}）")

    @app.post("/cases/{ticket_id}/escalation/meeting")
    async def meeting(request: Request, ticket_id: str) -> Response:
        f = await form(request)
        try:
            at = local_ts(f.get("scheduled_at", ""), d.tz)
        except ValueError:
            return d.go(f"/cases/{urllib.parse.quote(ticket_id)}", False, "安排到场会商未成功：时间格式不正确")
        body = {"place": f.get("place", ""), **({"scheduled_at": at} if at else {})}
        return await escalate(request, ticket_id, f"/cases/{urllib.parse.quote(ticket_id)}/meeting", body,
                              "有请诉求人到场", f"已安排诉求人到场会商（工单 {ticket_id}）")

    @app.post("/cases/{ticket_id}/escalation/meeting-outcome")
    async def meeting_outcome(request: Request, ticket_id: str) -> Response:
        f = await form(request)
        return await escalate(request, ticket_id, f"/cases/{urllib.parse.quote(ticket_id)}/meeting/outcome",
                              {"outcome": f.get("outcome", "")}, "记录到场会商结果",
                              f"已记录到场会商结果（工单 {ticket_id}）")

    @app.post("/cases/{ticket_id}/escalation/merge")
    async def merge(request: Request, ticket_id: str) -> Response:
        token, _ = d.session(request)
        raw = await request.form()
        chosen = [str(v) for v in raw.getlist("ticket_ids") if str(v).strip()]
        chosen += core.split_list(str(raw.get("more", "")))
        back = f"/cases/{urllib.parse.quote(ticket_id)}#t-merge"
        if not chosen:
            return d.go(back, False, "并单未成功：请至少选择一张要并入的工单")
        try:
            await services.post(token, "supervision", "/merges", {
                "parent_ticket_id": ticket_id, "ticket_ids": chosen, "reason": str(raw.get("reason", "")).strip()},
                str(raw.get("key", "")))
        except Refused as exc:
            return d.go(back, False, f"并单未成功。{d.message(exc)}")
        return d.go(back, True, f"已并单：{'、'.join(chosen)} 并入工单 {ticket_id}，将随主单办结")

    # ------------------------------------------------------------ 督办看板

    @app.get("/office/supervision", response_class=HTMLResponse)
    async def board(request: Request, level: int = -1, street: str = "") -> Response:
        token, who = d.session(request)
        if who.role not in (Role.OFFICE, Role.ADMIN):
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, "区热线办页面仅供区热线办和管理员使用"
                          f"（您的角色：{core.ROLE_LABELS.get(who.role, who.role)}）")
        counts = {lv: ((await d.find(token, size=1, open_only=True, level=str(lv), street=street)).total,
                       (await d.find(token, size=1, open_only=True, level=str(lv), overdue=True, street=street)).total)
                  for lv in core.SUPERVISION_LEVELS}
        here = {"street": street}
        q = request.query_params
        number = q.get("page", "1")
        overdue = await d.find(token, "/office/supervision", size=50, open_only=True, overdue=True, **here,
                               sort=q.get("sort", "due"), desc=q.get("desc", ""),
                               page=int(number) if number.isdigit() and int(number) > 0 else 1)
        today = await d.find(token, "/office/supervision", size=50, open_only=True, upcoming=True,
                             due_within_days=0, **here)
        listed = await d.find(token, "/office/supervision", size=50, open_only=True, level=str(level), **here) \
            if level >= 0 else None
        late = await optional(lambda: services.get(token, "supervision", "/letters", state="overdue", limit=200))
        return d.page(request, "office_supervision.html", who, counts=counts, level=level, street=street,
                      streets=names.streets(), overdue=overdue, today=today, listed=listed,
                      overdue_letters=late.json()["letters"] if late is not None else [])  # 公文流转

    # ------------------------------------------------------------ 吹哨报到

    @app.get("/whistles", response_class=HTMLResponse)
    async def whistles(request: Request) -> Response:
        token, who = d.session(request)
        answer = (await services.get(token, "supervision", "/whistles", limit=200)).json()
        street = who.unit_id if who.role == Role.UNIT and names.units.get(who.unit_id) and \
            names.units[who.unit_id].unit_type in WHISTLERS else ""  # streets and departments blow (吹哨)
        may_blow = who.role in (Role.OFFICE, Role.ADMIN) or bool(street)
        return d.page(request, "whistles.html", who, whistles=answer.get("whistles", []), may_blow=may_blow,
                      street=street, streets=[u for k in WHISTLERS for u in names.of_type(k)], units=names.handling(),
                      key=uuid.uuid4().hex,
                      STATES=WHISTLE_STATES, ticket_id=request.query_params.get("ticket_id", ""))

    @app.post("/whistles")
    async def blow(request: Request) -> Response:
        token, _ = d.session(request)
        raw = await request.form()
        units = [str(v) for v in raw.getlist("unit_ids") if str(v).strip()]
        body = {"street_unit_id": str(raw.get("street_unit_id", "")),
                "ticket_id": str(raw.get("ticket_id", "")).strip(),
                "problem": str(raw.get("problem", "")).strip(), "unit_ids": units}
        try:
            answer = (await services.post(token, "supervision", "/whistles", body, str(raw.get("key", "")))).json()
        except Refused as exc:
            return d.go("/whistles", False, f"吹哨未成功。{d.message(exc)}")
        summoned = "、".join(names.unit(s["unit_id"]) for s in answer.get("summoned", []))
        return d.go(f"/whistles/{urllib.parse.quote(answer['whistle_id'])}", True,
                    f"已吹哨：{names.unit(answer.get('street_unit_id', ''))}召集 {summoned} 报到")

    @app.get("/whistles/{whistle_id}", response_class=HTMLResponse)
    async def whistle(request: Request, whistle_id: str) -> Response:
        token, who = d.session(request)
        w = (await services.get(token, "supervision", f"/whistles/{urllib.parse.quote(whistle_id)}")).json()
        mine = next((s for s in w.get("summoned", []) if who.role == Role.UNIT and s["unit_id"] == who.unit_id), None)
        may_close = w.get("state") != "WHISTLE_STATE_CLOSED" and (
            who.role in (Role.OFFICE, Role.ADMIN) or (who.role == Role.UNIT and who.unit_id == w.get("street_unit_id")))
        return d.page(request, "whistle.html", who, w=w, mine=mine, may_close=may_close, key=uuid.uuid4().hex,
                      STATES=WHISTLE_STATES)

    @app.post("/whistles/{whistle_id}/report-in")
    async def report_in(request: Request, whistle_id: str) -> Response:
        token, who = d.session(request)
        f = await form(request)
        back = f"/whistles/{urllib.parse.quote(whistle_id)}"
        try:
            await services.post(token, "supervision", f"{back}/report-in", {"note": f.get("note", "")},
                                f.get("key", ""))
        except Refused as exc:
            return d.go(back, False, f"报到未成功。{d.message(exc)}")
        return d.go(back, True, f"已报到：{names.unit(who.unit_id)}")

    @app.post("/whistles/{whistle_id}/close")
    async def close_whistle(request: Request, whistle_id: str) -> Response:
        token, _ = d.session(request)
        f = await form(request)
        back = f"/whistles/{urllib.parse.quote(whistle_id)}"
        try:
            await services.post(token, "supervision", f"{back}/close",
                                {"resolved": f.get("resolved") == "1", "outcome": f.get("outcome", "")},
                                f.get("key", ""))
        except Refused as exc:
            return d.go(back, False, f"吹哨办结未成功。{d.message(exc)}")
        return d.go(back, True, "已记录吹哨办理结果")

    # ------------------------------------------------------------ 屡办不成

    @app.get("/office/recurring", response_class=HTMLResponse)
    async def recurring(request: Request, month: str = "") -> Response:
        token, who = d.session(request)
        if who.role not in (Role.OFFICE, Role.ADMIN, Role.LEADER):
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, "屡办不成清单仅供区热线办和领导查看")
        month = month or month_now(d.tz)
        try:
            date.fromisoformat(f"{month}-01")
        except ValueError:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"月份格式应为 YYYY-MM（收到 {month}）") from None
        listing = (await services.get(token, "supervision", f"/recurring-lists/{month}")).json()
        return d.page(request, "recurring.html", who, month=month, items=listing.get("items", []),
                      key=uuid.uuid4().hex, may_edit=who.role in (Role.OFFICE, Role.ADMIN))

    @app.post("/office/recurring/{month}")
    async def recurring_generate(request: Request, month: str) -> Response:
        token, _ = d.session(request)
        f = await form(request)
        back = f"/office/recurring?month={urllib.parse.quote(month)}"
        try:
            answer = (await services.post(token, "supervision", f"/recurring-lists/{urllib.parse.quote(month)}", {},
                                          f.get("key", ""))).json()
        except Refused as exc:
            return d.go(back, False, f"生成屡办不成清单未成功。{d.message(exc)}")
        return d.go(back, True, f"已生成 {month} 屡办不成清单（{len(answer.get('items', []))} 项）")

    @app.post("/office/recurring/{month}/{digest}")
    async def recurring_resolve(request: Request, month: str, digest: str) -> Response:
        token, _ = d.session(request)
        f = await form(request)
        back = f"/office/recurring?month={urllib.parse.quote(month)}"
        try:
            await services.post(token, "supervision", f"/recurring-lists/{urllib.parse.quote(month)}/items/"
                                f"{urllib.parse.quote(digest)}/resolution", {"outcome": f.get("outcome", "")},
                                f.get("key", ""))
        except Refused as exc:
            return d.go(back, False, f"记录解决情况未成功。{d.message(exc)}")
        return d.go(back, True, "已记录解决情况")
