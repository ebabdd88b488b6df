"""Tourist holidays (旅游节假日): a plan per holiday (未诉先办: the hotspots to expect, from last year's
same holiday, and the duty roster of district, street and community with phone duty) and the
holiday's own report (its figures, compared with last year's same holiday). Figures from the KPI
engine over the holiday's cohort (services/metrics/annual.py, docs/kpis.md "Holidays").

The roster is written by a typed command (commands.py SaveHolidayRoster) (``holiday_rosters``, one document per year
and holiday); the rest is pure.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends
from fastapi.responses import HTMLResponse
from pymongo.asynchronous.database import AsyncDatabase

from hotline import auth
from hotline.api import idempotency_key
from hotline.auth import Principal
from hotline.bus import MessageBus
from hotline.commands import Invalid, NotFound
from hotline.mongo import Doc
from hotline.text import clean_text
from services.metrics import annual
from services.metrics.commands import SaveHolidayRoster
from services.metrics.kpi import CaseFacts, KpiPolicy
from services.metrics.rosters import ROSTERS, RosterRepository  # noqa: F401 (as before)
from services.metrics.views import Views

LEVELS = {"district": "区", "street": "街道", "community": "社区"}
MAX_ENTRIES = 500


def holiday(year: int, name: str, tz: ZoneInfo) -> tuple[str, tuple[date, ...]]:
    """(Chinese name, days) of a holiday by its Chinese (国庆节) or English (National Day) name."""
    if not 2000 <= year <= 2100:
        raise Invalid(f"year is from 2000 to 2100, not {year}")
    english = next((e for e, c in annual.HOLIDAYS.items() if name in (e, c)), "")
    days = annual.holiday_days(english, year, tz) if english else ()
    if not days:
        raise Invalid(f"no statutory holiday {name!r} in {year} (known: {', '.join(annual.HOLIDAYS.values())})")
    return annual.HOLIDAYS[english], days


def tickets_on(facts: Sequence[CaseFacts], days: Sequence[date], tz: ZoneInfo, lane: str = "") -> list[CaseFacts]:
    wanted = set(days)
    return [f for f in facts if f.dispatch_round == 1 and f.redo_round == 0 and f.received_at is not None
            and f.received_at.astimezone(tz).date() in wanted and (not lane or f.lane == lane)]


def plan(facts: Sequence[CaseFacts], policy: KpiPolicy, year: int, name: str, tz: ZoneInfo,
         roster: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """未诉先办: last year's same holiday's hotspots (categories, streets; all and tourist) and the roster."""
    title, days = holiday(year, name, tz)
    _, before = holiday(year - 1, name, tz)
    every, tourist = tickets_on(facts, before, tz), tickets_on(facts, before, tz, "tourist")
    top = policy.hotspot_top
    return {"holiday": title, "year": year, "days": [d.isoformat() for d in days],
            "last_year_days": [d.isoformat() for d in before], "last_year_tickets": len(every),
            "last_year_tourist_tickets": len(tourist),
            "expected_categories": Counter(f.category for f in every).most_common(top),
            "expected_tourist_categories": Counter(f.category for f in tourist).most_common(top),
            "expected_streets": Counter(f.street for f in tourist if f.street).most_common(top),
            "roster": list(roster)}


def report(facts: Sequence[CaseFacts], policy: KpiPolicy, year: int, name: str, tz: ZoneInfo,
           as_of: datetime) -> dict[str, Any]:
    """The holiday's figures (its cohort) and last year's same holiday's."""
    title, days = holiday(year, name, tz)
    _, before = holiday(year - 1, name, tz)

    def figures(ds: Sequence[date], lane: str = "") -> dict[str, Any]:
        f = annual.cohort(facts, ds, policy, tz, as_of, lane)
        return {"tickets": f.tickets, **{n: (None if (v := f.rate(n, policy).value) is None else float(v))
                                         for n in ("response", "resolution", "satisfaction", "on_time_close")}}

    now = tickets_on(facts, days, tz, "tourist")
    return {"holiday": title, "year": year, "days": [d.isoformat() for d in days], "all": figures(days),
            "tourist": figures(days, "tourist"), "last_year_all": figures(before),
            "last_year_tourist": figures(before, "tourist"),
            "tourist_categories": Counter(f.category for f in now).most_common(policy.hotspot_top)}


