"""The district office's desk in the workbench (区热线办): the manual dispatch queue with its
suggestions (人工派单), recategorisation (改类重派), return and extension decisions (退单审核,
延期审批), joint reviews (联席研判), the supervision board by level (督办看板), early warnings
(预警), the responsibility list editor (主协办清单维护) and a read view of the policy files.

Every page calls routing's and supervision's APIs with the signed-in person's token; those decide
(hotline/policy.py). The pages are the office's: another role is refused before any call. Every
action answers with what happened or with the service's precise reason (the gRPC status detail).
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from google.protobuf.timestamp_pb2 import Timestamp

from hotline.auth import Principal
from hotline.settings import REPO_ROOT, Settings
from hotline.v1 import case_pb2, events_pb2, lifecycle_pb2, routing_pb2, services_pb2
from services.workbench import core, policy_form
from services.workbench.clients import Refused, Services, optional, similar_panel
from services.workbench.security import relative

RETURN_STATUS = {case_pb2.RETURN_STATUS_REQUESTED: "待审核", case_pb2.RETURN_STATUS_REFUSED: "已驳回（退回原单位）",
                 case_pb2.RETURN_STATUS_APPROVED: "已同意（已改派）"}
QUEUE_SIMILAR = 20  # the dispatch queue shows the similar cases of its first 20 tickets


@dataclass(frozen=True)
class Pages:
    """What the office pages share with the rest of the workbench (services/workbench/app.py)."""

    session: Callable[[Request], tuple[str, Principal]]
    page: Callable[..., Response]
    go: Callable[..., RedirectResponse]
    services: Services
    settings: Settings
    due_of: Callable[[events_pb2.Case], Timestamp]
    when: Callable[[Timestamp | None], str]  # a time in district time, as every page shows it


def require_office(who: Principal) -> None:
    """The office's pages are refused to every other role before any service is called."""
    if not core.office_page(who):
        raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                      f"区热线办页面仅供区热线办和管理员使用（您的角色：{core.ROLE_LABELS.get(who.role, who.role)}）")


