"""HTTP routes of the school service. Thin: the rules live in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, status

from services.school import corrections, imports, schemas, service
from services.school.models import SchoolEnd, SchoolPlan, SchoolStart
from shared.kernel.clock import Clock, ClockDep
from shared.kernel.db import SessionDep
from shared.kernel.errors import check_district, not_found
from shared.web.app import SettingsDep
from shared.web.imports import ImportReport, Outcome, ndjson_body, read_lines, run_import
from shared.web.placement_client import PlacementClientDep
from shared.web.policy import Access, AccessDep, ProtectedField, v1_router
from shared.web.schemas import Limit, NameText, Offset

# Who may call what, and which rows and fields each caller sees: shared/web/policy.py.
router = v1_router()


async def _check(session: SessionDep, access: Access, record: SchoolPlan | SchoolStart | SchoolEnd, what: str) -> None:
    protected = record.placement_id in await service.protected_placements(session, {record.placement_id})
    access.check(record.district, not_found(what), protected=protected, record_id=record.id)


async def _plans_out(session: SessionDep, access: Access, plans: list[SchoolPlan]) -> list[schemas.SchoolPlanOut]:
    """A protected child's planned school unit is null unless the policy grants it."""
    protected = await service.protected_placements(session, {p.placement_id for p in plans})
    out = []
    for plan in plans:
        item = schemas.SchoolPlanOut.model_validate(plan)
        if plan.placement_id in protected and not access.sees(ProtectedField.school_unit):
            item.planned_school_unit_code = None
        out.append(item)
    return out


async def _starts_out(
    session: SessionDep, access: Access, starts: list[SchoolStart], clock: Clock
) -> list[schemas.SchoolStartOut]:
    """A protected child's school unit is null unless the policy grants it."""
    protected = await service.protected_placements(session, {s.placement_id for s in starts})
    out = []
    for start in starts:
        item = schemas.SchoolStartOut.model_validate(start)
        item.planned = start.start_date > clock.today()
        if start.placement_id in protected and not access.sees(ProtectedField.school_unit):
            item.school_unit_code = None
        out.append(item)
    return out


@router.post(
    "/school-plans",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SchoolPlanOut,
    tags=["school plans"],
)
async def create_plan(
    body: schemas.SchoolPlanCreate, session: SessionDep, client: PlacementClientDep, clock: ClockDep, access: AccessDep
) -> schemas.SchoolPlanOut:
    """Record a school plan (skolplanering) for a placement."""
    plan = await service.create_plan(session, body, client=client, clock=clock, access=access)
    access.resource_id = str(plan.id)
    [out] = await _plans_out(session, access, [plan])
    return out


@router.get("/school-plans/{plan_id}", response_model=schemas.SchoolPlanOut, tags=["school plans"])
async def get_plan(plan_id: uuid.UUID, session: SessionDep, access: AccessDep) -> schemas.SchoolPlanOut:
    plan = await service.get_plan(session, plan_id)
    await _check(session, access, plan, "school plan")
    [out] = await _plans_out(session, access, [plan])
    return out