def check_roster(entries: Any) -> list[dict[str, str]]:
    """值班表: [{"level": district|street|community, "unit", "day", "name", "phone"}] (phone duty)."""
    if not isinstance(entries, list) or not entries or len(entries) > MAX_ENTRIES:
        raise Invalid(f"entries is a list of 1 to {MAX_ENTRIES} duty entries")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("level") not in LEVELS:
            raise Invalid(f"entries[{i}].level is one of {', '.join(LEVELS)}")
        row = {k: clean_text(str(e.get(k, ""))).strip()[:100] for k in ("level", "unit", "day", "name", "phone")}
        if not row["name"] or not row["phone"]:
            raise Invalid(f"entries[{i}] needs the name and phone of who is on duty")
        try:
            date.fromisoformat(row["day"])
        except ValueError as exc:
            raise Invalid(f"entries[{i}].day is a date YYYY-MM-DD") from exc
        out.append(row)
    return out


def _value(x: Any) -> str:
    return "—" if x is None else (f"{x * 100:.2f}%" if isinstance(x, float) else str(x))


def _html(title: str, data: dict[str, Any]) -> str:
    e = html.escape

    def cell(v: Any) -> str:
        if isinstance(v, list):
            return "<br>".join(e(" ".join(map(str, x)) if isinstance(x, list | tuple) else
                                 (" ".join(f"{k}:{x[k]}" for k in x) if isinstance(x, dict) else str(x))) for x in v)
        if isinstance(v, dict):
            return "；".join(f"{e(str(k))}：{e(_value(x))}" for k, x in v.items())
        return e(str(v))

    rows = "".join(f"<tr><th>{e(k)}</th><td>{cell(v)}</td></tr>" for k, v in data.items())
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{e(title)}</title></head>'
            f"<body><h1>{e(title)}</h1><table>{rows}</table></body></html>")


def holiday_routes(views: Views, db: AsyncDatabase[Doc], bus: MessageBus) -> APIRouter:
    """节假日 routes; ``bus``: metrics' MessageBus (SaveHolidayRoster, commands.py)."""
    api = APIRouter(tags=["holidays"])
    rosters = RosterRepository(db)

    @api.post("/holidays/{year}/{name}/roster", summary="值班表 of a holiday: district, street and community phone "
                                                         "duty (body: entries)")
    async def save_roster(year: int, name: str, body: dict[str, Any] = Body(default_factory=dict),
                          who: Principal = Depends(auth.principal), key: str = Depends(idempotency_key)) -> Doc:
        title, _ = holiday(year, name, views.tz)
        entries = check_roster(body.get("entries"))
        answer: Doc = await bus.handle(SaveHolidayRoster({"entries": entries}, who, key, ref=f"{year}/{title}",
                                                         year=year, holiday=title))
        return answer

    @api.get("/holidays/{year}/{name}/plan", response_class=HTMLResponse,
             summary="节假日预案 (未诉先办): last year's hotspots of the same holiday and the duty roster")
    async def holiday_plan(year: int, name: str) -> HTMLResponse:
        title, _ = holiday(year, name, views.tz)
        roster = await rosters.load(f"{year}/{title}", None)
        data = plan(await views.facts(), views.policy, year, name, views.tz, (roster or {}).get("entries", []))
        return HTMLResponse(_html(f"{year}年{title}旅游诉求预案", data))

    @api.get("/holidays/{year}/{name}/report", response_class=HTMLResponse,
             summary="节假日报告: the holiday's figures (all and tourist lane) against last year's same holiday")
    async def holiday_report(year: int, name: str) -> HTMLResponse:
        data = report(await views.facts(), views.policy, year, name, views.tz, views.clock.now())
        if not data["all"]["tickets"] and not data["last_year_all"]["tickets"]:
            raise NotFound("holiday figures", f"{year}/{name}")
        return HTMLResponse(_html(f"{year}年{data['holiday']}热线诉求报告", data))

    return api
