"""What evaluation is given: every placement of the children concerned, grouped into each child's
runs of unbroken time in care, with the school, plan and examination facts of each placement and
the holds of the settle period.

A run: the child's placements by start date, a new one continuing the run when it starts no later
than `moves.continuation_gap_days` after the run's last end (a move starts it on the end day). The
latest placement of a run is its head: the one whose alerts are assessed, on the facts of the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Text, Uuid, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.context import Context
from services.notify.models import Examination, PlacementArrival, SchoolAttendance, SchoolPlan, placement_view
from services.notify.rules import assess as r
from shared.bus.batch import any_param


@dataclass(frozen=True)
class Hold:
    """Until when the settle period holds a run: new alerts (`new_until`) and the resolution of
    its alerts by the end of its head (`end_until`); None: not held."""

    new_until: datetime | None = None
    end_until: datetime | None = None


@dataclass
class Loaded:
    facts: dict[uuid.UUID, r.Facts] = field(default_factory=dict)  # every placement loaded
    head_of: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)  # by head

    def hold(self, head: uuid.UUID, now: datetime) -> Hold:
        h = self.holds.get(head, Hold())
        return Hold(
            h.new_until if h.new_until and h.new_until > now else None,
            h.end_until if h.end_until and h.end_until > now else None,
        )


def children_of_param(name: str) -> Any:
    """Every placement of the children of the placements given as the array parameter `name`
    (a subquery of placement ids, for a statement built once)."""
    pv = placement_view.c
    return select(pv.placement_id).where(pv.child_id.in_(select(pv.child_id).where(any_param(pv.placement_id, name))))


async def load_facts(session: AsyncSession, ctx: Context, placement_ids: Iterable[uuid.UUID]) -> Loaded:
    """Every placement of the children of these placements with its school attendances, plans
    and completed examinations, in one round trip (the consumer runs this for every batch)."""
    loaded = Loaded()
    seen: dict[uuid.UUID, tuple[datetime | None, datetime | None]] = {}
    records: list[Any] = []
    for row in await session.execute(_FACTS, {"ids": list(dict.fromkeys(placement_ids))}):
        if row.fact != "placement":
            records.append(row)
            continue
        loaded.facts[row.placement_id] = r.Facts(
            r.Placement(
                placement_id=row.placement_id,
                child_id=row.child_id,
                district=row.district,
                form=row.form,
                start_date=row.first,
                end_date=row.second,
                school_change=row.school_change,
                child_birth_date=row.child_birth_date,
            )
        )
        seen[row.placement_id] = (row.first_seen_at, row.ended_seen_at)
    for row in records:
        f = loaded.facts[row.placement_id]
        if row.fact == "attendance":
            f.attendances.append(r.Attendance(row.first, row.second))
        elif row.fact == "plan":
            f.plans.append(row.first)
        else:
            (f.health_exams if row.kind == "health" else f.dental_exams).append(row.first)
    if loaded.facts:
        _group_runs(ctx, loaded, seen)
    return loaded


def _facts() -> Any:
    """The placements (fact "placement", their dates as first and second) and the records of
    each (attendance, plan, exam: its dates as first and second) as one result, so that one
    snapshot answers for all of them; what a kind of row lacks is null."""
    pv = placement_view.c
    ids = children_of_param("ids")
    no_id, no_date, no_text = null().cast(Uuid), null().cast(Date), null().cast(Text)
    no_flag, no_time = null().cast(Boolean), null().cast(DateTime(timezone=True))
    placements = (
        select(
            literal("placement").label("fact"), pv.placement_id, pv.child_id, pv.district, pv.form,
            pv.start_date.label("first"), pv.end_date.label("second"), pv.school_change, pv.child_birth_date,
            PlacementArrival.first_seen_at, PlacementArrival.ended_seen_at, no_text.label("kind"),
        )
        .outerjoin(PlacementArrival, PlacementArrival.placement_id == pv.placement_id)
        .where(pv.placement_id.in_(ids))
    )  # fmt: skip

    def record(fact: str, placement_id: Any, first: Any, second: Any, kind: Any) -> Any:
        return select(
            literal(fact), placement_id, no_id, no_text, no_text, first, second, no_flag, no_date, no_time, no_time,
            kind,
        ).where(placement_id.in_(ids))  # fmt: skip

    sa, plan, exam = SchoolAttendance, SchoolPlan, Examination
    return union_all(
        placements,
        record("attendance", sa.placement_id, sa.start_date, sa.end_date, no_text),
        record("plan", plan.placement_id, plan.drawn_up_on, no_date, no_text),
        record("exam", exam.placement_id, exam.completed_on, no_date, exam.kind).where(exam.completed_on.is_not(None)),
    )


# Built once: the same statement object is a cache hit for SQLAlchemy's compiler, where building
# it for each batch cost more than running it.
_FACTS = _facts()


def runs_of(placements: list[r.Facts], gap_days: int) -> list[list[r.Facts]]:
    """One child's placements split into runs of unbroken time in care, each oldest first."""
    runs: list[list[r.Facts]] = []
    run_end: date | None = None
    open_run = False
    for f in sorted(placements, key=lambda f: (f.placement.start_date, str(f.placement.placement_id))):
        p = f.placement
        continues = runs and (open_run or (run_end is not None and p.start_date <= run_end + timedelta(gap_days)))
        if not continues:
            runs.append([])
            run_end, open_run = None, False
        runs[-1].append(f)
        if p.end_date is None:
            open_run = True
        else:
            run_end = p.end_date if run_end is None else max(run_end, p.end_date)
    return runs


def _group_runs(ctx: Context, loaded: Loaded, seen: dict[uuid.UUID, tuple[datetime | None, datetime | None]]) -> None:
    by_child: dict[Any, list[r.Facts]] = {}
    for f in loaded.facts.values():
        by_child.setdefault(f.placement.child_id, []).append(f)
    gap = ctx.rules.moves.continuation_gap_days
    for placements in by_child.values():
        runs = runs_of(placements, gap)
        for run in runs:
            head = run[-1]
            head.earlier = run[:-1]
            others = [f for other in runs if other is not run for f in other]
            head.other_health_exams = [d for f in others for d in f.health_exams]
            head.other_dental_exams = [d for f in others for d in f.dental_exams]
            for f in run:
                loaded.head_of[f.placement.placement_id] = head.placement.placement_id
            loaded.holds[head.placement.placement_id] = _hold(ctx, run, seen, gap)


def _hold(
    ctx: Context, run: list[r.Facts], seen: dict[uuid.UUID, tuple[datetime | None, datetime | None]], gap: int
) -> Hold:
    firsts = [seen[f.placement.placement_id][0] for f in run]
    new_until = max((t + ctx.settle for t in firsts if t is not None), default=None)
    head = run[-1].placement
    ended_seen = seen[head.placement_id][1]
    end_until = None
    if head.end_date is not None and ended_seen is not None:
        # A continuation may still be entered: within the settle period, or up to the last day
        # on which a placement would continue the run.
        end_until = max(ended_seen + ctx.settle, ctx.midnight(head.end_date + timedelta(gap)))
    return Hold(new_until, end_until)
