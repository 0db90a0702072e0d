"""Notify's work: the projection, evaluation of the due index, alert transitions, webhooks.

Functions take a session and never commit: the consumer's transaction (with its inbox row),
the tick's transaction or the request's holds each effect together with its outbox and webhook
delivery rows.

Locking: every change to an alert of (placement, rule) happens while holding that pair's
alert_due row. A consumer batch's evaluation waits for it (FOR UPDATE, always in (placement,
rule) order); the tick skips rows another worker holds (SKIP LOCKED). The unique (rule,
placement) constraint is the backstop.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import ARRAY, Date, Select, Text, func, literal, null, select, true, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.models import (
    Alert,
    AlertDue,
    AlertHistory,
    Examination,
    SchoolAttendance,
    SchoolPlan,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    outbox,
    placement_view,
)
from services.notify.rules import assess as r
from services.notify.rules.config import RulesConfig
from shared.bus.inbox import event_data
from shared.bus.placement_copy import upsert_placement
from shared.contracts.alerts import RULE_NAMES, TRANSITION_EVENTS, AlertChanged, AlertStatus
from shared.contracts.envelope import CloudEvent
from shared.contracts.health import EXAM_BOOKED, EXAM_COMPLETED, EXAM_DECLINED, EXAM_MISSED, ExaminationEvent
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_ENDED, PLACEMENT_STARTED, PlacementSnapshot
from shared.contracts.school import (
    SCHOOL_ENDED,
    SCHOOL_PLAN_REGISTERED,
    SCHOOL_STARTED,
    SchoolEnded,
    SchoolPlanRegistered,
    SchoolStarted,
)
from shared.kernel.clock import Clock
from shared.kernel.errors import Problem, not_found
from shared.kernel.settings import Settings

log = logging.getLogger("obruten.notify")

ACTIVE = ("warning", "open", "acknowledged")
PLACEMENT_EVENTS = {PLACEMENT_STARTED.type, PLACEMENT_CHANGED.type, PLACEMENT_ENDED.type}
EXAM_EVENTS = {EXAM_BOOKED.type, EXAM_COMPLETED.type, EXAM_DECLINED.type, EXAM_MISSED.type}


@dataclass(frozen=True)
class Context:
    """What evaluation needs besides a session: the rules, the clock and the local time zone."""

    rules: RulesConfig
    clock: Clock
    tz: ZoneInfo

    def today(self) -> date:
        return self.clock.now().astimezone(self.tz).date()

    def midnight(self, day: date) -> datetime:
        # Due times are the start of a local (Stockholm) day, so DST changes move nothing.
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)


# --- projection ---------------------------------------------------------------------------------


# The placements a consumer batch touched, kept in its session until the batch is evaluated.
_TOUCHED = "notify_touched"


async def project(session: AsyncSession, event: CloudEvent) -> None:
    """The consumer's handler: stores what an event says and notes its placement for the
    batch's evaluation (`make_after_batch`)."""
    placement_id = await apply_event(session, event)
    if placement_id is not None:
        session.info.setdefault(_TOUCHED, set()).add(placement_id)


def make_after_batch(ctx: Context) -> Callable[[AsyncSession], Any]:
    """Runs after a consumer batch's events, in its transaction: re-evaluates every placement
    the batch touched, once, on everything now known of it.

    Once per batch rather than once per event: the evaluation (due rows, facts, alerts) is most
    of the consumer's statements, and a batch of events about one placement needs it once.
    Alerts follow what is known when the batch commits, as they follow what is known at each
    tick: two events of one batch that would open and at once resolve an alert (a backlog
    holding both a placement 10 days old and its school start) raise none, as they would had
    notify read them both before looking. The school report still shows the days it took.
    """

    async def after_batch(session: AsyncSession) -> None:
        touched: set[uuid.UUID] = session.info.pop(_TOUCHED, set())
        if touched:
            await evaluate_placements(session, ctx, touched)

    return after_batch


