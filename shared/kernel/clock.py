"""Time is an input: rules and records read a clock that tests can set."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo

from fastapi import Depends, Request

from shared.kernel.runtime import kernel_runtime

STOCKHOLM = ZoneInfo("Europe/Stockholm")


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    def __init__(self, tz: ZoneInfo = STOCKHOLM) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        # Dates of placements and school starts are local dates in the municipality.
        return datetime.now(self.tz).date()


class FixedClock:
    """A clock that stands still until told to move; for tests and replays."""

    def __init__(self, now: datetime, tz: ZoneInfo = STOCKHOLM) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = now
        self.tz = tz

    def now(self) -> datetime:
        return self._now

    def today(self) -> date:
        return self._now.astimezone(self.tz).date()

    def set(self, now: datetime) -> None:
        self._now = now

    def set_today(self, day: date, hour: int = 12) -> None:
        self._now = datetime(day.year, day.month, day.day, hour, tzinfo=self.tz)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


async def get_clock(request: Request) -> Clock:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
    clock: Clock = kernel_runtime(request.app).clock
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]
