"""HTTP adapter of case search (services/supervision/cases/search.py): ``GET /case-search``.

Every case list of the workbench is this query: words, filters, sort and page on the server. The
office and leaders search all cases, a unit its own (primary or assisting)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from hotline import auth
from hotline.api import as_json
from hotline.auth import Principal
from hotline.clock import Clock
from hotline.commands import Invalid
from services.supervision.cases.api import state_name
from services.supervision.cases.search import MAX_PAGE, CaseSearch
from services.supervision.cases.search import Query as Search


def _day(text: str, tz: ZoneInfo, field: str) -> datetime | None:
    if not text:
        return None
    try:
        d = date.fromisoformat(text)
    except ValueError as exc:
        raise Invalid(f"{field} must be a date YYYY-MM-DD, got {text!r}") from exc
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def search_routes(search: CaseSearch, clock: Clock, tz: ZoneInfo) -> APIRouter:
    api = APIRouter(tags=["case search"])

    @api.get("/case-search", summary="案件查询: full text (Chinese words) over title, content and address, with "
                                     "filters, sort and paging; a unit its own cases")
    async def case_search(
        q: str = Query("", max_length=200, description="words that must all occur (title, content, address)"),
        unit_id: str = "", category: str = "", rule_id: str = Query("", description="list item (清单事项)"),
        street: str = "", community: str = "", state: list[str] = Query([]), lane: str = "",
        received_from: str = Query("", description="YYYY-MM-DD, district time"),
        received_to: str = Query("", description="YYYY-MM-DD inclusive, district time"),
        overdue: bool = False, upcoming: bool = Query(False, description="a running clock not yet overdue"),
        due_within_days: int = Query(-1, ge=-1, le=30,
                                                           description="running clock due before the end of "
                                                                       "today + n days (0: today)"),
        level: int = Query(-1, ge=-1, le=4), min_level: int = Query(0, ge=0, le=4), open_only: bool = False,
        assisting: bool = False, primary: bool = False, sort: str = "due", desc: bool = False,
        page: int = Query(1, ge=1), size: int = Query(50, ge=1, le=MAX_PAGE),
        ticket_id: list[str] = Query([]),
        who: Principal = Depends(auth.principal),
    ) -> dict[str, Any]:
        try:
            states = [s for s in (state_name(x) for x in state if x) if s]
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        now = clock.now()
        to_day = _day(received_to, tz, "received_to")
        due_before = None
        if due_within_days >= 0:
            today = now.astimezone(tz).date()
            due_before = datetime(today.year, today.month, today.day, tzinfo=tz) + timedelta(days=1 + due_within_days)
        result = await search.search(Search(
            text=q, unit_id=unit_id, category=category, rule_id=rule_id, street=street, community=community,
            states=states, lane=lane, received_from=_day(received_from, tz, "received_from"),
            received_to=to_day + timedelta(days=1) if to_day else None, overdue=overdue, due_before=due_before,
            upcoming=upcoming,
            level=None if level < 0 else level, min_level=min_level, open_only=open_only, assisting=assisting,
            primary=primary,
            sort=sort, descending=desc, page=page, size=size, ticket_ids=ticket_id), who, now)
        return {"total": result.total, "page": result.page, "size": result.size,
                "cases": [{**{k: v for k, v in r.items() if k != "case"}, "case": as_json(r["case"])}
                          for r in result.rows]}

    return api
