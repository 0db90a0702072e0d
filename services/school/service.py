"""School rules: what may be recorded about a placed child's schooling, and the events it
announces.

Functions take the request's session and never commit: the caller's transaction holds the
record and its outbox row together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.school import schemas
from services.school.models import SchoolEnd, SchoolPlan, SchoolStart, outbox, placement_view
from services.school.starts import not_too_far_ahead, started
from shared.bus.placement_copy import (
    PlacementClient,
    get_placement_view,
    is_protected,
    placement_for_write,
    placement_not_found,
    require_placement,
    upsert_placement,
)
from shared.contracts.school import (
    SCHOOL_ENDED,
    SCHOOL_PLAN_REGISTERED,
    SCHOOL_STARTED,
    Provision,
    SchoolEnded,
    SchoolPlanRegistered,
)
from shared.contracts.vocabulary import PlacementForm
from shared.kernel.clock import Clock
from shared.kernel.errors import Problem, invalid, not_found
from shared.kernel.settings import Settings
from shared.kernel.writes import defer_new
from shared.web.policy import Access

# The provenance of a record typed in through the API; the SS 12000 intake's are `ss12000:<source>`.
CASEWORKER = "caseworker"


def protected_placement(placement_id: InstrumentedAttribute[uuid.UUID]) -> ColumnElement[bool]:
    """SQL: the placement of a school record is protected (as `is_protected`)."""
    return exists().where(
        placement_view.c.placement_id == placement_id,
        or_(placement_view.c.protected_identity, placement_view.c.form == PlacementForm.skyddat_boende.value),
    )


async def protected_placements(session: AsyncSession, placement_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these placements are protected; one not (yet) known here counts as protected,
    so that a school unit is withheld rather than shown when in doubt."""
    if not placement_ids:
        return set()
    rows = (
        await session.execute(select(placement_view).where(placement_view.c.placement_id.in_(placement_ids)))
    ).mappings()
    open_ = {r["placement_id"] for r in rows if not is_protected(r)}
    return placement_ids - open_


async def confirmed_protected(session: AsyncSession, client: PlacementClient, placement: RowMapping) -> bool:
    """Whether the child is protected, as the placement service says now (fail closed).

    The local copy can lag behind a protection just set (consumer lag, a broker outage), so it
    alone can only say "protected". Before an event would carry a school unit, the placement
    service is asked; its answer refreshes the copy. No answer counts as protected.
    """
    if is_protected(placement):
        return True
    try:
        snapshot = await client.fetch(placement["placement_id"])
    except Problem:
        return True
    if snapshot is None:
        return True
    await upsert_placement(session, placement_view, snapshot)
    fresh = await get_placement_view(session, placement_view, placement["placement_id"])
    return fresh is None or is_protected(fresh)


async def check_placement(
    session: AsyncSession, access: Access, placement_id: uuid.UUID, district: str, *, field: str
) -> None:
    """404, as for an unknown placement, unless its records are among the caller's rows."""
    protected = placement_id in await protected_placements(session, {placement_id})
    access.check(district, placement_not_found(field), protected=protected)


def _not_in_future(value: date, *, clock: Clock, field: str) -> None:
    if value > clock.today():
        raise invalid(field, "in the future; record it when it has happened")


async def create_plan(
    session: AsyncSession,
    body: schemas.SchoolPlanCreate,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
    external_id: str | None = None,
) -> SchoolPlan:
    placement = await placement_for_write(session, placement_view, client, body.placement_id, access)
    _not_in_future(body.drawn_up_on, clock=clock, field="body.drawn_up_on")
    end = placement["end_date"]
    if end is not None and body.drawn_up_on >= end:
        raise invalid("body.drawn_up_on", f"on or after the placement ended ({end})")
    planned = body.planned_provision
    if body.planned_school_unit_code is not None:
        if planned not in (None, Provision.school_unit):
            raise invalid(
                "body.planned_school_unit_code", f"a school unit code cannot go with planned_provision {planned}"
            )
        planned = Provision.school_unit
    plan = SchoolPlan(
        id=uuid.uuid4(),
        placement_id=placement["placement_id"],
        child_id=placement["child_id"],
        district=placement["district"],
        drawn_up_on=body.drawn_up_on,
        planned_provision=planned.value if planned else None,
        planned_school_unit_code=body.planned_school_unit_code,
        responsible=body.responsible,
        external_id=external_id,
    )
    session.add(plan)
    await session.flush()
    await outbox.add(
        session,
        SCHOOL_PLAN_REGISTERED,
        subject=str(plan.child_id),
        data=SchoolPlanRegistered(
            plan_id=plan.id,
            placement_id=plan.placement_id,
            child_id=plan.child_id,
            district=plan.district,
            drawn_up_on=plan.drawn_up_on,
            planned_provision=planned,
        ),
        time=clock.now(),
    )
    return plan


