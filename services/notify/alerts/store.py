"""Alerts in the database: inserting one, recording a transition (history row, outbox event and
webhook deliveries in the caller's transaction), the queries behind /v1/alerts, acknowledging."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.context import Context
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


def days_until(ctx: Context, rule: str, clock_start: date, until: date) -> tuple[int, int]:
    counter = r.counter_for(ctx.rules.rule(rule))
    return max(0, (until - clock_start).days), counter.count(clock_start, until)


async def insert_alert(
    session: AsyncSession,
    a: r.Assessment,
    p: r.Placement,
    *,
    status: str,
    level: int | None,
    level_name: str | None,
    now: datetime,
    today: date,
) -> Alert | None:
    """INSERT … ON CONFLICT DO NOTHING: None when another writer raised it first."""
    values = {
        "id": uuid.uuid4(),
        "rule": a.rule,
        "placement_id": p.placement_id,
        "child_id": p.child_id,
        "district": p.district,
        "status": status,
        "level": level,
        "level_name": level_name,
        "clock_start": a.clock_start,
        "deadline": a.deadline,
        "as_of": today,
        "calendar_days": a.calendar_days,
        "counted_days": a.counted_days,
        "prewarned_at": now if status == AlertStatus.warning else None,
        "opened_at": now if status == AlertStatus.open else None,
        "planned_school_start": a.planned_start,
    }
    stmt = pg_insert(Alert).values(**values).on_conflict_do_nothing(constraint="uq_alert_rule_placement")
    inserted = await session.scalar(stmt.returning(Alert))
    if inserted is None:
        log.info("alert already raised by another writer", extra={"rule": a.rule, "placement_id": str(p.placement_id)})
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
    alert.calendar_days, alert.counted_days = days_until(ctx, alert.rule, alert.clock_start, today)
    await record_transition(session, alert, Transition.acknowledged, now=now, today=today, actor=actor, note=note)
    return alert