async def apply_event(session: AsyncSession, event: CloudEvent) -> uuid.UUID | None:
    """Store what the event says in the projection; returns the placement to re-evaluate
    (None when nothing changed)."""
    t = event.type
    placement_id: uuid.UUID
    if t in PLACEMENT_EVENTS:
        snapshot: PlacementSnapshot = event_data(event)
        if not await upsert_placement(session, placement_view, snapshot):
            return None  # an older version than the one on file: nothing changes
        placement_id = snapshot.placement_id
    elif t == SCHOOL_STARTED.type:
        started: SchoolStarted = event_data(event)
        stmt = pg_insert(SchoolAttendance).values(
            school_start_id=started.school_start_id, placement_id=started.placement_id, start_date=started.start_date
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[SchoolAttendance.school_start_id], set_={"start_date": stmt.excluded.start_date}
            )
        )
        placement_id = started.placement_id
    elif t == SCHOOL_ENDED.type:
        ended: SchoolEnded = event_data(event)
        stmt = pg_insert(SchoolAttendance).values(
            school_start_id=ended.school_start_id, placement_id=ended.placement_id, end_date=ended.end_date
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[SchoolAttendance.school_start_id], set_={"end_date": stmt.excluded.end_date}
            )
        )
        placement_id = ended.placement_id
    elif t == SCHOOL_PLAN_REGISTERED.type:
        plan: SchoolPlanRegistered = event_data(event)
        await session.execute(
            pg_insert(SchoolPlan)
            .values(plan_id=plan.plan_id, placement_id=plan.placement_id, drawn_up_on=plan.drawn_up_on)
            .on_conflict_do_nothing()
        )
        placement_id = plan.placement_id
    elif t in EXAM_EVENTS:
        exam: ExaminationEvent = event_data(event)
        completed = exam.date if exam.status.value == "completed" else None
        stmt = pg_insert(Examination).values(
            examination_id=exam.examination_id,
            placement_id=exam.placement_id,
            kind=exam.kind.value,
            status=exam.status.value,
            status_date=exam.date,
            completed_on=completed,
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Examination.examination_id],
                set_={
                    "status": stmt.excluded.status,
                    "status_date": stmt.excluded.status_date,
                    "completed_on": func.coalesce(Examination.completed_on, stmt.excluded.completed_on),
                },
            )
        )
        placement_id = exam.placement_id
    else:
        return None  # an event type notify has no rule for
    return placement_id


# --- evaluation ---------------------------------------------------------------------------------


async def evaluate_placements(session: AsyncSession, ctx: Context, placement_ids: Iterable[uuid.UUID]) -> None:
    """Re-assess every rule of these placements now, waiting for their due rows if a tick holds
    them. Rows are created and locked in (placement, rule) order, the same in every replica, so
    two consumers touching the same placements wait for each other instead of deadlocking."""
    ids = sorted(set(placement_ids))
    pv = placement_view.c
    # The due rows are created only for a placement on file (one statement, not a look-up and
    # an insert): facts that arrived before their placement wait for it, keyed by placement_id.
    rules = select(func.unnest(literal(list(RULE_NAMES), ARRAY(Text))).column_valued("rule")).subquery()
    await session.execute(
        pg_insert(AlertDue)
        .from_select(
            ["placement_id", "rule"],
            select(pv.placement_id, rules.c.rule)
            .select_from(placement_view.join(rules, true()))
            .where(pv.placement_id.in_(ids))
            .order_by(pv.placement_id, rules.c.rule),
        )
        .on_conflict_do_nothing()
    )
    locked = (
        await session.execute(
            select(AlertDue.placement_id, AlertDue.rule)
            .where(AlertDue.placement_id.in_(ids))
            .order_by(AlertDue.placement_id, AlertDue.rule)
            .with_for_update()
        )
    ).all()
    if not locked:
        return
    await _evaluate_pairs(session, ctx, [(row.placement_id, row.rule) for row in locked])


