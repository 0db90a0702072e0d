"""The alert state machine, as a pure function: an assessment and the alert on file (if any)
become transitions (prewarned, opened, escalated, changed, resolved), the alert as it stands
after them, and the next day to look again. No session, no IO: services/notify/alerts/store.py
writes the outcome (the alert row, and per transition its history row, event and deliveries).

The alert follows the child: the store passes an active alert to the head of the child's run
(a move), and `_Machine.follow` announces that as `changed` (reason moved, or transferred when the
district changed). Corrected dates re-evaluate an active alert in place (`changed`, reason
dates_corrected, then a step up per level reached) or resolve it when today is before the new
deadline. The settle period (`Hold`) keeps new alerts back, and an ended placement from resolving
the child's alerts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from services.notify.facts import Hold
from services.notify.rules import assess as r
from services.notify.rules.config import RulesConfig
from shared.contracts.alerts import ACTIVE_STATUSES, AlertStatus, ChangeReason, Transition


@dataclass(frozen=True)
class AlertState:
    """What the state machine reads and writes of an alert (its id stays with the store)."""

    rule: str
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    status: AlertStatus
    level: int | None  # index into the escalation ladder; None while only a pre-warning
    level_name: str | None
    clock_start: date
    deadline: date
    as_of: date
    calendar_days: int
    counted_days: int
    planned_school_start: date | None = None
    prewarned_at: datetime | None = None
    opened_at: datetime | None = None
    escalated_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledgement_note: str | None = None
    resolved_at: datetime | None = None
    resolution_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class Step:
    """One transition and the alert as it stands after it (what its event and history row tell)."""

    transition: Transition
    alert: AlertState
    reason: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What an assessment does to an alert. `raised`: there was none and one is raised (as the
    first step's alert); `alert` is the alert after every step (None: none on file, none raised).
    `next_check`: the next day to look again; `held_until`: the end of a hold, if held."""

    alert: AlertState | None
    steps: tuple[Step, ...] = ()
    next_check: date | None = None
    held_until: datetime | None = None
    raised: bool = False


def days_until(rules: RulesConfig, rule: str, clock_start: date, until: date) -> tuple[int, int]:
    """Calendar and counted days from the clock's start to `until`."""
    counter = r.counter_for(rules.rule(rule))
    return max(0, (until - clock_start).days), counter.count(clock_start, until)


def transitions(
    a: r.Assessment,
    placement: r.Placement,
    alert: AlertState | None,
    rules: RulesConfig,
    *,
    now: datetime,
    today: date,
    hold: Hold | None = None,
) -> Outcome:
    """Turn an assessment of `placement` (the head of the child's run) into alert transitions."""
    hold = hold or Hold()
    m = _Machine(rules, alert, now, today)
    active = alert is not None and alert.active
    if active:
        m.follow(placement)
        m.change(planned_school_start=a.planned_start)
    if a.state in (r.State.inactive, r.State.met, r.State.pending):
        if active:
            if a.reason == r.Reason.placement_ended and hold.end_until is not None:
                return m.outcome(a.next_check, hold.end_until)  # a continuation may still be entered
            m.resolve(a, placement)
        return m.outcome(a.next_check)
    if active and not m.reassess(a, placement):
        active = False
    if not active and hold.new_until is not None:
        return m.outcome(a.next_check, hold.new_until)  # late history: the rest of it may still arrive
    if a.state == r.State.warning:
        m.prewarn(a, placement)
        return m.outcome(a.next_check)
    return m.outcome(m.breach(a, placement))


def superseded(alert: AlertState, rules: RulesConfig, *, now: datetime, today: date) -> Outcome:
    """An active alert of an earlier placement of the child's run whose head has an alert of its
    own (histories entered out of order): the head's carries on, this one resolves."""
    m = _Machine(rules, alert, now, today)
    calendar, counted = days_until(rules, alert.rule, alert.clock_start, today)
    m.close(r.Reason.placement_ended.value, calendar, counted)
    return m.outcome(None)


def _raised(
    a: r.Assessment,
    p: r.Placement,
    *,
    status: AlertStatus,
    level: int | None,
    level_name: str | None,
    now: datetime,
    today: date,
) -> AlertState:
    assert a.clock_start is not None and a.deadline is not None
    assert a.calendar_days is not None and a.counted_days is not None
    return AlertState(
        rule=a.rule,
        placement_id=p.placement_id,
        child_id=p.child_id,
        district=p.district,
        status=status,
        level=level,
        level_name=level_name,
        clock_start=a.clock_start,
        deadline=a.deadline,
        as_of=today,
        calendar_days=a.calendar_days,
        counted_days=a.counted_days,
        planned_school_start=a.planned_start,
        prewarned_at=now if status == AlertStatus.warning else None,
        opened_at=now if status == AlertStatus.open else None,
    )


