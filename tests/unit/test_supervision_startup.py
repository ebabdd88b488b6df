"""Supervision's start-up calendar check: how far ahead the official calendar reaches, loudly."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from hotline.calendar import PACKAGE_LAST_YEAR, WorkCalendar
from hotline.clock import ManualClock
from services.supervision.main import check_calendar


def test_a_calendar_running_out_within_60_days_is_a_warning_and_a_gauge() -> None:
    clock = ManualClock(datetime(PACKAGE_LAST_YEAR, 11, 26, 4, tzinfo=UTC))
    with capture_logs() as logs:
        ahead = check_calendar(WorkCalendar(), clock, warn_days=60)
    assert ahead == 35
    assert [e["log_level"] for e in logs] == ["warning"]
    assert logs[0]["days_ahead"] == 35 and logs[0]["known_until"] == f"{PACKAGE_LAST_YEAR}-12-31"
    assert REGISTRY.get_sample_value("hotline_calendar_known_days_ahead") == 35
    clock.set(datetime(PACKAGE_LAST_YEAR, 12, 30, 4, tzinfo=UTC))
    assert REGISTRY.get_sample_value("hotline_calendar_known_days_ahead") == 1  # read at scrape time


def test_a_calendar_known_far_enough_ahead_is_only_noted() -> None:
    clock = ManualClock(datetime(PACKAGE_LAST_YEAR, 6, 1, tzinfo=UTC))
    with capture_logs() as logs:
        assert check_calendar(WorkCalendar(), clock, warn_days=60) > 200
    assert [e["log_level"] for e in logs] == ["info"]