def register(app: FastAPI, p: Pages) -> None:
    services = p.services

    def office(request: Request) -> tuple[str, Principal]:
        token, who = p.session(request)
        require_office(who)
        return token, who

    async def form(request: Request) -> dict[str, str]:
        return {k: str(v).strip() for k, v in (await request.form()).items()}

    async def command(back: str, label: str, token: str, method: str, message: Any, key: str,
                      done: Callable[[Any], str], service: str = "routing") -> RedirectResponse:
        try:
            answer = await services.call(token, service, method, message, key=key)
        except Refused as exc:
            return p.go(back, False, f"{label}未成功。{exc.message}")
        return p.go(back, True, done(answer))

    async def units(token: str) -> list[dict[str, Any]]:
        found = await optional(lambda: services.get(token, "routing", "/units"))
        return sorted(found.json(), key=lambda u: u.get("unit_id", "")) if found is not None else []

    async def list_items(token: str, category: str = "") -> routing_pb2.ListListItemsResponse:
        answer: routing_pb2.ListListItemsResponse = await services.call(
            token, "routing", "ListListItems", routing_pb2.ListListItemsRequest(category=category))
        return answer

    def categories(listing: routing_pb2.ListListItemsResponse) -> list[str]:
        return sorted({i.category for i in listing.items})

    def assigned(a: events_pb2.Assignment) -> str:
        helpers = "、".join(u.unit_id for u in a.assisting_units)
        return (f"主办 {a.primary_unit.name or ''}（{a.primary_unit.unit_id}）"
                + (f"，协办 {helpers}" if helpers else "") + f"，类别 {a.category or '—'}，第 {a.dispatch_round} 轮")

    # ------------------------------------------------------------ 人工派单队列

    @app.get("/office/queue", response_class=HTMLResponse)
    async def queue(request: Request) -> Response:
        token, who = office(request)
        answer = await services.call(token, "routing", "ListQueue", routing_pb2.ListQueueRequest(page_size=200))
        listing = await list_items(token)
        similar = {e.ticket_id: await similar_panel(services, token, e.ticket_id)  # 相似办结案例, the first ones
                   for e in answer.entries[:QUEUE_SIMILAR]}
        return p.page(request, "office_queue.html", who, entries=answer.entries, length=answer.length,
                      units=await units(token), categories=categories(listing), key=uuid.uuid4().hex,
                      SOURCES=core.SUGGESTION_SOURCES, similar_of=similar)

    @app.post("/office/queue/{ticket_id}/dispatch")
    async def dispatch(request: Request, ticket_id: str) -> Response:
        token, _ = office(request)
        f = await form(request)
        message = routing_pb2.DispatchRequest(
            ticket_id=ticket_id, primary_unit_id=f.get("primary_unit_id", ""),
            assisting_unit_ids=core.split_list(f.get("assisting_unit_ids", "")), category=f.get("category", ""),
            rule_id=f.get("rule_id", ""), reason=f.get("reason", ""))
        return await command("/office/queue", "人工派单", token, "Dispatch", message, f.get("key", ""),
                             lambda a: f"已派单：工单 {ticket_id}，{assigned(a)}")

    @app.post("/office/tickets/{ticket_id}/recategorize")
    async def recategorize(request: Request, ticket_id: str) -> Response:
        token, _ = office(request)
        f = await form(request)
        message = routing_pb2.RecategorizeRequest(ticket_id=ticket_id, category=f.get("category", ""),
                                                  reason=f.get("reason", ""))
        return await command(relative(f.get("back", ""), "/office/queue"), "改类重派", token, "Recategorize", message,
                             f.get("key", ""), lambda a: f"已改类重派：工单 {ticket_id}，{assigned(a)}")

    @app.post("/office/recategorize")
    async def recategorize_any(request: Request) -> Response:
        token, _ = office(request)
        f = await form(request)
        ticket_id = f.get("ticket_id", "")
        if not ticket_id:
            return p.go("/office/decisions", False, "改类重派未成功：请填写工单编号")
        message = routing_pb2.RecategorizeRequest(ticket_id=ticket_id, category=f.get("category", ""),
                                                  reason=f.get("reason", ""))
        return await command("/office/decisions", "改类重派", token, "Recategorize", message, f.get("key", ""),
                             lambda a: f"已改类重派：工单 {ticket_id}，{assigned(a)}")

    # ------------------------------------------------------------ 退单审核 and 延期审批

    @app.get("/office/decisions", response_class=HTMLResponse)
    async def decisions(request: Request) -> Response:
        token, who = office(request)
        returns = await services.call(token, "routing", "ListReturns", routing_pb2.ListReturnsRequest())
        pending = [r for r in returns.returns if r.status == case_pb2.RETURN_STATUS_REQUESTED]
        decided = sorted((r for r in returns.returns if r.status != case_pb2.RETURN_STATUS_REQUESTED),
                         key=lambda r: -r.decided_at.seconds)[:20]
        extensions = await services.call(token, "supervision", "ListCases", services_pb2.ListCasesRequest(
            state=events_pb2.CASE_STATE_EXTENSION_REQUESTED, page_size=500))
        listing = await list_items(token)
        return p.page(request, "office_decisions.html", who, pending=pending, decided=decided,
                      extensions=extensions.cases, units=await units(token), categories=categories(listing),
                      key=uuid.uuid4().hex, RETURN_STATUS=RETURN_STATUS, due_of=p.due_of)

    @app.post("/office/returns/{ticket_id}")
    async def decide_return(request: Request, ticket_id: str) -> Response:
        token, _ = office(request)
        f = await form(request)
        approved = f.get("approved") == "1"
        message = routing_pb2.DecideReturnRequest(
            ticket_id=ticket_id, approved=approved, reason=f.get("reason", ""),
            primary_unit_id=f.get("primary_unit_id", "") if approved else "",
            assisting_unit_ids=core.split_list(f.get("assisting_unit_ids", "")) if approved else [],
            category=f.get("category", "") if approved else "", allow_same_unit=f.get("allow_same_unit") == "1")

        def done(r: routing_pb2.PendingReturn) -> str:
            if r.status == case_pb2.RETURN_STATUS_APPROVED:
                return f"已同意退单：工单 {ticket_id} 已改派给 {r.redispatched_to}（第 {r.dispatch_round + 1} 轮）"
            return f"已驳回退单：工单 {ticket_id} 退回 {r.unit_id} 继续办理，时限照常计算"

        return await command("/office/decisions", "退单审核", token, "DecideReturn", message, f.get("key", ""), done)

    @app.post("/office/extensions/{ticket_id}")
    async def decide_extension(request: Request, ticket_id: str) -> Response:
        token, _ = office(request)
        f = await form(request)
        approved = f.get("approved") == "1"
        try:
            days = max(0, int(f.get("working_days", "0") or 0))
        except ValueError:
            days = -1
        message = lifecycle_pb2.DecideExtensionRequest(ticket_id=ticket_id, approved=approved,
                                                       reason=f.get("reason", ""), working_days=days)

        def done(c: events_pb2.Case) -> str:
            if not approved:
                return f"已驳回延期申请：工单 {ticket_id}，办理时限不变"
            return (f"已批准延期：工单 {ticket_id} 延期 {c.extension.granted_working_days} 个工作日，"
                    f"新的办理时限 {p.when(c.reply_due)}")

        return await command("/office/decisions", "延期审批", token, "DecideExtension", message, f.get("key", ""),
                             done, service="supervision")

    # ------------------------------------------------------------ 联席研判

    @app.get("/office/joint-reviews", response_class=HTMLResponse)
    async def joint_reviews(request: Request, ticket_id: str = "") -> Response:
        token, who = office(request)
        case = None
        if ticket_id:
            case = await optional(lambda: services.call(token, "supervision", "GetCase",
                                                        services_pb2.GetCaseRequest(ticket_id=ticket_id)))
        listing = await list_items(token)
        open_reviews = await services.call(token, "routing", "ListJointReviews", routing_pb2.ListJointReviewsRequest(
            status=routing_pb2.REVIEW_STATUS_OPEN))
        chosen = next((r for r in open_reviews.reviews if r.ticket_id == ticket_id), None)
        return p.page(request, "office_reviews.html", who, ticket_id=ticket_id, case=case, reviews=open_reviews.reviews,
                      chosen=chosen, units=await units(token), categories=categories(listing), key=uuid.uuid4().hex)

    @app.post("/office/joint-reviews/open")
    async def open_review(request: Request) -> Response:
        token, _ = office(request)
        f = await form(request)
        ticket_id = f.get("ticket_id", "")
        back = f"/office/joint-reviews?ticket_id={urllib.parse.quote(ticket_id)}"
        message = routing_pb2.OpenJointReviewRequest(
            ticket_id=ticket_id, unit_ids=core.split_list(f.get("unit_ids", "")), reason=f.get("reason", ""))
        return await command(back, "发起联席研判", token, "OpenJointReview", message, f.get("key", ""),
                             lambda r: f"已发起联席研判：工单 {ticket_id}，参加单位 {'、'.join(r.unit_ids)}")

    @app.post("/office/joint-reviews/decide")
    async def decide_review(request: Request) -> Response:
        token, _ = office(request)
        f = await form(request)
        ticket_id = f.get("ticket_id", "")
        back = f"/office/joint-reviews?ticket_id={urllib.parse.quote(ticket_id)}"
        message = routing_pb2.DecideJointReviewRequest(
            ticket_id=ticket_id, primary_unit_id=f.get("primary_unit_id", ""),
            assisting_unit_ids=core.split_list(f.get("assisting_unit_ids", "")), reason=f.get("reason", ""))
        if f.get("item_rule_id"):
            message.list_change.CopyFrom(item_of(f, "item_"))

        def done(r: routing_pb2.JointReview) -> str:
            change = f"，清单已更新为版本 {r.list_version}" if r.list_version else ""
            return f"已作出研判结论：工单 {ticket_id} 由 {r.primary_unit_id} 主办{change}"

        return await command(back, "研判结论", token, "DecideJointReview", message, f.get("key", ""), done)

    # ------------------------------------------------------------ 督办看板 and 预警

    @app.get("/office/warnings", response_class=HTMLResponse)
    async def warnings(request: Request, kind: str = "") -> Response:
        token, who = office(request)
        answer = await services.get(token, "supervision", "/warnings", kind=kind, limit=200)
        return p.page(request, "office_warnings.html", who, warnings=answer.json().get("warnings", []), kind=kind,
                      KINDS=core.WARNING_KINDS, WLEVELS=core.WARNING_LEVELS)

    @app.get("/office/warnings/{warning_id}/letter", response_class=HTMLResponse)
    async def warning_letter(request: Request, warning_id: str) -> Response:
        token, _ = office(request)
        answer = await services.get(token, "supervision", f"/warnings/{urllib.parse.quote(warning_id)}/letter")
        return HTMLResponse(answer.text)

    # ------------------------------------------------------------ 主协办清单维护 and policies

    @app.get("/office/list", response_class=HTMLResponse)
    async def list_page(request: Request, category: str = "") -> Response:
        token, who = office(request)
        everything = await list_items(token)
        items = [i for i in everything.items if not category or i.category == category]
        return p.page(request, "office_list.html", who, items=items, version=everything.list_version,
                      category=category, categories=categories(everything))

    @app.get("/office/list/edit", response_class=HTMLResponse)
    async def list_edit(request: Request, rule_id: str = "") -> Response:
        token, who = office(request)
        item = routing_pb2.ListItem()
        if rule_id:
            item = await services.call(token, "routing", "GetListItem", routing_pb2.GetListItemRequest(rule_id=rule_id))
        everything = await list_items(token)
        return p.page(request, "office_list_edit.html", who, item=item, new=not rule_id,
                      version=everything.list_version, categories=categories(everything),
                      units=await units(token), key=uuid.uuid4().hex)

    @app.post("/office/list")
    async def list_save(request: Request) -> Response:
        token, _ = office(request)
        f = await form(request)
        item = item_of(f)
        back = f"/office/list/edit?rule_id={urllib.parse.quote(item.rule_id)}" if f.get("new") != "1" \
            else "/office/list/edit"
        try:
            saved = await services.call(token, "routing", "UpsertListItem", routing_pb2.UpsertListItemRequest(
                item=item, reason=f.get("reason", "")), key=f.get("key", ""))
        except Refused as exc:
            return p.go(back, False, f"保存清单事项未成功。{exc.message}")
        version = (await list_items(token)).list_version
        return p.go(f"/office/list/edit?rule_id={urllib.parse.quote(saved.rule_id)}", True,
                    f"已保存清单事项 {saved.rule_id}（{saved.item}），清单版本 {version}")

    @app.get("/office/policies", response_class=HTMLResponse)
    async def policies(request: Request) -> Response:
        _, who = office(request)
        files = []
        for title, path in core.POLICY_FILES:
            try:
                text = (REPO_ROOT / path).read_text(encoding="utf-8")
                doc = json.loads(text)
            except (OSError, ValueError) as exc:
                files.append({"title": title, "path": path, "version": "（无法读取）", "note": str(exc), "text": ""})
                continue
            files.append({**core.policy_summary(title, path, doc),
                          "text": json.dumps(doc, ensure_ascii=False, indent=2)})
        limits = p.settings.limits.model_dump()
        return p.page(request, "office_policies.html", who, files=files, editable=core.EDITABLE_POLICIES,
                      limits=[(label, limits.get(name)) for name, label in core.LIMIT_LABELS.items()
                              if name in limits])


