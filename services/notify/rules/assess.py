"""The deadline rules, as pure functions of a placement's facts and a date.

Nothing here touches the database or the clock: `assess` is given "today" (a local date in
Europe/Stockholm) and says where a placement stands for one rule, and on which future date that
can change by the mere passing of time. The service turns assessments into alert transitions
and into the next due time of the (placement, rule) pair.

The clock follows the child: `Facts.earlier` holds the earlier placements of the child's
unbroken time in care (a move, or a placement starting within the configured gap after the last
one ended), and each rule counts from the first of the trailing placements it covers (see
`_chain`). The alert of a run belongs to its latest placement, the head.

Day counting: the clock starts on day 0 (the start of the child's time in care under the rule, the
day the child came of the rule's age, or the day a school attendance ended). A rule is breached
when MORE than `days` counted days have passed: placed on day 0 and still without school on
day 8 breaches the 7-day rule, a start on day 7 meets it. Counted days skip configured term
breaks (school_gap) or weekends and Swedish public holidays (exam rules with working_days).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from services.notify.rules.config import (
    ExamRule,
    RuleBase,
    RulesConfig,
    SchoolAge,
    SchoolGapRule,
    SchoolPlanRule,
    months_earlier,
)
from services.notify.rules.days import DayCounter, counter_for
from shared.contracts.alerts import RuleName

__all__ = ["DayCounter", "counter_for"]  # the day counting lives in rules/days.py

SCHOOL_GAP = RuleName.school_gap
SCHOOL_PLAN_MISSING = RuleName.school_plan_missing
HEALTH_EXAM_MISSING = RuleName.health_exam_missing
DENTAL_EXAM_MISSING = RuleName.dental_exam_missing


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
    """One placement and what is known of it; for the head of a run, the run's earlier
    placements (oldest first) and the child's examinations done in other runs."""

    placement: Placement
    attendances: list[Attendance] = field(default_factory=list)
    plans: list[date] = field(default_factory=list)
    health_exams: list[date] = field(default_factory=list)  # completion dates
    dental_exams: list[date] = field(default_factory=list)
    earlier: list[Facts] = field(default_factory=list)
    other_health_exams: list[date] = field(default_factory=list)
    other_dental_exams: list[date] = field(default_factory=list)


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
    # A school start on record for a later day (not withdrawn): shown on the alert as planned.
    planned_start: date | None = None
    # The clock started at a school end (not at the placement): a later one is a new episode.
    from_school_end: bool = False


def _future_min(today: date, days: Iterable[date | None]) -> date | None:
    later = [d for d in days if d is not None and d > today]
    return min(later) if later else None


def _form_scope(rule: SchoolGapRule | SchoolPlanRule | ExamRule, p: Placement) -> Reason | None:
    """Whether the placement itself is of a kind the rule covers (form, school change)."""
    if not rule.enabled:
        return Reason.rule_disabled
    if p.form not in rule.effective_forms():
        return Reason.not_applicable
    if isinstance(rule, SchoolGapRule) and not p.school_change:
        return Reason.not_applicable
    return None


def _chain(rule: SchoolGapRule | SchoolPlanRule | ExamRule, facts: Facts) -> list[Facts]:
    """The trailing placements of the child's run that the rule counts over, oldest first, the
    head last: back while the earlier placement is of a kind the rule covers. A school plan does
    not carry over a move that means a change of school."""
    chain = [facts]
    for earlier in reversed(facts.earlier):
        if _form_scope(rule, earlier.placement) is not None:
            break
        if isinstance(rule, SchoolPlanRule) and chain[0].placement.school_change:
            break
        chain.insert(0, earlier)
    return chain


def _age_window(rule: RuleBase, birth: date, school: SchoolAge) -> tuple[date | None, date | None]:
    return rule.age_band.window(birth, school)


def _out_of_age(
    name: str, rule: RuleBase, p: Placement, school: SchoolAge, today: date
) -> tuple[Assessment | None, date | None]:
    """An inactive assessment when today lies outside the rule's age band (with the day the child
    comes under it as the next check), else None and the first day of the band."""
    first, last = _age_window(rule, p.child_birth_date, school)
    if first is not None and today < first:
        return Assessment(name, State.inactive, Reason.not_applicable, next_check=first), first
    if last is not None and today > last:
        return Assessment(name, State.inactive, Reason.not_applicable), first
    return None, first


def _countdown(
    name: str,
    rule: RuleBase,
    counter: DayCounter,
    clock_start: date,
    today: date,
    *,
    scheduled: date | None,
    placement_end: date | None,
    from_school_end: bool = False,
) -> Assessment:
    """Where an unmet rule stands on `today`, its clock having started on `clock_start`."""
    deadline = counter.nth(clock_start, rule.days + 1)
    prewarning_on = counter.nth(clock_start, rule.prewarning_day) if rule.prewarning_day else None
    state, reason = State.pending, None
    if today >= deadline:
        state, next_check = State.breach, _future_min(today, [scheduled, placement_end])
    elif scheduled is not None and scheduled <= deadline:
        # A start on or before the deadline is on record: the goal will be met, nothing to warn about.
        reason = Reason.school_start_scheduled
        next_check = _future_min(today, [scheduled, deadline, placement_end])
    elif prewarning_on is not None and today >= prewarning_on:
        state, next_check = State.warning, _future_min(today, [deadline, scheduled, placement_end])
    else:
        next_check = _future_min(today, [prewarning_on, deadline, scheduled, placement_end])
    # Built once, not built and then copied with `replace`: assessed for every rule of every
    # placement a consumer batch touches, where dataclasses.replace was a quarter of the cost.
    return Assessment(
        name,
        state,
        reason,
        clock_start=clock_start,
        deadline=deadline,
        prewarning_on=prewarning_on,
        calendar_days=max(0, (today - clock_start).days),
        counted_days=counter.count(clock_start, today),
        next_check=next_check,
        planned_start=scheduled,
        from_school_end=from_school_end,
    )


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


