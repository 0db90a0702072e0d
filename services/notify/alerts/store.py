"""Alerts in the database: writing what the state machine (services/notify/alerts/transitions.py)
decides (the alert row, and per transition its history row, outbox event and webhook deliveries,
in the caller's transaction), the queries behind /v1/alerts, acknowledging."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts import transitions as t
from services.notify.context import Context
from services.notify.facts import Hold
from services.notify.mail import queue as mail_queue
from services.notify.models import (
    Alert,
    AlertHistory,
    Webhook,
    WebhookDelivery,
    outbox,
)
from services.notify.rules import assess as r
from shared.contracts.alerts import ACTIVE_STATUSES, TRANSITION_EVENTS, AlertChanged, AlertStatus, RuleName, Transition
from shared.contracts.envelope import EventType
from shared.kernel.errors import Problem, not_found

log = logging.getLogger("obruten.notify")


ACTIVE = ACTIVE_STATUSES
Due = tuple[date | None, datetime | None]  # the next day to look again; the end of a hold, if held
_FIELDS = tuple(f.name for f in dataclasses.fields(t.AlertState))


def state_of(alert: Alert) -> t.AlertState:
    values = {name: getattr(alert, name) for name in _FIELDS}
    return t.AlertState(**{**values, "status": AlertStatus(alert.status)})


def _write(alert: Alert, state: t.AlertState) -> None:
    # Only what changed: an attribute set to its own value would still be a write to the row.
    for name in _FIELDS:
        value = getattr(state, name)
        if getattr(alert, name) != value:
            setattr(alert, name, value.value if isinstance(value, AlertStatus) else value)


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
    """Write the transitions an assessment makes; returns the next day to look again and, when
    the settle period held a transition back, when it ends."""
    current = state_of(alert) if alert is not None else None
    outcome = t.transitions(a, facts.placement, current, ctx.rules, now=now, today=today, hold=hold)
    await _apply(session, alert, outcome, now=now, today=today)
    return outcome.next_check, outcome.held_until


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
        await _apply(
            session, alert, t.superseded(state_of(alert), ctx.rules, now=now, today=today), now=now, today=today
        )
        return
    del alerts[(placement_id, rule)]
    alerts[(head, rule)] = alert


async def _apply(session: AsyncSession, alert: Alert | None, outcome: t.Outcome, *, now: datetime, today: date) -> None:
    """The alert row as each step leaves it, and that step's transition recorded on it."""
    for i, step in enumerate(outcome.steps):
        if i == 0 and outcome.raised:
            alert = await insert_alert(session, step.alert)
            if alert is None:
                return  # another writer raised it first: its transitions are that writer's to record
        assert alert is not None
        _write(alert, step.alert)
        await record_transition(session, alert, step.transition, now=now, today=today, reason=step.reason)
    if alert is not None and outcome.alert is not None:
        _write(alert, outcome.alert)


async def insert_alert(session: AsyncSession, state: t.AlertState) -> Alert | None:
    """INSERT … ON CONFLICT DO NOTHING: None when another writer raised it first."""
    values = {"id": uuid.uuid4(), **{name: getattr(state, name) for name in _FIELDS}, "status": state.status.value}
    stmt = pg_insert(Alert).values(**values).on_conflict_do_nothing(constraint="uq_alert_rule_placement")
    inserted = await session.scalar(stmt.returning(Alert))
    if inserted is None:
        log.info(
            "alert already raised by another writer",
            extra={"rule": state.rule, "placement_id": str(state.placement_id)},
        )
    return inserted


async def record_transition(
    session: AsyncSession,
    alert: Alert,
    transition: Transition,
    *,
    now: datetime,
    today: date,
    reason: str | None = None,
    actor: str | None = None,
    note: str | None = None,
) -> None:
    """History row, outbox event and webhook deliveries of one transition, in the caller's transaction."""
    etype = TRANSITION_EVENTS[transition]
    data = AlertChanged(
        alert_id=alert.id,
        rule=RuleName(alert.rule),
        placement_id=alert.placement_id,
        child_id=alert.child_id,
        district=alert.district,
        status=AlertStatus(alert.status),
        level=alert.level_name,
        clock_start=alert.clock_start,
        deadline=alert.deadline,
        as_of=alert.as_of,
        calendar_days=alert.calendar_days,
        counted_days=alert.counted_days,
        reason=reason,
        acknowledged_by=alert.acknowledged_by if transition == Transition.acknowledged else None,
    )
    event_id = uuid.UUID(await outbox.add(session, etype, subject=str(alert.child_id), data=data, time=now))
    session.add(
        AlertHistory(
            alert_id=alert.id,
            transition=transition,
            at=now,
            on_date=today,
            status=alert.status,
            level_name=alert.level_name,
            clock_start=alert.clock_start,
            deadline=alert.deadline,
            calendar_days=alert.calendar_days,
            counted_days=alert.counted_days,
            reason=reason,
            actor=actor,
            note=note,
            event_id=event_id,
        )
    )
    await _queue_webhooks(session, alert, etype, event_id)
    # Mail to the people and mailboxes this transition concerns, in this same transaction.
    await mail_queue.on_transition(session, alert, transition, reason=reason, now=now)


