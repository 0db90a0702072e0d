"""What evaluation and the alert routes need besides a session: the rules, the clock and the
local time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from services.notify.rules.config import RulesConfig
from shared.kernel.clock import Clock

if TYPE_CHECKING:
    from services.notify.schedule import Schedule


@dataclass(frozen=True)
class Context:
    """What evaluation needs besides a session: the rules, the clock and the local time zone."""

    rules: RulesConfig
    clock: Clock
    tz: ZoneInfo
    # The settle period (NotifySettings.settle_seconds).
    settle: timedelta = timedelta(0)
    # The running service's evaluation loop (services/notify/schedule.py), woken by earlier due
    # times; None outside it (`obruten replay`, benchmarks), which notify every replica instead.
    schedule: Schedule | None = None

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    def midnight(self, day: date) -> datetime:
        # Due times are the start of a local (Stockholm) day, so DST changes move nothing.
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)