def register_policy_editor(app: FastAPI, p: Pages) -> None:
    """The versioned policies (core.EDITABLE_POLICIES: 预警规则, 时限政策): the current version, its
    history, and a JSON editor that saves a new version for those the service lets save it. A
    refused document stays in the editor with the service's precise reason (every field at fault);
    one refused because another version came first (409) is kept too, now based on that version."""
    services = p.services

    def editable(request: Request, name: str) -> tuple[str, Principal, core.EditablePolicy]:
        token, who = p.session(request)
        policy = core.EDITABLE_POLICIES.get(name)
        if policy is None:
            require_office(who)
            raise Refused(grpc.StatusCode.NOT_FOUND, f"没有可在线编辑的政策 {name!r}")
        if who.role not in policy.viewers:
            require_office(who)  # the office pages' refusal, for the office's own policies
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"{policy.title}页面不向您的角色开放"
                          f"（您的角色：{core.ROLE_LABELS.get(who.role, who.role)}）")
        return token, who, policy

    def may_save(who: Principal, policy: core.EditablePolicy) -> bool:
        return who.role in policy.editors

    def editors(policy: core.EditablePolicy) -> str:
        return "、".join(core.ROLE_LABELS.get(r, r) for r in sorted(policy.editors))

    async def show(request: Request, name: str, text: str = "", reason: str = "", error: str = "",
                   status: int = 200, edited: int = 0, field_errors: dict[str, str] | None = None,
                   mode: str = "fields") -> Response:
        token, who, policy = editable(request, name)
        history = (await services.get(token, policy.service, f"{policy.path}/versions")).json()["versions"]
        current = (await services.get(token, policy.service, policy.path)).json()
        if status == 409:  # another version came first: keep the text, now based on that version
            edited = current["version"]
            error += (f"（当前生效的是版本 {current['version']}，内容见上方；确认仍以您的内容替换它，"
                      f"请再次保存，将保存为版本 {edited + 1}）")
        try:
            shown = json.loads(text) if text else current["doc"]
        except ValueError:
            shown = current["doc"]
        return p.page(request, "office_policy_edit.html", who, status=status, policy=name, title=policy.title,
                      form_groups=policy_form.groups(shown), field_errors=field_errors or {}, mode=mode,
                      current=current, history=history, can_save=may_save(who, policy),
                      editors=editors(policy),
                      current_text=json.dumps(current["doc"], ensure_ascii=False, indent=2),
                      text=text or json.dumps(current["doc"], ensure_ascii=False, indent=2),
                      reason=reason, error=error, edited=edited or current["version"], key=uuid.uuid4().hex)

    @app.get("/office/policies/{name}", response_class=HTMLResponse)
    async def policy_editor(request: Request, name: str) -> Response:
        return await show(request, name)

    @app.post("/office/policies/{name}", response_class=HTMLResponse)
    async def policy_save(request: Request, name: str) -> Response:
        token, who, policy = editable(request, name)
        title = policy.title
        if not may_save(who, policy):
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"{title}只能由{editors(policy)}保存"
                          f"（您的角色：{core.ROLE_LABELS.get(who.role, who.role)}）")
        f = {k: str(v) for k, v in (await request.form()).items()}
        text, reason = f.get("doc", ""), f.get("reason", "").strip()
        edited = int(f["expected_version"]) if f.get("expected_version", "").isdigit() else 0
        mode = "fields" if f.get("mode") == "fields" else "json"
        if mode == "fields":  # the form per field: the edited version's document with the fields' values
            base = (await services.get(token, policy.service, policy.path)).json()["doc"]
            doc, wrong = policy_form.rebuild(base, f)
            text = json.dumps(doc, ensure_ascii=False, indent=2)
            if wrong:
                listed = "；".join(f"{path}：{why}" for path, why in wrong.items())
                return await show(request, name, text, reason, f"保存{title}未成功：{listed}", 422, edited, wrong, mode)
        else:
            try:
                doc = json.loads(text)
            except ValueError as exc:
                message = core.json_error(exc)
                return await show(request, name, text, reason, f"保存{title}未成功：{message}", 422, edited,
                                  mode=mode)
        if not reason:
            return await show(request, name, text, reason, f"保存{title}未成功：请填写修改理由", 422, edited,
                              mode=mode)
        try:
            answer = await services.put(token, policy.service, policy.path,
                                        {"doc": doc, "expected_version": edited, "reason": reason}, f.get("key", ""))
        except Refused as exc:
            return await show(request, name, text, reason, f"保存{title}未成功。{exc.message}", exc.status, edited,
                              policy_form.refused_paths(exc.details, doc), mode)
        saved = answer.json()
        return p.go(f"/office/policies/{name}", True,
                    f"已保存{title}为版本 {saved['version']}（原版本 {saved['version'] - 1}），{policy.effect}")


def item_of(f: dict[str, str], prefix: str = "") -> routing_pb2.ListItem:
    """A list item from the editor's fields (keywords and units separated by commas or 、)."""
    return routing_pb2.ListItem(
        rule_id=f.get(f"{prefix}rule_id", ""), category=f.get(f"{prefix}category", ""), item=f.get(f"{prefix}item", ""),
        keywords=core.split_list(f.get(f"{prefix}keywords", "")), primary=f.get(f"{prefix}primary", ""),
        assisting=core.split_list(f.get(f"{prefix}assisting", "")), lane=f.get(f"{prefix}lane", ""))