def _school_attendances(chain: list[Facts]) -> list[Attendance]:
    """The attendances of a chain of placements that each mean a change of school: one of an
    earlier placement ends (at the latest) on the day the next placement starts. A withdrawn
    planned start (ended on or before its start) never took place."""
    out: list[Attendance] = []
    for i, f in enumerate(chain):
        move = chain[i + 1].placement.start_date if i + 1 < len(chain) else None
        for a in f.attendances:
            if a.start_date is not None and a.end_date is not None and a.end_date <= a.start_date:
                continue
            if move is not None:
                if a.start_date is not None and a.start_date >= move:
                    continue
                a = Attendance(a.start_date, move if a.end_date is None else min(a.end_date, move))
            out.append(a)
    return out


def assess_school_gap(rule: SchoolGapRule, facts: Facts, today: date, school: SchoolAge | None = None) -> Assessment:
    name = SCHOOL_GAP
    p = facts.placement
    out = _form_scope(rule, p)
    if out is not None:
        return Assessment(name, State.inactive, out)
    aged_out, age_from = _out_of_age(name, rule, p, school or SchoolAge(), today)
    if aged_out is not None:
        return aged_out
    if p.end_date is not None and p.end_date <= today:
        return Assessment(name, State.inactive, Reason.placement_ended)
    counter = counter_for(rule)
    chain = _chain(rule, facts)
    run_start = max([chain[0].placement.start_date] + ([age_from] if age_from else []))
    attendances = _school_attendances(chain)
    begun = [a for a in attendances if a.start_date is not None and a.start_date <= today]
    current = [a for a in begun if a.end_date is None or a.end_date > today]
    ended = [a.end_date for a in attendances if a.end_date is not None and a.end_date <= today]
    if current:
        started = max(a.start_date for a in current if a.start_date is not None)
        # The gap this start closed opened at the run's start or at the last end before it.
        gap_start = max([run_start, *(e for e in ended if e <= started)])
        return _met(
            name,
            Reason.school_started,
            counter,
            gap_start,
            started,
            next_check=_future_min(today, [a.end_date for a in current] + [p.end_date]),
        )
    clock_start = max([run_start, *ended])
    scheduled = _future_min(today, [a.start_date for a in attendances if a.end_date is None])
    return _countdown(
        name,
        rule,
        counter,
        clock_start,
        today,
        scheduled=scheduled,
        placement_end=p.end_date,
        from_school_end=clock_start > run_start,
    )


def _done_for(rule: SchoolPlanRule | ExamRule, chain: list[Facts], kind: str, facts: Facts) -> list[date]:
    """The records that fulfil a once-and-for-all rule: the chain's plans; for an examination,
    any the child had, done at most `valid_for_months` before the chain began."""
    if kind == "plan":
        return [d for f in chain for d in f.plans]
    assert isinstance(rule, ExamRule)
    runs = [f.health_exams if kind == "health" else f.dental_exams for f in [*facts.earlier, facts]]
    others = facts.other_health_exams if kind == "health" else facts.other_dental_exams
    valid_from = months_earlier(chain[0].placement.start_date, rule.valid_for_months)
    return [d for d in [*(d for run in runs for d in run), *others] if d >= valid_from]


def _assess_once(
    name: str,
    rule: SchoolPlanRule | ExamRule,
    kind: str,
    reason: Reason,
    facts: Facts,
    today: date,
    school: SchoolAge,
) -> Assessment:
    """Rules fulfilled once and for all by one record (a school plan, a completed examination)."""
    p = facts.placement
    out = _form_scope(rule, p)
    if out is not None:
        return Assessment(name, State.inactive, out)
    aged_out, age_from = _out_of_age(name, rule, p, school, today)
    if aged_out is not None:
        return aged_out
    counter = counter_for(rule)
    chain = _chain(rule, facts)
    start = max([chain[0].placement.start_date] + ([age_from] if age_from else []))
    done = _done_for(rule, chain, kind, facts)
    if done:
        return _met(name, reason, counter, start, min(done))
    if p.end_date is not None and p.end_date <= today:
        return Assessment(name, State.inactive, Reason.placement_ended)
    return _countdown(name, rule, counter, start, today, scheduled=None, placement_end=p.end_date)


def assess(name: str, rules: RulesConfig, facts: Facts, today: date) -> Assessment:
    school = rules.school_age
    if name == SCHOOL_GAP:
        return assess_school_gap(rules.school_gap, facts, today, school)
    if name == SCHOOL_PLAN_MISSING:
        return _assess_once(name, rules.school_plan_missing, "plan", Reason.plan_registered, facts, today, school)
    if name == HEALTH_EXAM_MISSING:
        return _assess_once(name, rules.health_exam_missing, "health", Reason.exam_completed, facts, today, school)
    if name == DENTAL_EXAM_MISSING:
        return _assess_once(name, rules.dental_exam_missing, "dental", Reason.exam_completed, facts, today, school)
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
