"""Counting days: calendar days, days outside term breaks (school_gap), or Swedish working days
(examination rules with working_days)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import lru_cache

import holidays

from services.notify.rules.config import ExamRule, RuleBase, SchoolGapRule

# Safety bound for day-by-day searches: no configured deadline may lie further out.
_MAX_SEARCH_DAYS = 4000


@lru_cache(maxsize=64)
def _swedish_holidays(year: int) -> frozenset[date]:
    # Midsummer, Christmas and New Year's Eve are not public holidays by law but are days off in
    # practice (the package's "de_facto" category); a deadline in working days skips them too.
    return frozenset(holidays.country_holidays("SE", years=year, categories=("public", "de_facto")))


def _is_non_working(day: date) -> bool:
    return day.weekday() >= 5 or day in _swedish_holidays(day.year)


class DayCounter:
    """Counts days after a start date, skipping the days `skip` says do not count."""

    def __init__(self, skip: Callable[[date], bool] | None = None) -> None:
        self.skip = skip

    def count(self, start: date, until: date) -> int:
        """Counted days d with start < d <= until."""
        if until <= start:
            return 0
        if self.skip is None:
            return (until - start).days
        return sum(1 for i in range(1, (until - start).days + 1) if not self.skip(start + timedelta(days=i)))

    def nth(self, start: date, n: int) -> date:
        """The first day on which `n` days have been counted since start."""
        if n <= 0:
            return start
        if self.skip is None:
            return start + timedelta(days=n)
        counted = 0
        day = start
        for _ in range(_MAX_SEARCH_DAYS * 2):
            day += timedelta(days=1)
            if not self.skip(day):
                counted += 1
                if counted >= n:
                    return day
        raise ValueError("no such day within the search bound; check the term breaks")


def counter_for(rule: RuleBase) -> DayCounter:
    if isinstance(rule, SchoolGapRule) and rule.term_breaks:
        breaks = [(b.start, b.end) for b in rule.term_breaks]
        return DayCounter(lambda d: any(s <= d <= e for s, e in breaks))
    if isinstance(rule, ExamRule) and rule.working_days:
        return DayCounter(_is_non_working)
    return DayCounter()
