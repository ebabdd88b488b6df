"""The accelerated simulated clock: a shared timeline, continued by a restarted process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hotline.clock import ManualClock, SimulatedClock, SystemClock, from_settings
from hotline.settings import ClockSettings

REAL = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SIM = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def test_simulated_now_is_start_plus_speed_times_real_elapsed() -> None:
    real = ManualClock(REAL)
    clock = SimulatedClock(SIM, 10_080, REAL, real)
    assert clock.now() == SIM
    real.advance(timedelta(seconds=60))
    assert clock.now() == SIM + timedelta(days=7)  # a week per real minute
    assert clock.real_seconds(timedelta(days=7)) == 60


def test_a_restarted_process_continues_the_same_timeline() -> None:
    real = ManualClock(REAL + timedelta(seconds=30))
    restarted = SimulatedClock(SIM, 10_080, REAL, real)  # same start and real_start, later
    assert restarted.now() == SIM + timedelta(days=3.5)


def test_settings_choose_the_clock() -> None:
    assert isinstance(from_settings(ClockSettings()), SystemClock)
    simulated = from_settings(ClockSettings(start=SIM, speed=100, real_start=REAL))
    assert isinstance(simulated, SimulatedClock)
    assert simulated.now() > SIM + timedelta(days=1)  # real time has moved on since REAL
    with pytest.raises(ValueError):
        SimulatedClock(SIM, 0)