@router.post(
    "/school-starts",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SchoolStartOut,
    tags=["school starts"],
)
async def create_start(
    body: schemas.SchoolStartCreate,
    session: SessionDep,
    client: PlacementClientDep,
    settings: SettingsDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.SchoolStartOut:
    """Record that the child started school (a school unit) or other teaching, or will start on a
    day at most OBRUTEN_SCHOOL_MAX_PLANNED_DAYS (default 30) ahead (a planned start, `planned:
    true`; it counts from its day unless withdrawn before). Refused while an earlier start of the
    same placement has no school end."""
    start = await service.create_start(
        session, body, client=client, settings=settings, clock=clock, access=access, deferred=True
    )
    access.resource_id = str(start.id)
    [out] = await _starts_out(session, access, [start], clock)
    return out


@router.patch("/school-starts/{start_id}", response_model=schemas.SchoolStartOut, tags=["school starts"])
async def correct_start(
    start_id: uuid.UUID,
    body: schemas.SchoolStartUpdate,
    session: SessionDep,
    client: PlacementClientDep,
    settings: SettingsDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.SchoolStartOut:
    """Correct a school start's date; `days_to_school_start` is recomputed. A date that contradicts
    what is recorded (before the placement began, on or after it ended, before the previous
    schooling ended, after this schooling ended) is a 409 naming `body.start_date`."""
    start = await service.get_start(session, start_id)
    await _check(session, access, start, "school start")
    corrected = await corrections.correct_start(
        session, start, body, client=client, settings=settings, clock=clock, access=access
    )
    [out] = await _starts_out(session, access, [corrected], clock)
    return out


@router.post("/school-starts/{start_id}/withdraw", status_code=status.HTTP_204_NO_CONTENT, tags=["school starts"])
async def withdraw_start(
    start_id: uuid.UUID, session: SessionDep, client: PlacementClientDep, clock: ClockDep, access: AccessDep
) -> None:
    """Withdraw a planned start before its day (409 once its day has come)."""
    start = await service.get_start(session, start_id)
    await _check(session, access, start, "school start")
    await corrections.withdraw_start(session, start, client=client, clock=clock, access=access)


@router.get("/school-starts", response_model=schemas.SchoolStartPage, tags=["school starts"])
async def list_starts(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    access: AccessDep,
    district: Annotated[NameText | None, Query()] = None,
    placement_id: uuid.UUID | None = None,
    open_: Annotated[
        bool | None, Query(alias="open", description="Only starts without (true) or with (false) an end.")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.SchoolStartPage:
    if district is not None:
        check_district(settings.districts, district, "query.district")
    stmt = service.list_starts_query(district=district, placement_id=placement_id, open_only=open_).where(
        access.list_filter(district, SchoolStart.district, service.protected_placement(SchoolStart.placement_id))
    )
    items, total = await service.list_starts(session, stmt, limit=limit, offset=offset)
    return schemas.SchoolStartPage(
        items=await _starts_out(session, access, items, clock), total=total, limit=limit, offset=offset
    )


@router.get("/school-starts/{start_id}", response_model=schemas.SchoolStartOut, tags=["school starts"])
async def get_start(
    start_id: uuid.UUID, session: SessionDep, clock: ClockDep, access: AccessDep
) -> schemas.SchoolStartOut:
    start = await service.get_start(session, start_id)
    await _check(session, access, start, "school start")
    [out] = await _starts_out(session, access, [start], clock)
    return out


@router.post(
    "/school-ends",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SchoolEndOut,
    tags=["school ends"],
)
async def create_end(
    body: schemas.SchoolEndCreate, session: SessionDep, client: PlacementClientDep, clock: ClockDep, access: AccessDep
) -> schemas.SchoolEndOut:
    """Record that the child stopped attending; where the child is schooled is open again."""
    end = await service.create_end(session, body, client=client, clock=clock, access=access)
    access.resource_id = str(end.id)
    return schemas.SchoolEndOut.model_validate(end)


@router.get("/school-ends/{end_id}", response_model=schemas.SchoolEndOut, tags=["school ends"])
async def get_end(end_id: uuid.UUID, session: SessionDep, access: AccessDep) -> schemas.SchoolEndOut:
    end = await service.get_end(session, end_id)
    await _check(session, access, end, "school end")
    return schemas.SchoolEndOut.model_validate(end)


@router.get("/placements/{placement_id}/schooling", response_model=schemas.Schooling, tags=["schooling"])
async def get_schooling(
    placement_id: uuid.UUID, session: SessionDep, client: PlacementClientDep, clock: ClockDep, access: AccessDep
) -> schemas.Schooling:
    """The school plans, starts and ends of one placement, oldest first."""
    plans, starts, ends = await service.schooling(session, placement_id, client=client, access=access)
    return schemas.Schooling(
        placement_id=placement_id,
        plans=await _plans_out(session, access, list(plans)),
        starts=await _starts_out(session, access, list(starts), clock),
        ends=[schemas.SchoolEndOut.model_validate(e) for e in ends],
    )


@router.post(
    "/imports",
    response_model=ImportReport,
    tags=["imports"],
    openapi_extra=ndjson_body(imports.SchoolImportLine),
)
async def import_school_records(
    request: Request,
    session: SessionDep,
    client: PlacementClientDep,
    settings: SettingsDep,
    clock: ClockDep,
    access: AccessDep,
) -> ImportReport:
    """Bulk import (application/x-ndjson): one school plan, start or end per line (`record`), with the
    fields of its create endpoint, the case system's `external_id`, and its placement by `placement_id`
    or by `placement_external_id` (the external_id the placement was imported with). Lines apply in
    order; each is all-or-nothing and reported as created, unchanged (re-sending a file changes
    nothing) or refused (field and reason). Imports have their own rate limit."""
    lines = await read_lines(request)

    async def apply(line: imports.SchoolImportLine) -> Outcome:
        return await imports.import_school_record(
            session, line, client=client, settings=settings, clock=clock, access=access
        )

    return await run_import(session, lines, imports.SchoolImportLine, apply)
