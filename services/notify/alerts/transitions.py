"""The alert state machine: an assessment and the alert on file (if any) become transitions
(prewarned, opened, escalated, changed, resolved) and the next day to look again.

The alert follows the child: `hand_over` passes an active alert to the head of the child's run
(a move), and `_follow` announces that as `changed` (reason moved, or transferred when the district
changed). Corrected dates re-evaluate an active alert in place (`changed`, reason dates_corrected,
then a step up per level reached) or resolve it when today is before the new deadline. The settle
period (`Hold`) keeps new alerts back, and an ended placement from resolving the child's alerts.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.store import ACTIVE, days_until, insert_alert, record_transition
from services.notify.context import Context
from services.notify.facts import Hold
from services.notify.models import Alert
from services.notify.rules import assess as r
from shared.contracts.alerts import AlertStatus, ChangeReason, Transition

Due = tuple[date | None, datetime | None]  # the next day to look again; the end of a hold, if held


async def hand_over(
    session: AsyncSession,
    ctx: Context,
    alerts: dict[tuple[uuid.UUID, str], Alert],
    placement_id: uuid.UUID,
    head: uuid.UUID,
    rule: str,
    now: datetime,
    today: date,
) -> None:
    """An active alert of an earlier placement of the child's run passes to the run's head (its
    move is announced when the head is assessed). Should the head have an alert of its own
    (histories entered out of order), that one carries on and this one resolves."""
    alert = alerts.get((placement_id, rule))
    if alert is None or alert.status not in ACTIVE:
        return
    if (head, rule) in alerts:
        calendar, counted = days_until(ctx, rule, alert.clock_start, today)
        await _close(session, alert, r.Reason.placement_ended.value, now, today, calendar, counted)
        return
    del alerts[(placement_id, rule)]
    alerts[(head, rule)] = alert


async def apply_assessment(
    session: AsyncSession,
    ctx: Context,
    a: r.Assessment,
    facts: r.Facts,
    alert: Alert | None,
    now: datetime,
    today: date,
    hold: Hold | None = None,
) -> Due:
    """Turn an assessment into alert transitions; returns the next day to look again and, when
    the settle period held a transition back, when it ends."""
    hold = hold or Hold()
    active = alert is not None and alert.status in ACTIVE
    if alert is not None and active:
        await _follow(session, alert, facts.placement, now, today)
        alert.planned_school_start = a.planned_start
    if a.state in (r.State.inactive, r.State.met, r.State.pending):
        if alert is not None and active:
            if a.reason == r.Reason.placement_ended and hold.end_until is not None:
                return a.next_check, hold.end_until  # a continuation may still be entered
            await _resolve(session, ctx, a, facts, alert, now, today)
        return a.next_check, None
    assert a.clock_start is not None and a.deadline is not None
    assert a.calendar_days is not None and a.counted_days is not None
    if alert is not None and active and not await _reassess(session, ctx, a, facts, alert, now, today):
        active = False
    if not active and hold.new_until is not None:
        return a.next_check, hold.new_until  # late history: the rest of it may still arrive
    p = facts.placement
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
        return a.next_check, None
    return await _breach(session, ctx, a, p, alert, now, today), None


async def _follow(session: AsyncSession, alert: Alert, p: r.Placement, now: datetime, today: date) -> None:
    """The child moved (another placement) or its case passed to another district: the alert
    goes with it, and the move is in its history and on the topic."""
    if alert.placement_id == p.placement_id and alert.district == p.district:
        return
    reason = ChangeReason.transferred if alert.district != p.district else ChangeReason.moved
    alert.placement_id, alert.district = p.placement_id, p.district
    await record_transition(session, alert, Transition.changed, now=now, today=today, reason=reason.value)


async def _reassess(
    session: AsyncSession, ctx: Context, a: r.Assessment, facts: r.Facts, alert: Alert, now: datetime, today: date
) -> bool:
    """An active alert whose clock differs from the assessment's. False when it was resolved (a
    new episode begins), True when it carries on (corrected in place, or unchanged)."""
    assert a.clock_start is not None and a.deadline is not None
    if a.from_school_end and alert.clock_start < a.clock_start:
        # The facts that met the rule and those that broke it again arrived together (one
        # consumer batch, or between two ticks): close the old episode so that the new one is
        # opened and announced on its own, as it would have been had they come one by one.
        await _close(
            session, alert, r.Reason.clock_restarted.value, now, today, alert.calendar_days, alert.counted_days
        )
        return False
    if alert.status != AlertStatus.warning and a.state == r.State.warning:
        # Corrected dates put today before the deadline again: this alert is over; a pre-warning
        # on the new dates is raised anew.
        await _resolve(session, ctx, replace(a, state=r.State.pending, reason=None), facts, alert, now, today)
        return False
    if alert.status == AlertStatus.warning and a.state == r.State.breach:
        return True  # it opens now, on the assessment's dates: the opening tells them
    if (alert.clock_start, alert.deadline) != (a.clock_start, a.deadline):
        assert a.calendar_days is not None and a.counted_days is not None
        alert.clock_start, alert.deadline = a.clock_start, a.deadline
        alert.as_of, alert.calendar_days, alert.counted_days = today, a.calendar_days, a.counted_days
        await record_transition(
            session, alert, Transition.changed, now=now, today=today, reason=ChangeReason.dates_corrected.value
        )
    return True


async def _close(
    session: AsyncSession, alert: Alert, reason: str, now: datetime, today: date, calendar: int, counted: int
) -> None:
    alert.status = AlertStatus.resolved.value
    alert.resolved_at = now
    alert.resolution_reason = reason
    alert.as_of, alert.calendar_days, alert.counted_days = today, calendar, counted
    await record_transition(session, alert, Transition.resolved, now=now, today=today, reason=reason)


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
    await _close(session, alert, reason.value, now, today, calendar, counted)


async def _breach(
    session: AsyncSession,
    ctx: Context,
    a: r.Assessment,
    p: r.Placement,
    alert: Alert | None,
    now: datetime,
    today: date,
) -> date | None:
    """Past the deadline: open the alert at the first step, then climb a step per level reached,
    one event each, as if it had climbed day by day (a late alert tells every level in turn)."""
    assert a.deadline is not None and a.calendar_days is not None and a.counted_days is not None
    rules = ctx.rules
    target = r.escalation_level(rules, a.deadline, today)
    first = rules.escalation[0].level
    opened = False
    if alert is None:
        alert = await insert_alert(
            session, a, p, status=AlertStatus.open, level=0, level_name=first, now=now, today=today
        )
        if alert is not None:
            await record_transition(session, alert, Transition.opened, now=now, today=today)
            opened = True
    elif alert.status in (AlertStatus.warning, AlertStatus.resolved):
        _restart(alert, a, today, status=AlertStatus.open, level=0, level_name=first)
        alert.opened_at = now
        await record_transition(session, alert, Transition.opened, now=now, today=today)
        opened = True
    if (
        alert is not None
        and alert.level is not None
        and target > alert.level
        and (opened or alert.status == AlertStatus.open or rules.escalate_acknowledged)
    ):
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
    alert.planned_school_start = a.planned_start
