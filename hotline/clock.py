"""Time, injected: every piece of code where a clock matters asks a :class:`Clock`, so a test
or a simulation can run a month of deadlines in seconds.

* :class:`SystemClock` - the real time (what services use by default).
* :class:`ManualClock` - a clock a test sets and advances by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from hotline.pb import millis


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