class _Machine:
    """The alert as the transitions of one assessment leave it, step by step (local to one call)."""

    def __init__(self, rules: RulesConfig, alert: AlertState | None, now: datetime, today: date) -> None:
        self.rules, self.alert, self.now, self.today = rules, alert, now, today
        self.steps: list[Step] = []
        self.raised = False

    @property
    def current(self) -> AlertState:
        assert self.alert is not None
        return self.alert

    def outcome(self, next_check: date | None, held_until: datetime | None = None) -> Outcome:
        return Outcome(self.alert, tuple(self.steps), next_check, held_until, self.raised)

    def change(self, **fields: Any) -> None:
        self.alert = replace(self.current, **fields)

    def record(self, transition: Transition, reason: str | None = None, **fields: Any) -> None:
        self.change(**fields)
        self.steps.append(Step(transition, self.current, reason))

    def raise_new(self, alert: AlertState, transition: Transition) -> None:
        self.alert, self.raised = alert, True
        self.steps.append(Step(transition, alert))

    def follow(self, p: r.Placement) -> None:
        """The child moved (another placement) or its case passed to another district: the alert
        goes with it, and the move is in its history and on the topic."""
        alert = self.current
        if alert.placement_id == p.placement_id and alert.district == p.district:
            return
        reason = ChangeReason.transferred if alert.district != p.district else ChangeReason.moved
        self.record(Transition.changed, reason.value, placement_id=p.placement_id, district=p.district)

    def reassess(self, a: r.Assessment, p: r.Placement) -> bool:
        """An active alert whose clock differs from the assessment's. False when it was resolved
        (a new episode begins), True when it carries on (corrected in place, or unchanged)."""
        assert a.clock_start is not None and a.deadline is not None
        alert = self.current
        if a.from_school_end and alert.clock_start < a.clock_start:
            # The facts that met the rule and those that broke it again arrived together (one
            # consumer batch, or between two ticks): close the old episode so that the new one is
            # opened and announced on its own, as it would have been had they come one by one.
            self.close(r.Reason.clock_restarted.value, alert.calendar_days, alert.counted_days)
            return False
        if alert.status != AlertStatus.warning and a.state == r.State.warning:
            # Corrected dates put today before the deadline again: this alert is over; a
            # pre-warning on the new dates is raised anew.
            self.resolve(replace(a, state=r.State.pending, reason=None), p)
            return False
        if alert.status == AlertStatus.warning and a.state == r.State.breach:
            return True  # it opens now, on the assessment's dates: the opening tells them
        if (alert.clock_start, alert.deadline) != (a.clock_start, a.deadline):
            self.record(
                Transition.changed,
                ChangeReason.dates_corrected.value,
                clock_start=a.clock_start,
                deadline=a.deadline,
                as_of=self.today,
                calendar_days=a.calendar_days,
                counted_days=a.counted_days,
            )
        return True

    def close(self, reason: str, calendar: int, counted: int) -> None:
        self.record(
            Transition.resolved,
            reason,
            status=AlertStatus.resolved,
            resolved_at=self.now,
            resolution_reason=reason,
            as_of=self.today,
            calendar_days=calendar,
            counted_days=counted,
        )

    def resolve(self, a: r.Assessment, p: r.Placement) -> None:
        """The rule is met, or no longer applies: the active alert resolves, with its day counts."""
        if a.state == r.State.met and a.calendar_days is not None and a.counted_days is not None:
            calendar, counted = a.calendar_days, a.counted_days
        else:
            until = min(self.today, p.end_date) if p.end_date is not None else self.today
            calendar, counted = days_until(self.rules, self.current.rule, self.current.clock_start, until)
        reason = a.reason or r.Reason.deadline_moved
        self.close(reason.value, calendar, counted)

    def prewarn(self, a: r.Assessment, p: r.Placement) -> None:
        if self.alert is None:
            new = _raised(a, p, status=AlertStatus.warning, level=None, level_name=None, now=self.now, today=self.today)
            self.raise_new(new, Transition.prewarned)
        elif self.alert.status == AlertStatus.resolved:
            self.restart(a, status=AlertStatus.warning, level=None, level_name=None)
            self.record(Transition.prewarned, prewarned_at=self.now)

    def breach(self, a: r.Assessment, p: r.Placement) -> date | None:
        """Past the deadline: open the alert at the first step, then climb a step per level
        reached, one event each, as if it had climbed day by day (a late alert tells every level
        in turn). Returns the next day to look again."""
        assert a.deadline is not None
        rules, today = self.rules, self.today
        target = r.escalation_level(rules, a.deadline, today)
        first = rules.escalation[0].level
        if self.alert is None:
            new = _raised(a, p, status=AlertStatus.open, level=0, level_name=first, now=self.now, today=today)
            self.raise_new(new, Transition.opened)
        elif self.alert.status in (AlertStatus.warning, AlertStatus.resolved):
            self.restart(a, status=AlertStatus.open, level=0, level_name=first)
            self.record(Transition.opened, opened_at=self.now)
        alert = self.current
        # An acknowledged alert climbs only if the rules say so; an open one (or one just opened) does.
        climbing = alert.status == AlertStatus.open or rules.escalate_acknowledged
        if alert.level is not None and target > alert.level and climbing:
            for level in range(alert.level + 1, target + 1):
                self.record(
                    Transition.escalated,
                    level=level,
                    level_name=rules.escalation[level].level,
                    escalated_at=self.now,
                    as_of=today,
                    calendar_days=a.calendar_days,
                    counted_days=a.counted_days,
                )
        level = self.current.level if self.current.level is not None else target
        escalation = r.next_escalation(rules, a.deadline, level) if climbing else None
        candidates = [d for d in (a.next_check, escalation) if d is not None and d > today]
        return min(candidates) if candidates else None

    def restart(self, a: r.Assessment, *, status: AlertStatus, level: int | None, level_name: str | None) -> None:
        """A resolved alert that is breached again (a school end reopened the clock), or a warning
        that became an alert: the same row, a new state; the history keeps the earlier one."""
        if self.current.status == AlertStatus.resolved:
            self.change(
                acknowledged_at=None,
                acknowledged_by=None,
                acknowledgement_note=None,
                resolved_at=None,
                resolution_reason=None,
                opened_at=None,
                escalated_at=None,
            )
        self.change(
            status=status,
            level=level,
            level_name=level_name,
            clock_start=a.clock_start,
            deadline=a.deadline,
            as_of=self.today,
            calendar_days=a.calendar_days,
            counted_days=a.counted_days,
            planned_school_start=a.planned_start,
        )