def _what_started(body: schemas.SchoolStartCreate) -> tuple[Provision, str | None]:
    if body.school_unit_code is not None and body.provision is not None:
        raise invalid("body.provision", "give either school_unit_code or provision, not both")
    if body.school_unit_code is not None:
        return Provision.school_unit, body.school_unit_code
    if body.provision is None:
        raise invalid("body.provision", "give school_unit_code (a school unit) or provision (what else started)")
    return Provision(body.provision.value), None


def attended() -> ColumnElement[bool]:
    """SQL: the start was attended. A start ended on its own first day was withdrawn (a
    caseworker's correction, or an enrolment the school cancelled): the child never attended it,
    so it neither blocks an earlier start nor counts as the first one."""
    return or_(SchoolStart.end_date.is_(None), SchoolStart.end_date > SchoolStart.start_date)


async def _open_start(session: AsyncSession, placement_id: uuid.UUID) -> SchoolStart | None:
    return await session.scalar(
        select(SchoolStart).where(SchoolStart.placement_id == placement_id, SchoolStart.end_date.is_(None))
    )


async def _check_start_date(
    session: AsyncSession,
    body: schemas.SchoolStartCreate,
    placement: RowMapping,
    *,
    settings: Settings | None,
    clock: Clock,
) -> None:
    """Within the placement, at most the planning horizon ahead, not while another start is
    open, not before the previous schooling ended."""
    placement_start: date = placement["start_date"]
    placement_end: date | None = placement["end_date"]
    if body.start_date < placement_start:
        raise invalid("body.start_date", f"before the placement began ({placement_start})")
    not_too_far_ahead(body.start_date, settings=settings, clock=clock, field="body.start_date")
    if placement_end is not None and body.start_date >= placement_end:
        raise invalid("body.start_date", f"on or after the placement ended ({placement_end})")
    current = await _open_start(session, body.placement_id)
    if current is not None:
        raise Problem(
            409,
            "school-start-open",
            "School start already recorded",
            f"The child has attended since {current.start_date}; record a school end (POST /v1/school-ends) first.",
            field="body.placement_id",
            open_school_start_id=str(current.id),
        )
    last_end = await session.scalar(
        select(func.max(SchoolStart.end_date)).where(SchoolStart.placement_id == body.placement_id, attended())
    )
    if last_end is not None and body.start_date < last_end:
        raise invalid(
            "body.start_date", f"before the previous schooling ended ({last_end})", status=409, type="school-overlap"
        )


