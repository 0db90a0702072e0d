"""The deadline rules, as pure functions of a placement's facts and a date.

Nothing here touches the database or the clock: `assess` is given "today" (a local date in
Europe/Stockholm) and says where a placement stands for one rule, and on which future date that
can change by the mere passing of time. The service turns assessments into alert transitions
and into the next due time of the (placement, rule) pair.

Day counting: the clock starts on day 0 (the placement start, or the day a school attendance
ended). A rule is breached when MORE than `days` counted days have passed: placed on day 0 and
still without school on day 8 breaches the 7-day rule, a start on day 7 meets it. Counted days
skip configured term breaks (school_gap) or weekends and Swedish public holidays (exam rules
with working_days).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

import holidays

from services.notify.rules.config import ExamRule, RuleBase, RulesConfig, SchoolGapRule, SchoolPlanRule
from shared.contracts.alerts import RuleName

SCHOOL_GAP = RuleName.school_gap
SCHOOL_PLAN_MISSING = RuleName.school_plan_missing
HEALTH_EXAM_MISSING = RuleName.health_exam_missing
DENTAL_EXAM_MISSING = RuleName.dental_exam_missing

# Safety bound for day-by-day searches: no configured deadline may lie further out.
_MAX_SEARCH_DAYS = 4000


class State(StrEnum):
    inactive = "inactive"  # the rule does not apply (or no longer): resolve whatever is open
    met = "met"  # the condition is fulfilled
    pending = "pending"  # counting, nothing to say yet
    warning = "warning"  # at or past the pre-warning day, before the deadline
    breach = "breach"  # past the deadline


class Reason(StrEnum):
    rule_disabled = "rule_disabled"
    not_applicable = "not_applicable"  # form, school change or age band no longer in scope
    placement_ended = "placement_ended"
    school_started = "school_started"
    school_start_scheduled = "school_start_scheduled"  # a start on or before the deadline is on record
    plan_registered = "plan_registered"
    exam_completed = "exam_completed"
    deadline_moved = "deadline_moved"  # corrected dates put today before the pre-warning again
    # Met and then unmet again from a later day (a school start, then a school end), both learnt
    # since the alert was last assessed: its episode is over, and the new one is announced anew.
    clock_restarted = "clock_restarted"


@dataclass(frozen=True)
class Placement:
    placement_id: Any
    child_id: Any
    district: str
    form: str
    start_date: date
    end_date: date | None
    school_change: bool
    child_birth_date: date


@dataclass(frozen=True)
class Attendance:
    """A school start and, once it ended, its end (the clock reopens from the end date)."""

    start_date: date | None  # None while only its end has been seen (events out of order)
    end_date: date | None


@dataclass
class Facts:
    placement: Placement
    attendances: list[Attendance] = field(default_factory=list)
    plans: list[date] = field(default_factory=list)
    health_exams: list[date] = field(default_factory=list)  # completion dates
    dental_exams: list[date] = field(default_factory=list)


@dataclass(frozen=True)
class Assessment:
    rule: str
    state: State
    reason: Reason | None = None
    clock_start: date | None = None
    deadline: date | None = None  # the first day in breach
    prewarning_on: date | None = None
    # As of today; for a met rule, as of the day it was met (the days it took).
    calendar_days: int | None = None
    counted_days: int | None = None
    met_on: date | None = None
    # The next day on which this assessment can change without any new event.
    next_check: date | None = None


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


def _future_min(today: date, days: Iterable[date | None]) -> date | None:
    later = [d for d in days if d is not None and d > today]
    return min(later) if later else None


def _in_scope(rule: SchoolGapRule | SchoolPlanRule | ExamRule, p: Placement) -> Reason | None:
    if not rule.enabled:
        return Reason.rule_disabled
    if p.form not in rule.effective_forms():
        return Reason.not_applicable
    if isinstance(rule, SchoolGapRule) and not p.school_change:
        return Reason.not_applicable
    if not rule.age_band.covers(p.child_birth_date, p.start_date):
        return Reason.not_applicable
    return None


def _countdown(
    name: str,
    rule: RuleBase,
    counter: DayCounter,
    clock_start: date,
    today: date,
    *,
    scheduled: date | None,
    placement_end: date | None,
) -> Assessment:
    """Where an unmet rule stands on `today`, its clock having started on `clock_start`."""
    deadline = counter.nth(clock_start, rule.days + 1)
    prewarning_on = counter.nth(clock_start, rule.prewarning_day) if rule.prewarning_day else None
    base = Assessment(
        name,
        State.pending,
        clock_start=clock_start,
        deadline=deadline,
        prewarning_on=prewarning_on,
        calendar_days=max(0, (today - clock_start).days),
        counted_days=counter.count(clock_start, today),
    )
    if today >= deadline:
        return replace(base, state=State.breach, next_check=_future_min(today, [scheduled, placement_end]))
    if scheduled is not None and scheduled <= deadline:
        # A start on or before the deadline is on record: the goal will be met, nothing to warn about.
        return replace(
            base,
            reason=Reason.school_start_scheduled,
            next_check=_future_min(today, [scheduled, deadline, placement_end]),
        )
    if prewarning_on is not None and today >= prewarning_on:
        return replace(base, state=State.warning, next_check=_future_min(today, [deadline, scheduled, placement_end]))
    return replace(base, next_check=_future_min(today, [prewarning_on, deadline, scheduled, placement_end]))


def _met(name: str, reason: Reason, counter: DayCounter, clock_start: date, met_on: date, **kw: Any) -> Assessment:
    met_on_clamped = max(met_on, clock_start)
    return Assessment(
        name,
        State.met,
        reason,
        clock_start=clock_start,
        calendar_days=(met_on_clamped - clock_start).days,
        counted_days=counter.count(clock_start, met_on_clamped),
        met_on=met_on,
        **kw,
    )


def assess_school_gap(rule: SchoolGapRule, facts: Facts, today: date) -> Assessment:
    name = SCHOOL_GAP
    p = facts.placement
    out = _in_scope(rule, p)
    if out is not None:
        return Assessment(name, State.inactive, out)
    if p.end_date is not None and p.end_date <= today:
        return Assessment(name, State.inactive, Reason.placement_ended)
    counter = counter_for(rule)
    # A start ended on its own first day was withdrawn (a caseworker's correction, or an enrolment
    # the school cancelled): the child never attended, so it neither met the rule nor restarts it.
    attendances = [a for a in facts.attendances if a.start_date is None or a.end_date != a.start_date]
    begun = [a for a in attendances if a.start_date is not None and a.start_date <= today]
    current = [a for a in begun if a.end_date is None or a.end_date > today]
    ended = [a.end_date for a in attendances if a.end_date is not None and a.end_date <= today]
    if current:
        started = max(a.start_date for a in current if a.start_date is not None)
        # The gap this start closed opened at the placement start or at the last end before it.
        gap_start = max([p.start_date, *(e for e in ended if e <= started)])
        return _met(
            name,
            Reason.school_started,
            counter,
            gap_start,
            started,
            next_check=_future_min(today, [a.end_date for a in current] + [p.end_date]),
        )
    clock_start = max([p.start_date, *ended])
    scheduled = _future_min(today, [a.start_date for a in attendances if a.end_date is None])
    return _countdown(name, rule, counter, clock_start, today, scheduled=scheduled, placement_end=p.end_date)


def _assess_once(
    name: str, rule: SchoolPlanRule | ExamRule, done: list[date], reason: Reason, facts: Facts, today: date
) -> Assessment:
    """Rules fulfilled once and for all by one record (a school plan, a completed examination)."""
    p = facts.placement
    out = _in_scope(rule, p)
    if out is not None:
        return Assessment(name, State.inactive, out)
    counter = counter_for(rule)
    if done:
        return _met(name, reason, counter, p.start_date, min(done))
    if p.end_date is not None and p.end_date <= today:
        return Assessment(name, State.inactive, Reason.placement_ended)
    return _countdown(name, rule, counter, p.start_date, today, scheduled=None, placement_end=p.end_date)


def assess(name: str, rules: RulesConfig, facts: Facts, today: date) -> Assessment:
    if name == SCHOOL_GAP:
        return assess_school_gap(rules.school_gap, facts, today)
    if name == SCHOOL_PLAN_MISSING:
        return _assess_once(name, rules.school_plan_missing, facts.plans, Reason.plan_registered, facts, today)
    if name == HEALTH_EXAM_MISSING:
        return _assess_once(name, rules.health_exam_missing, facts.health_exams, Reason.exam_completed, facts, today)
    if name == DENTAL_EXAM_MISSING:
        return _assess_once(name, rules.dental_exam_missing, facts.dental_exams, Reason.exam_completed, facts, today)
    raise ValueError(f"unknown rule {name}")


def escalation_level(rules: RulesConfig, deadline: date, today: date) -> int:
    """Index of the highest ladder step reached on `today`."""
    level = 0
    for i, step in enumerate(rules.escalation):
        if today >= deadline + timedelta(days=step.after_days):
            level = i
    return level


def next_escalation(rules: RulesConfig, deadline: date, level: int) -> date | None:
    if level + 1 < len(rules.escalation):
        return deadline + timedelta(days=rules.escalation[level + 1].after_days)
    return None
