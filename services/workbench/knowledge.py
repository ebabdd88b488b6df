"""The knowledge base in the workbench (知识库, 聊天办): the article list and editor (the office edits,
units read), and the similar-case panel shown on a case page and on the dispatch queue. Articles,
search and similar cases are metrics' HTTP API (services/metrics/knowledge); saving goes through its
command path with an idempotency key from the form."""

from __future__ import annotations

import urllib.parse
import uuid
from datetime import date, timedelta
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from hotline.policy import Role
from services.workbench.clients import Refused
from services.workbench.office import Pages

LINK_KINDS = {"link": "链接", "qr": "二维码", "sms": "短信链接"}
RESULTS = {"resolved": "已解决", "partly": "部分解决", "not_resolvable": "无法解决"}
EDITORS = (Role.OFFICE, Role.ADMIN)
READERS = (Role.OFFICE, Role.ADMIN, Role.UNIT)
EMPTY: dict[str, Any] = {"article_id": "", "version": 0, "title": "", "question": "", "answer": "", "where": "",
                         "hours": "", "materials": [], "links": [], "category": "", "unit_id": "", "unit_name": "",
                         "review_on": "", "status": "active"}


def _refuse(who: Any, roles: tuple[Role, ...], what: str) -> None:
    if who.role not in roles:
        raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"{what}（您的角色无权使用）")


def article_body(form: dict[str, str]) -> dict[str, Any]:
    """The article from the editor's form fields."""
    links = []
    for i in range(3):
        url = form.get(f"link{i}_url", "").strip()
        if url or form.get(f"link{i}_label", "").strip():
            links.append({"label": form.get(f"link{i}_label", "").strip(), "url": url,
                          "kind": form.get(f"link{i}_kind", "link")})
    return {
        **{k: form.get(k, "").strip() for k in ("title", "question", "answer", "where", "hours", "category",
                                                "unit_id", "unit_name", "review_on", "status")},
        "materials": [m.strip() for m in form.get("materials", "").splitlines() if m.strip()],
        "links": links,
    }


def register(app: FastAPI, p: Pages) -> None:
    services = p.services

    def editor_page(request: Request, who: Any, article: dict[str, Any], error: str = "", reason: str = "",
                    status: int = 200) -> Response:
        return p.page(request, "knowledge_edit.html", who, status=status, article=article, error=error,
                      reason=reason, key=uuid.uuid4().hex, LINK_KINDS=LINK_KINDS,
                      default_review=(date.today() + timedelta(days=180)).isoformat())

    @app.get("/knowledge", response_class=HTMLResponse)
    async def knowledge_list(request: Request, q: str = "", flagged: int = 0, due: int = 0) -> Response:
        token, who = p.session(request)
        _refuse(who, READERS, "知识库仅供区热线办和承办单位使用")
        params: dict[str, Any] = {"q": q} if q.strip() else {}
        if flagged:
            params["flagged"] = "true"
        if due:
            params["due"] = "true"
        rows = (await services.get(token, "metrics", "/knowledge/articles", **params)).json()["articles"]
        return p.page(request, "knowledge_list.html", who, rows=rows, q=q, flagged=flagged, due=due,
                      editor=who.role in EDITORS)

    @app.get("/knowledge/new", response_class=HTMLResponse)
    async def knowledge_new(request: Request) -> Response:
        _, who = p.session(request)
        _refuse(who, EDITORS, "知识库文章由区热线办编辑")
        return editor_page(request, who, dict(EMPTY))

    @app.get("/knowledge/{article_id}/edit", response_class=HTMLResponse)
    async def knowledge_edit(request: Request, article_id: str) -> Response:
        token, who = p.session(request)
        _refuse(who, EDITORS, "知识库文章由区热线办编辑")
        doc = (await services.get(token, "metrics", f"/knowledge/articles/{urllib.parse.quote(article_id)}")).json()
        return editor_page(request, who, doc)

    @app.post("/knowledge/save")
    async def knowledge_save(request: Request) -> Response:
        token, who = p.session(request)
        _refuse(who, EDITORS, "知识库文章由区热线办编辑")
        form = {k: str(v) for k, v in (await request.form()).items()}
        article_id = form.get("article_id", "").strip() or f"KA-{uuid.uuid4().hex[:8].upper()}"
        try:
            expected = int(form.get("version", "0") or 0)
        except ValueError:
            expected = 0
        body: dict[str, Any] = {"article": article_body(form), "expected_version": expected,
                "reason": form.get("reason", "").strip() or ("新建" if not expected else "编辑")}
        try:
            saved = (await services.put(token, "metrics", f"/knowledge/articles/{urllib.parse.quote(article_id)}",
                                        body, form.get("key", ""))).json()
        except Refused as exc:
            shown = {**EMPTY, **body["article"], "article_id": form.get("article_id", ""), "version": expected}
            return editor_page(request, who, shown, error=f"保存未成功。{exc.message}",
                               reason=form.get("reason", ""), status=exc.status)
        return p.go(f"/knowledge/{urllib.parse.quote(article_id)}", True,
                    f"已保存知识库文章《{saved['title']}》第 {saved['version']} 版")

    @app.get("/knowledge/{article_id}", response_class=HTMLResponse)
    async def knowledge_article(request: Request, article_id: str) -> Response:
        token, who = p.session(request)
        _refuse(who, READERS, "知识库仅供区热线办和承办单位使用")
        quoted = urllib.parse.quote(article_id)
        doc = (await services.get(token, "metrics", f"/knowledge/articles/{quoted}")).json()
        versions = (await services.get(token, "metrics", f"/knowledge/articles/{quoted}/versions")).json()
        return p.page(request, "knowledge_article.html", who, a=doc, versions=versions["versions"],
                      editor=who.role in EDITORS, LINK_KINDS=LINK_KINDS)
