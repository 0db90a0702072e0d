"""The alert state machine: an assessment and the alert on file (if any) become transitions
(prewarned, opened, escalated, resolved) and the next day to look again."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.store import ACTIVE, days_until, insert_alert, record_transition
from services.notify.context import Context
from services.notify.models import (
    Alert,
)
from services.notify.rules import assess as r
from shared.contracts.alerts import AlertStatus, Transition


async def apply_assessment(
    session: AsyncSession,
    ctx: Context,
    a: r.Assessment,
    facts: r.Facts,
    alert: Alert | None,
    now: datetime,
    today: date,
) -> date | None:
    """Turn an assessment into alert transitions; returns the next day to look again."""
    if a.state in (r.State.inactive, r.State.met, r.State.pending):
        if alert is not None and alert.status in ACTIVE:
            await _resolve(session, ctx, a, facts, alert, now, today)
        return a.next_check
    assert a.clock_start is not None and a.deadline is not None
    assert a.calendar_days is not None and a.counted_days is not None
    p = facts.placement
    if alert is not None and alert.status in ACTIVE and alert.clock_start < a.clock_start:
        # The facts that met the rule and those that broke it again arrived together (one
        # consumer batch, or between two ticks): close the old episode so that the new one is
        # opened and announced on its own, as it would have been had they come one by one.
        alert.status = AlertStatus.resolved.value
        alert.resolved_at = now
        alert.resolution_reason = r.Reason.clock_restarted.value
        await record_transition(
            session, alert, Transition.resolved, now=now, today=today, reason=r.Reason.clock_restarted.value
        )
    if a.state == r.State.warning:
        if alert is None:
            alert = await insert_alert(
                session, a, p, status=AlertStatus.warning, level=None, level_name=None, now=now, today=today
            )
            if alert is not None:
                await record_transition(session, alert, Transition.prewarned, now=now, today=today)
        elif alert.status == AlertStatus.resolved:
            _restart(alert, a, today, status=AlertStatus.warning, level=None, level_name=None)
            alert.prewarned_at = now
            await record_transition(session, alert, Transition.prewarned, now=now, today=today)
        return a.next_check

    return await _breach(session, ctx, a, p, alert, now, today)


async def _resolve(
    session: AsyncSession, ctx: Context, a: r.Assessment, facts: r.Facts, alert: Alert, now: datetime, today: date
) -> None:
    """The rule is met, or no longer applies: the active alert resolves, with its day counts."""
    if a.state == r.State.met and a.calendar_days is not None and a.counted_days is not None:
        calendar, counted = a.calendar_days, a.counted_days
    else:
        end = facts.placement.end_date
        until = min(today, end) if end is not None else today
        calendar, counted = days_until(ctx, alert.rule, alert.clock_start, until)
    reason = a.reason or r.Reason.deadline_moved
    alert.status = AlertStatus.resolved.value
    alert.resolved_at = now
    alert.resolution_reason = reason.value
    alert.as_of, alert.calendar_days, alert.counted_days = today, calendar, counted
    await record_transition(session, alert, Transition.resolved, now=now, today=today, reason=reason.value)


async def _breach(
    session: AsyncSession,
    ctx: Context,
    a: r.Assessment,
    p: r.Placement,
    alert: Alert | None,
    now: datetime,
    today: date,
) -> date | None:
    """Past the deadline: open the alert, or escalate it a step per level crossed."""
    assert a.deadline is not None and a.calendar_days is not None and a.counted_days is not None
    rules = ctx.rules
    target = r.escalation_level(rules, a.deadline, today)
    target_name = rules.escalation[target].level
    if alert is None:
        alert = await insert_alert(
            session, a, p, status=AlertStatus.open, level=target, level_name=target_name, now=now, today=today
        )
        if alert is not None:
            await record_transition(session, alert, Transition.opened, now=now, today=today)
    elif alert.status in (AlertStatus.warning, AlertStatus.resolved):
        _restart(alert, a, today, status=AlertStatus.open, level=target, level_name=target_name)
        alert.opened_at = now
        await record_transition(session, alert, Transition.opened, now=now, today=today)
    elif (
        alert.level is not None
        and target > alert.level
        and (alert.status == AlertStatus.open or rules.escalate_acknowledged)
    ):
        # One event per step crossed, so every audience on the ladder hears of it in turn.
        for level in range(alert.level + 1, target + 1):
            alert.level, alert.level_name = level, rules.escalation[level].level
            alert.escalated_at = now
            alert.as_of, alert.calendar_days, alert.counted_days = today, a.calendar_days, a.counted_days
            await record_transition(session, alert, Transition.escalated, now=now, today=today)
    level = alert.level if alert is not None and alert.level is not None else target
    climbing = alert is None or alert.status == AlertStatus.open or rules.escalate_acknowledged
    escalation = r.next_escalation(rules, a.deadline, level) if climbing else None
    candidates = [d for d in (a.next_check, escalation) if d is not None and d > today]
    return min(candidates) if candidates else None


def _restart(
    alert: Alert, a: r.Assessment, today: date, *, status: str, level: int | None, level_name: str | None
) -> None:
    """A resolved alert that is breached again (a school end reopened the clock), or a warning
    that became an alert: the same row, a new state; the history keeps the earlier one."""
    assert a.clock_start is not None and a.deadline is not None
    assert a.calendar_days is not None and a.counted_days is not None
    if alert.status == AlertStatus.resolved:
        alert.acknowledged_at = alert.acknowledged_by = alert.acknowledgement_note = None
        alert.resolved_at = alert.resolution_reason = None
        alert.opened_at = alert.escalated_at = None
    alert.status, alert.level, alert.level_name = status, level, level_name
    alert.clock_start, alert.deadline = a.clock_start, a.deadline
    alert.as_of, alert.calendar_days, alert.counted_days = today, a.calendar_days, a.counted_days
