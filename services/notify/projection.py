"""Notify's projection: what the placement, school and health events say, stored in notify's own
tables, and the consumer hooks that re-evaluate the placements a batch touched.

Functions take a session and never commit: the consumer's transaction (with its inbox row) holds
each effect together with its outbox and webhook delivery rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import DateTime, case, func, literal, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.context import Context
from services.notify.evaluation import evaluate_placements
from services.notify.mail import directory as mail_directory
from services.notify.models import (
    Examination,
    PlacementArrival,
    SchoolAttendance,
    SchoolPlan,
    placement_view,
)
from shared.bus.inbox import event_data
from shared.bus.placement_copy import upsert_placement
from shared.contracts.envelope import CloudEvent
from shared.contracts.health import EXAM_BOOKED, EXAM_COMPLETED, EXAM_DECLINED, EXAM_MISSED, ExaminationEvent
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_ENDED, PLACEMENT_STARTED, PlacementSnapshot
from shared.contracts.school import (
    SCHOOL_ENDED,
    SCHOOL_PLAN_REGISTERED,
    SCHOOL_START_CHANGED,
    SCHOOL_STARTED,
    SchoolEnded,
    SchoolPlanRegistered,
    SchoolStarted,
)

PLACEMENT_EVENTS = {PLACEMENT_STARTED.type, PLACEMENT_CHANGED.type, PLACEMENT_ENDED.type}


EXAM_EVENTS = {EXAM_BOOKED.type, EXAM_COMPLETED.type, EXAM_DECLINED.type, EXAM_MISSED.type}


# The placements a consumer batch touched, kept in its session until the batch is evaluated.
_TOUCHED = "notify_touched"


async def project(session: AsyncSession, event: CloudEvent) -> None:
    """The consumer's handler: stores what an event says and notes its placement for the
    batch's evaluation (`make_after_batch`)."""
    placement_id = await apply_event(session, event)
    await mail_directory.record_caseworker(session, event)  # mail: who the caseworker is
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
            await note_arrivals(session, ctx, touched)
            await evaluate_placements(session, ctx, touched)

    return after_batch


async def note_arrivals(session: AsyncSession, ctx: Context, placement_ids: set[uuid.UUID]) -> None:
    """When notify first learnt of each placement on file, and of its end, on notify's clock:
    what the settle period counts from (services/notify/facts.py)."""
    pv = placement_view.c
    now = literal(ctx.clock.now(), DateTime(timezone=True))
    ended = case((pv.end_date.is_not(None), now), else_=null())
    stmt = pg_insert(PlacementArrival).from_select(
        ["placement_id", "first_seen_at", "ended_seen_at"],
        select(pv.placement_id, now, ended).where(pv.placement_id.in_(sorted(placement_ids))),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[PlacementArrival.placement_id],
            set_={"ended_seen_at": func.coalesce(PlacementArrival.ended_seen_at, stmt.excluded.ended_seen_at)},
        )
    )


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
    elif t in (SCHOOL_STARTED.type, SCHOOL_START_CHANGED.type):
        # A correction carries the whole start as it stands now: its date replaces the one on file.
        started: SchoolStarted = event_data(event)
        await _store_attendance(session, started.school_start_id, started.placement_id, start_date=started.start_date)
        placement_id = started.placement_id
    elif t == SCHOOL_ENDED.type:
        ended: SchoolEnded = event_data(event)
        await _store_attendance(session, ended.school_start_id, ended.placement_id, end_date=ended.end_date)
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


async def _store_attendance(
    session: AsyncSession, school_start_id: uuid.UUID, placement_id: uuid.UUID, **dates: date | None
) -> None:
    """A school start or end: the one attendance row of that start, its start or end date set."""
    stmt = pg_insert(SchoolAttendance).values(school_start_id=school_start_id, placement_id=placement_id, **dates)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[SchoolAttendance.school_start_id], set_={k: stmt.excluded[k] for k in dates}
        )
    )
