"""Evaluation of the due index: which (placement, rule) pairs to assess, the facts they are
assessed on, and the next due time of each.

Locking: every change to an alert of (placement, rule) happens while holding that pair's
alert_due row. A consumer batch's evaluation waits for it (FOR UPDATE, always in (placement,
rule) order); the tick skips rows another worker holds (SKIP LOCKED). The unique (rule,
placement) constraint is the backstop.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import ARRAY, Date, Text, func, literal, null, select, true, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.alerts.transitions import apply_assessment
from services.notify.context import Context
from services.notify.mail import queue as mail_queue
from services.notify.models import (
    Alert,
    AlertDue,
    Examination,
    SchoolAttendance,
    SchoolPlan,
    placement_view,
)
from services.notify.rules import assess as r
from shared.contracts.alerts import RULE_NAMES


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
    after_commit: Callable[[AsyncSession], Any] | None = None,
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
        if due and after_commit is not None:
            after_commit(session)
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
    session.info[mail_queue.RULES_KEY] = ctx.rules  # mail: the ladder's step names
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
                current = alerts.get((pid, rule))
                due_on = await apply_assessment(session, ctx, assessment, facts[pid], current, now, today)
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