async def _flush_start(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _start_overlap() from exc


async def _start_refused(session: AsyncSession, exc: DBAPIError) -> BaseException | None:
    return _start_overlap() if isinstance(exc, IntegrityError) else None


def _start_overlap() -> Problem:
    # Only reachable if a writer bypassed the placement lock; the constraint still holds.
    return Problem(
        409,
        "school-start-open",
        "School start already recorded",
        "Another school start overlaps this one.",
        field="body.start_date",
    )


async def create_start(
    session: AsyncSession,
    body: schemas.SchoolStartCreate,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
    settings: Settings | None = None,
    provenance: str = CASEWORKER,
    external_id: str | None = None,
    deferred: bool = False,
) -> SchoolStart:
    placement = await placement_for_write(session, placement_view, client, body.placement_id, access)
    provision, code = _what_started(body)
    await _check_start_date(session, body, placement, settings=settings, clock=clock)
    placement_start: date = placement["start_date"]
    school_change = bool(placement["school_change"])
    start = SchoolStart(
        id=uuid.uuid4(),
        placement_id=placement["placement_id"],
        child_id=placement["child_id"],
        district=placement["district"],
        start_date=body.start_date,
        provision=provision.value,
        school_unit_code=code,
        placement_start_date=placement_start,
        school_change=school_change,
        days_to_school_start=(body.start_date - placement_start).days if school_change else None,
        provenance=provenance,
        external_id=external_id,
    )
    if deferred:  # the start, its event and the audit row in one statement (shared/kernel/writes.py)
        defer_new(session, start, _start_refused)
    else:
        session.add(start)
        await _flush_start(session)
    # Only the teaching team may know where a protected child goes to school: the event names
    # the school unit only when the placement service has just confirmed the child unprotected.
    publishable = code is not None and not await confirmed_protected(session, client, placement)
    data = started(start, clock.today(), publishable=publishable)
    if deferred:
        outbox.add_deferred(session, SCHOOL_STARTED, subject=str(start.child_id), data=data, time=clock.now())
    else:
        await outbox.add(session, SCHOOL_STARTED, subject=str(start.child_id), data=data, time=clock.now())
    return start


async def create_end(
    session: AsyncSession,
    body: schemas.SchoolEndCreate,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
    provenance: str = CASEWORKER,
    external_id: str | None = None,
) -> SchoolEnd:
    await placement_for_write(session, placement_view, client, body.placement_id, access)
    start = await _open_start(session, body.placement_id)
    if start is None:
        raise Problem(
            409,
            "no-open-school-start",
            "No school start to end",
            "No school start without an end is recorded for this placement.",
            field="body.placement_id",
        )
    if body.end_date < start.start_date:
        raise invalid("body.end_date", f"before the school start it ends ({start.start_date})")
    _not_in_future(body.end_date, clock=clock, field="body.end_date")
    start.end_date = body.end_date
    end = SchoolEnd(
        id=uuid.uuid4(),
        school_start_id=start.id,
        placement_id=start.placement_id,
        child_id=start.child_id,
        district=start.district,
        end_date=body.end_date,
        reason=body.reason.value,
        provenance=provenance,
        external_id=external_id,
    )
    session.add(end)
    await session.flush()
    await outbox.add(
        session,
        SCHOOL_ENDED,
        subject=str(end.child_id),
        data=SchoolEnded(
            school_start_id=start.id,
            placement_id=end.placement_id,
            child_id=end.child_id,
            district=end.district,
            end_date=end.end_date,
            reason=body.reason,
        ),
        time=clock.now(),
    )
    return end


async def get_plan(session: AsyncSession, plan_id: uuid.UUID) -> SchoolPlan:
    plan = await session.get(SchoolPlan, plan_id)
    if plan is None:
        raise not_found("school plan")
    return plan


async def get_start(session: AsyncSession, start_id: uuid.UUID) -> SchoolStart:
    start = await session.get(SchoolStart, start_id)
    if start is None:
        raise not_found("school start")
    return start


async def get_end(session: AsyncSession, end_id: uuid.UUID) -> SchoolEnd:
    end = await session.get(SchoolEnd, end_id)
    if end is None:
        raise not_found("school end")
    return end


async def schooling(
    session: AsyncSession, placement_id: uuid.UUID, *, client: PlacementClient, access: Access
) -> tuple[Sequence[SchoolPlan], Sequence[SchoolStart], Sequence[SchoolEnd]]:
    row = await require_placement(session, placement_view, client, placement_id, field="path.placement_id")
    access.check(row["district"], placement_not_found("path.placement_id"), protected=is_protected(row))
    plans = await session.scalars(
        select(SchoolPlan)
        .where(SchoolPlan.placement_id == placement_id)
        .order_by(SchoolPlan.drawn_up_on, SchoolPlan.created_at)
    )
    starts = await session.scalars(
        select(SchoolStart).where(SchoolStart.placement_id == placement_id).order_by(SchoolStart.start_date)
    )
    ends = await session.scalars(
        select(SchoolEnd).where(SchoolEnd.placement_id == placement_id).order_by(SchoolEnd.end_date)
    )
    return plans.all(), starts.all(), ends.all()


def list_starts_query(
    *, district: str | None, placement_id: uuid.UUID | None, open_only: bool | None
) -> Select[SchoolStart]:
    stmt = select(SchoolStart)
    if district is not None:
        stmt = stmt.where(SchoolStart.district == district)
    if placement_id is not None:
        stmt = stmt.where(SchoolStart.placement_id == placement_id)
    if open_only is True:
        stmt = stmt.where(SchoolStart.end_date.is_(None))
    elif open_only is False:
        stmt = stmt.where(SchoolStart.end_date.is_not(None))
    return stmt


async def list_starts(
    session: AsyncSession, stmt: Select[SchoolStart], *, limit: int, offset: int
) -> tuple[list[SchoolStart], int]:
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await session.scalars(
        stmt.order_by(SchoolStart.start_date.desc(), SchoolStart.id).limit(limit).offset(offset)
    )
    return list(rows.all()), int(total or 0)