async def _queue_webhooks(session: AsyncSession, alert: Alert, etype: EventType, event_id: uuid.UUID) -> None:
    """One delivery row per live subscription the alert matches, with the event's exact body."""
    hooks = [
        hook_id
        for hook_id, districts, rules in await _subscriptions(session)
        if (districts is None or alert.district in districts) and (rules is None or alert.rule in rules)
    ]
    if hooks:
        payload = await session.scalar(select(outbox.table.c.payload).where(outbox.table.c.id == event_id))
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        for hook_id in hooks:
            session.add(
                WebhookDelivery(
                    id=uuid.uuid4(),
                    webhook_id=hook_id,
                    alert_id=alert.id,
                    event_id=event_id,
                    event_type=etype.type,
                    body=body,
                )
            )
        session.info["webhook_written"] = True


async def _subscriptions(session: AsyncSession) -> list[tuple[uuid.UUID, list[str] | None, list[str] | None]]:
    """The live webhook subscriptions, read once per transaction: a tick's batch records many
    transitions, and asking the database for each would double its round trips."""
    cached: list[tuple[uuid.UUID, list[str] | None, list[str] | None]] | None = session.info.get("notify_hooks")
    if cached is None:
        rows = await session.execute(
            select(Webhook.id, Webhook.districts, Webhook.rules).where(Webhook.deleted_at.is_(None))
        )
        cached = [(row.id, row.districts, row.rules) for row in rows]
        session.info["notify_hooks"] = cached
    return cached


def alert_query(
    *, district: str | None, rule: str | None, status: str | None, placement_id: uuid.UUID | None
) -> Select[Alert]:
    stmt = select(Alert)
    if district is not None:
        stmt = stmt.where(Alert.district == district)
    if rule is not None:
        stmt = stmt.where(Alert.rule == rule)
    if status is not None:
        stmt = stmt.where(Alert.status == status)
    if placement_id is not None:
        stmt = stmt.where(Alert.placement_id == placement_id)
    return stmt


async def list_alerts(
    session: AsyncSession, stmt: Select[Alert], *, limit: int, offset: int
) -> tuple[list[Alert], int]:
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    items = list(await session.scalars(stmt.order_by(Alert.updated_at.desc(), Alert.id).limit(limit).offset(offset)))
    return items, int(total or 0)


async def get_alert(session: AsyncSession, alert_id: uuid.UUID, *, for_update: bool = False) -> Alert:
    stmt = select(Alert).where(Alert.id == alert_id)
    if for_update:
        stmt = stmt.with_for_update()
    alert = await session.scalar(stmt)
    if alert is None:
        raise not_found("alert")
    return alert


async def alert_history(session: AsyncSession, alert_id: uuid.UUID) -> Sequence[AlertHistory]:
    return (
        await session.scalars(select(AlertHistory).where(AlertHistory.alert_id == alert_id).order_by(AlertHistory.id))
    ).all()


async def acknowledge(
    session: AsyncSession, ctx: Context, alert_id: uuid.UUID, *, actor: str, note: str | None
) -> Alert:
    alert = await get_alert(session, alert_id, for_update=True)
    if alert.status == AlertStatus.resolved:
        raise Problem(
            409,
            "alert-resolved",
            "Alert already resolved",
            f"The alert was resolved ({alert.resolution_reason}); there is nothing to acknowledge.",
        )
    if alert.status == AlertStatus.acknowledged:
        raise Problem(409, "alert-acknowledged", "Alert already acknowledged", "Someone has acknowledged it already.")
    if alert.status == AlertStatus.warning:
        raise Problem(
            409,
            "alert-not-open",
            "Only a pre-warning",
            "The deadline has not passed; a pre-warning opens as an alert only if it does, and is acknowledged then.",
        )
    now, today = ctx.clock.now(), ctx.today()
    alert.status = AlertStatus.acknowledged.value
    alert.acknowledged_at, alert.acknowledged_by, alert.acknowledgement_note = now, actor, note
    alert.as_of = today
    alert.calendar_days, alert.counted_days = t.days_until(ctx.rules, alert.rule, alert.clock_start, today)
    await record_transition(session, alert, Transition.acknowledged, now=now, today=today, actor=actor, note=note)
    return alert
