"""Letters in the workbench (公文流转): a unit sees the letters addressed to it (预警函, 督办函, lists,
舆情预警专报), acknowledges (签收) and answers them (回复, with attachments by http(s) reference);
the office reads the register (登记簿) with the overdue ones first and sends a letter. Every
action calls supervision's HTTP API with the signed-in person's token; that decides."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from hotline.policy import Role
from hotline.v1 import circulation_pb2 as cp
from services.workbench.clients import Refused
from services.workbench.office import Pages

READERS = frozenset({Role.UNIT, Role.OFFICE, Role.ADMIN, Role.LEADER})
# Display names are the workbench's own (it imports nothing from supervision); the kinds are supervision's
# (services/supervision/levels/circulation.py KINDS: tests/unit/test_workbench_display_names.py keeps them equal).
KINDS = {"warning_letter": "预警函", "supervision_letter": "督办函", "recurring_list": "屡办不成问题清单",
         "deputy_monthly_list": "代表每月问题清单", "sentiment_report": "舆情预警专报"}
STATE_NAMES = {cp.LETTER_STATE_SENT: "待签收", cp.LETTER_STATE_ACKNOWLEDGED: "已签收待回复",
               cp.LETTER_STATE_ANSWERED: "已回复"}
STATE_NAMES_BY_KEY = {cp.LetterState.Name(k): v for k, v in STATE_NAMES.items()}


def shown(letter: dict[str, Any]) -> dict[str, Any]:
    return letter | {"state_name": STATE_NAMES_BY_KEY.get(letter.get("state", ""), "")}


def register(app: FastAPI, p: Pages) -> None:
    services = p.services

    @app.get("/letters", response_class=HTMLResponse)
    async def letters(request: Request, state: str = "") -> Response:
        token, who = p.session(request)
        if who.role not in READERS:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, "函件页面供承办单位、区热线办和领导使用")
        answer = await services.get(token, "supervision", "/letters", state=state, limit=200)
        listed = [shown(x) for x in answer.json()["letters"]]
        listed.sort(key=lambda x: (not x["overdue"], x.get("answer_due", "")))
        return p.page(request, "letters.html", who, letters=listed, state=state, KINDS=KINDS, key=uuid.uuid4().hex)

    @app.get("/letters/{letter_id}/document", response_class=HTMLResponse)
    async def letter_document(request: Request, letter_id: str) -> Response:
        token, _ = p.session(request)
        answer = await services.get(token, "supervision", f"/letters/{urllib.parse.quote(letter_id)}/document")
        return HTMLResponse(answer.text)

    @app.post("/letters/{letter_id}/{action}")
    async def act(request: Request, letter_id: str, action: str) -> Response:
        token, _ = p.session(request)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        path = f"/letters/{urllib.parse.quote(letter_id)}"
        if action == "acknowledge":
            body: dict[str, Any] = {}
            path, done = f"{path}/acknowledgement", "已签收"
        elif action == "answer":
            links = [line.strip() for line in form.get("attachments", "").splitlines() if line.strip()]
            body = {"answer": form.get("answer", ""), "attachments": links}
            path, done = f"{path}/answer", "已回复"
        else:
            return p.go("/letters", False, f"未知操作 {action}")
        try:
            answer = (await services.post(token, "supervision", path, body, form.get("key", ""))).json()
        except Refused as exc:
            return p.go("/letters", False, f"{'签收' if action == 'acknowledge' else '回复'}未成功。{exc.message}")
        return p.go("/letters", True, f"{done}（{answer.get('number', letter_id)}）")

    @app.post("/office/letters")
    async def send(request: Request) -> Response:
        token, _ = p.session(request)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        body: dict[str, Any] = {k: form[k] for k in ("kind", "ref", "unit_id", "title", "body") if form.get(k)}
        if form.get("answer_days", "").isdigit():
            body["answer_days"] = int(form["answer_days"])
        try:
            answer = (await services.post(token, "supervision", "/letters", body, form.get("key", ""))).json()
        except Refused as exc:
            return p.go("/letters", False, f"发函未成功。{exc.message}")
        return p.go("/letters", True, f"已发函 {answer['number']}，回复时限 {answer['answer_due'][:10]}")