async def evaluate_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    *,
    batch_size: int = 500,
    after_commit: Callable[[], Any] | None = None,
) -> int:
    """One evaluation tick: assess the (placement, rule) pairs due now, in batches, each batch
    one transaction. Reads only due rows, through the partial index on due_at. Returns how many
    pairs were evaluated."""
    now = ctx.clock.now()
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            due = (
                await session.execute(
                    select(AlertDue.placement_id, AlertDue.rule)
                    .where(AlertDue.due_at.is_not(None), AlertDue.due_at <= now)
                    .order_by(AlertDue.due_at)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if due:
                await _evaluate_pairs(session, ctx, [(row.placement_id, row.rule) for row in due])
        if due and after_commit is not None and session.info.get("outbox_written"):
            after_commit()
        total += len(due)
        # Every evaluated row moves to a later day, so a short batch means nothing more is due.
        if len(due) < batch_size:
            return total


async def load_facts(session: AsyncSession, placement_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, r.Facts]:
    ids = list(set(placement_ids))
    facts: dict[uuid.UUID, r.Facts] = {}
    pv = placement_view.c
    for row in await session.execute(select(placement_view).where(pv.placement_id.in_(ids))):
        facts[row.placement_id] = r.Facts(
            r.Placement(
                placement_id=row.placement_id,
                child_id=row.child_id,
                district=row.district,
                form=row.form,
                start_date=row.start_date,
                end_date=row.end_date,
                school_change=row.school_change,
                child_birth_date=row.child_birth_date,
            )
        )
    if not facts:
        return facts
    ids = list(facts)
    # School attendances, plans and completed examinations in one round trip, not three: the
    # consumer runs this for every event.
    no_date, no_kind = null().cast(Date), null().cast(Text)
    rows: Result[Any] = await session.execute(
        union_all(
            select(
                literal("attendance").label("fact"),
                SchoolAttendance.placement_id,
                SchoolAttendance.start_date.label("first"),
                SchoolAttendance.end_date.label("second"),
                no_kind.label("kind"),
            ).where(SchoolAttendance.placement_id.in_(ids)),
            select(literal("plan"), SchoolPlan.placement_id, SchoolPlan.drawn_up_on, no_date, no_kind).where(
                SchoolPlan.placement_id.in_(ids)
            ),
            select(
                literal("exam"), Examination.placement_id, Examination.completed_on, no_date, Examination.kind
            ).where(Examination.placement_id.in_(ids), Examination.completed_on.is_not(None)),
        )
    )
    for row in rows:
        f = facts[row.placement_id]
        if row.fact == "attendance":
            f.attendances.append(r.Attendance(row.first, row.second))
        elif row.fact == "plan":
            f.plans.append(row.first)
        else:
            (f.health_exams if row.kind == "health" else f.dental_exams).append(row.first)
    return facts


async def _evaluate_pairs(session: AsyncSession, ctx: Context, pairs: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Assess locked (placement, rule) pairs, apply the transitions and set their next due time."""
    facts = await load_facts(session, (pid for pid, _ in pairs))
    alerts: dict[tuple[uuid.UUID, str], Alert] = {}
    placement_ids = list({pid for pid, _ in pairs})
    for alert in await session.scalars(
        select(Alert).where(Alert.placement_id.in_(placement_ids)).order_by(Alert.id).with_for_update()
    ):
        alerts[(alert.placement_id, alert.rule)] = alert
    now, today = ctx.clock.now(), ctx.today()
    updates: list[dict[str, Any]] = []
    for pid, rule in pairs:
        due_on: date | None = None
        if pid in facts and rule in RULE_NAMES:
            assessment = r.assess(rule, ctx.rules, facts[pid], today)
            # History rows and alert changes go out in one batched flush after the loop, not one per alert.
            with session.no_autoflush:
                due_on = await _apply(session, ctx, assessment, facts[pid], alerts.get((pid, rule)), now, today)
        updates.append(
            {
                "placement_id": pid,
                "rule": rule,
                "due_at": ctx.midnight(due_on) if due_on else None,
                "evaluated_at": now,
            }
        )
    await session.flush()
    if updates:
        await session.execute(update(AlertDue), updates)


def _days_until(ctx: Context, rule: str, clock_start: date, until: date) -> tuple[int, int]:
    counter = r.counter_for(ctx.rules.rule(rule))
    return max(0, (until - clock_start).days), counter.count(clock_start, until)


async def _apply(
    session: AsyncSession,
    ctx: Context,
    a: r.Assessment,
    facts: r.Facts,
    alert: Alert | None,
    now: datetime,
    today: date,
) -> date | None:
    """Turn an assessment into alert transitions; returns the next day to look again."""
    rules = ctx.rules
    if a.state in (r.State.inactive, r.State.met, r.State.pending):
        if alert is not None and alert.status in ACTIVE:
            if a.state == r.State.met and a.calendar_days is not None and a.counted_days is not None:
                calendar, counted = a.calendar_days, a.counted_days
            else:
                end = facts.placement.end_date
                until = min(today, end) if end is not None else today
                calendar, counted = _days_until(ctx, alert.rule, alert.clock_start, until)
            reason = a.reason or r.Reason.deadline_moved
            alert.status = AlertStatus.resolved.value
            alert.resolved_at = now
            alert.resolution_reason = reason.value
            alert.as_of, alert.calendar_days, alert.counted_days = today, calendar, counted
            await _record(session, alert, "resolved", now=now, today=today, reason=reason.value)
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
        await _record(session, alert, "resolved", now=now, today=today, reason=r.Reason.clock_restarted.value)
    if a.state == r.State.warning:
        if alert is None:
            alert = await _insert_alert(
                session, a, p, status="warning", level=None, level_name=None, now=now, today=today
            )
            if alert is not None:
                await _record(session, alert, "prewarned", now=now, today=today)
        elif alert.status == "resolved":
            _restart(alert, a, today, status="warning", level=None, level_name=None)
            alert.prewarned_at = now
            await _record(session, alert, "prewarned", now=now, today=today)
        return a.next_check

    # breach
    target = r.escalation_level(rules, a.deadline, today)
    target_name = rules.escalation[target].level
    if alert is None:
        alert = await _insert_alert(
            session, a, p, status="open", level=target, level_name=target_name, now=now, today=today
        )
        if alert is not None:
            await _record(session, alert, "opened", now=now, today=today)
    elif alert.status in ("warning", "resolved"):
        _restart(alert, a, today, status="open", level=target, level_name=target_name)
        alert.opened_at = now
        await _record(session, alert, "opened", now=now, today=today)
    elif alert.level is not None and target > alert.level and (alert.status == "open" or rules.escalate_acknowledged):
        # One event per step crossed, so every audience on the ladder hears of it in turn.
        for level in range(alert.level + 1, target + 1):
            alert.level, alert.level_name = level, rules.escalation[level].level
            alert.escalated_at = now
            alert.as_of, alert.calendar_days, alert.counted_days = today, a.calendar_days, a.counted_days
            await _record(session, alert, "escalated", now=now, today=today)
    level = alert.level if alert is not None and alert.level is not None else target
    climbing = alert is None or alert.status == "open" or rules.escalate_acknowledged
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
    if alert.status == "resolved":
        alert.acknowledged_at = alert.acknowledged_by = alert.acknowledgement_note = None
        alert.resolved_at = alert.resolution_reason = None
        alert.opened_at = alert.escalated_at = None
    alert.status, alert.level, alert.level_name = status, level, level_name
    alert.clock_start, alert.deadline = a.clock_start, a.deadline
    alert.as_of, alert.calendar_days, alert.counted_days = today, a.calendar_days, a.counted_days


async def _insert_alert(
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
        "prewarned_at": now if status == "warning" else None,
        "opened_at": now if status == "open" else None,
    }
    stmt = pg_insert(Alert).values(**values).on_conflict_do_nothing(constraint="uq_alert_rule_placement")
    inserted = await session.scalar(stmt.returning(Alert))
    if inserted is None:
        log.info("alert already raised by another writer", extra={"rule": a.rule, "placement_id": str(p.placement_id)})
    return inserted


async def _record(
    session: AsyncSession,
    alert: Alert,
    transition: str,
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
        rule=alert.rule,  # type: ignore[arg-type]
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
        acknowledged_by=alert.acknowledged_by if transition == "acknowledged" else None,
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


def webhook_destination_refusal(url: str, settings: Settings) -> str | None:
    """Why notify must not POST to this URL (settings.notify_webhook_*), or None."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    allowed = [h.lower() for h in settings.notify_webhook_allowed_hosts]
    if allowed:
        if any(host == h or (h.startswith(".") and host.endswith(h)) for h in allowed):
            return None
        return "host not in the allowed webhook hosts (OBRUTEN_NOTIFY_WEBHOOK_ALLOWED_HOSTS)"
    if settings.notify_webhook_allow_private:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return "must not point at this machine"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name; production narrows names with the allow-list
    if address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified:
        return "must not point at this machine or a private network"
    if address.is_multicast or address.is_reserved:
        return "not a unicast public address"
    return None


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


# --- alerts over HTTP ---------------------------------------------------------------------------


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
    if alert.status == "resolved":
        raise Problem(
            409,
            "alert-resolved",
            "Alert already resolved",
            f"The alert was resolved ({alert.resolution_reason}); there is nothing to acknowledge.",
        )
    if alert.status == "acknowledged":
        raise Problem(409, "alert-acknowledged", "Alert already acknowledged", "Someone has acknowledged it already.")
    if alert.status == "warning":
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
    alert.calendar_days, alert.counted_days = _days_until(ctx, alert.rule, alert.clock_start, today)
    await _record(session, alert, "acknowledged", now=now, today=today, actor=actor, note=note)
    return alert


# --- webhooks -----------------------------------------------------------------------------------


async def create_webhook(
    session: AsyncSession, *, url: str, secret: str, districts: list[str] | None, rules: list[str] | None, actor: str
) -> Webhook:
    hook = Webhook(id=uuid.uuid4(), url=url, secret=secret, districts=districts, rules=rules, created_by=actor)
    session.add(hook)
    await session.flush()
    return hook


async def list_webhooks(session: AsyncSession) -> Sequence[Webhook]:
    return (
        await session.scalars(select(Webhook).where(Webhook.deleted_at.is_(None)).order_by(Webhook.created_at))
    ).all()


async def get_webhook(session: AsyncSession, webhook_id: uuid.UUID) -> Webhook:
    hook = await session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.deleted_at.is_(None)))
    if hook is None:
        raise not_found("webhook")
    return hook


async def delete_webhook(session: AsyncSession, webhook_id: uuid.UUID, *, now: datetime) -> None:
    hook = await get_webhook(session, webhook_id)
    hook.deleted_at = now
    # Kept (soft-deleted) so its delivery log stays for audit; what was still pending is not sent.
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == "pending")
        .values(status="cancelled")
    )


async def list_deliveries(
    session: AsyncSession, webhook_id: uuid.UUID, *, status: str | None, limit: int, offset: int
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], int]:
    await get_webhook(session, webhook_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    deliveries = (
        await session.scalars(
            stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit).offset(offset)
        )
    ).all()
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries], int(total or 0)
