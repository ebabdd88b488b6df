"""Time, injected: every piece of code where a clock matters asks a :class:`Clock`, so a test
or a simulation can run a month of deadlines in seconds.

* :class:`SystemClock` - the real time (what services use by default).
* :class:`ManualClock` - a clock a test sets and advances by hand.
* :class:`SimulatedClock` - accelerated time for running processes: simulated now =
  ``start + speed x (real now - real_start)``. Every process given the same three values
  (settings ``HOTLINE_CLOCK__START``, ``HOTLINE_CLOCK__SPEED``, ``HOTLINE_CLOCK__REAL_START``)
  shares one timeline, and a process restarted later finds the simulated time where it would
  have been: a simulated week runs in a minute at speed 10,080, and downtime counts too.

:func:`from_settings` gives the clock the settings ask for (the runtime hands it to services
as ``rt.clock``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from hotline.pb import millis
from hotline.settings import ClockSettings


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC, at the millisecond precision the store keeps."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return millis(datetime.now(UTC))


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self._now = millis(start.astimezone(UTC))

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = millis(when.astimezone(UTC))

    def advance(self, delta: timedelta) -> datetime:
        self._now = millis(self._now + delta)
        return self._now


class SimulatedClock:
    """``start + speed x (real - real_start)``; ``real`` is the wall clock (a :class:`Clock`)."""

    def __init__(self, start: datetime, speed: float, real_start: datetime | None = None,
                 real: Clock | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.real = real or SystemClock()
        self.start = start.astimezone(UTC)
        self.speed = speed
        self.real_start = (real_start or self.real.now()).astimezone(UTC)

    def now(self) -> datetime:
        return millis(self.start + (self.real.now() - self.real_start) * self.speed)

    def real_seconds(self, simulated: timedelta) -> float:
        """How many real seconds a simulated span takes (to size sleeps and intervals)."""
        return simulated.total_seconds() / self.speed


def from_settings(settings: ClockSettings) -> Clock:
    """The real clock, or the simulated one when ``start`` is set (or ``speed`` is not 1)."""
    if settings.start is None and settings.speed == 1:
        return SystemClock()
    start = settings.start or datetime.now(UTC)
    return SimulatedClock(_aware(start), settings.speed, _aware(settings.real_start) if settings.real_start else None)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
