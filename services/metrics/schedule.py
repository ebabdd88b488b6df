"""Reports on schedule: after a week (Monday), a month (the 1st), a half-year (1 January and
1 July) or a year (1 January) ends, its report is
generated once and stored; the clock is injected, so tests can move it."""

from __future__ import annotations

import asyncio

from hotline.logging import get_logger
from hotline.settings import MetricsSettings
from services.metrics.kpi import Period, period_label
from services.metrics.views import Views

log = get_logger(__name__)


def due(views: Views) -> list[tuple[str, str]]:
    """(kind, period) of the reports for the last finished week, month, half-year and year."""
    now = views.clock.now()
    week = Period.parse(period_label("week", now, views.tz), views.tz).previous()
    month = Period.parse(period_label("month", now, views.tz), views.tz).previous()
    half = Period.parse(period_label("half", now, views.tz), views.tz).previous()
    year = Period.parse(period_label("year", now, views.tz), views.tz).previous()
    return [("weekly", week.label), ("monthly", month.label), ("half_yearly", half.label), ("annual", year.label)]


async def run_due(views: Views) -> list[str]:
    """Generate the due reports not stored yet; returns their ids."""
    stored = {m["_id"] for m in await views.store.list_reports()}
    made = []
    for kind, period in due(views):
        if f"{kind}-{period}" not in stored:
            meta = await views.generate(kind, period)
            log.info("report generated", report=meta["_id"], tickets=meta["tickets"])
            made.append(str(meta["_id"]))
    return made


async def reports_on_schedule(views: Views, settings: MetricsSettings) -> None:
    if not settings.scheduled_reports:
        return
    while True:
        try:
            await run_due(views)
        except Exception as exc:
            log.warning("scheduled report failed", error=repr(exc))
        await asyncio.sleep(settings.reports_scan_seconds)
