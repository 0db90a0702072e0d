"""Notify's projection: what the placement, school and health events say, stored in notify's own
tables, and the consumer hooks that re-evaluate the placements a batch touched.

A consumer batch is applied set-based (shared/bus/batch.py): one statement per table for the
whole batch, its rows first reduced to one per key as applying the events one by one in order
would leave it, so a duplicate or an out-of-order event changes nothing here either.

Functions take a session and never commit: the consumer's transaction (with its inbox row) holds
each effect together with its outbox and webhook delivery rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Table, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.context import Context
from services.notify.evaluation import evaluate_placements
from services.notify.mail import directory as mail_directory
from services.notify.models import (
    Examination,
    SchoolAttendance,
    SchoolPlan,
    placement_view,
)
from shared.bus.batch import BatchHandler, by_column, unnest
from shared.bus.inbox import event_data
from shared.bus.placement_copy import upsert_placements
from shared.contracts.envelope import CloudEvent
from shared.contracts.health import EXAM_BOOKED, EXAM_COMPLETED, EXAM_DECLINED, EXAM_MISSED, ExaminationEvent
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_ENDED, PLACEMENT_STARTED
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


async def project_batch(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """The consumer's handler: stores what a batch's events say (one statement per table) and
    notes their placements for the batch's evaluation (`make_after_batch`)."""
    touched = await apply_events(session, events)
    await mail_directory.record_caseworkers(session, events)  # mail: who the caseworker is
    if touched:
        session.info.setdefault(_TOUCHED, set()).update(touched)


# Called with one event it applies that one (shared/bus/batch.py): the savepoint path.
project = BatchHandler(project_batch)


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
            # Noting when notify learnt of them (what the settle period counts from) on the way.
            await evaluate_placements(session, ctx, touched, seen_at=ctx.clock.now())

    return after_batch


async def apply_event(session: AsyncSession, event: CloudEvent) -> uuid.UUID | None:
    """`apply_events` for one event: the placement to re-evaluate, or None when nothing changed."""
    touched = await apply_events(session, [event])
    return next(iter(touched), None)


async def apply_events(session: AsyncSession, events: Sequence[CloudEvent]) -> set[uuid.UUID]:
    """Store what the events say in the projection, one statement per table for them all, as
    applying them one by one in this order would leave it; returns the placements to re-evaluate
    (a placement event only when it brought a newer version)."""
    by_kind: dict[str, list[Any]] = {"placement": [], "attendance": [], "plan": [], "exam": []}
    touched: set[uuid.UUID] = set()
    for event in events:
        kind = _KINDS.get(event.type)
        if kind is None:
            continue  # an event type notify has no rule for
        data = event_data(event)
        by_kind[kind].append(data)
        if kind != "placement":
            touched.add(data.placement_id)
    touched |= await upsert_placements(session, placement_view, by_kind["placement"])
    await _store_attendances(session, by_kind["attendance"])
    await _store_plans(session, by_kind["plan"])
    await _store_examinations(session, by_kind["exam"])
    return touched


_KINDS = {
    **{t: "placement" for t in PLACEMENT_EVENTS},
    SCHOOL_STARTED.type: "attendance",
    SCHOOL_START_CHANGED.type: "attendance",
    SCHOOL_ENDED.type: "attendance",
    SCHOOL_PLAN_REGISTERED.type: "plan",
    **{t: "exam" for t in EXAM_EVENTS},
}


async def _store_attendances(session: AsyncSession, items: Sequence[SchoolStarted | SchoolEnded]) -> None:
    """School starts and ends: one attendance row per school start, its start date set by the
    last start (or correction, which carries the whole start as it stands now) and its end date
    by the last end; a date the batch does not speak of stays as it is on file."""
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for item in items:
        row = rows.setdefault(
            item.school_start_id,
            {"school_start_id": item.school_start_id, "placement_id": item.placement_id, "start_date": None,
             "end_date": None},
        )  # fmt: skip
        if isinstance(item, SchoolEnded):
            row["end_date"] = item.end_date
        else:
            row["start_date"] = item.start_date
    await _execute(session, _ATTENDANCES, list(rows.values()))


async def _store_plans(session: AsyncSession, items: Sequence[SchoolPlanRegistered]) -> None:
    rows = {
        p.plan_id: {"plan_id": p.plan_id, "placement_id": p.placement_id, "drawn_up_on": p.drawn_up_on} for p in items
    }
    await _execute(session, _PLANS, list(rows.values()))


async def _store_examinations(session: AsyncSession, items: Sequence[ExaminationEvent]) -> None:
    """The latest status of each examination; the day it took place kept once known."""
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for exam in items:
        completed = exam.date if exam.status.value == "completed" else None
        row = rows.get(exam.examination_id)
        if row is None:
            rows[exam.examination_id] = {
                "examination_id": exam.examination_id, "placement_id": exam.placement_id, "kind": exam.kind.value,
                "status": exam.status.value, "status_date": exam.date, "completed_on": completed,
            }  # fmt: skip
        else:
            row["status"], row["status_date"] = exam.status.value, exam.date
            row["completed_on"] = row["completed_on"] or completed
    await _execute(session, _EXAMINATIONS, list(rows.values()))


async def _execute(session: AsyncSession, statement: tuple[Any, list[str]], rows: list[dict[str, Any]]) -> None:
    if rows:
        stmt, columns = statement
        await session.execute(stmt, by_column(rows, columns))


def _upsert(
    model: Any, columns: list[str], merge: Callable[[Any, Any], dict[str, Any]] | None
) -> tuple[Any, list[str]]:
    """`INSERT … SELECT FROM unnest(…) ON CONFLICT (key)` for a batch's rows, built once, so that
    SQLAlchemy compiles it once. `merge(row on file, new row)`: the DO UPDATE assignments (None:
    DO NOTHING). On the table, not the mapped class: an ORM insert given rows is a bulk insert."""
    table = cast(Table, model.__table__)
    stmt = pg_insert(table).from_select(columns, unnest(table, columns))
    if merge is None:
        return stmt.on_conflict_do_nothing(), columns
    key = [c for c in table.primary_key.columns]
    return stmt.on_conflict_do_update(index_elements=key, set_=merge(table.c, stmt.excluded)), columns


_ATTENDANCES = _upsert(
    SchoolAttendance,
    ["school_start_id", "placement_id", "start_date", "end_date"],
    lambda old, new: {
        "start_date": func.coalesce(new.start_date, old.start_date),
        "end_date": func.coalesce(new.end_date, old.end_date),
    },
)
_PLANS = _upsert(SchoolPlan, ["plan_id", "placement_id", "drawn_up_on"], None)
_EXAMINATIONS = _upsert(
    Examination,
    ["examination_id", "placement_id", "kind", "status", "status_date", "completed_on"],
    lambda old, new: {
        "status": new.status,
        "status_date": new.status_date,
        "completed_on": func.coalesce(old.completed_on, new.completed_on),
    },
)
