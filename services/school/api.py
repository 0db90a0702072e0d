"""HTTP routes of the school service. Thin: the rules live in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, status

from services.school import schemas, service
from shared.app import SettingsDep, v1_router
from shared.auth import Role, require_roles
from shared.clock import ClockDep
from shared.db import SessionDep
from shared.placement_view import PlacementClient

router = v1_router()

# The full access model (district scoping, protected fields) arrives with issue 7; until
# then these role gates keep the obviously wrong callers out.
_SCHOOL_ROLES = (
    Role.admin,
    Role.caseworker,
    Role.district_manager,
    Role.school_coordinator,
    Role.protected_teaching,
    Role.service,
)
WRITE = require_roles(*_SCHOOL_ROLES)
READ = require_roles(*_SCHOOL_ROLES)


def _placement_client(request: Request) -> PlacementClient:
    client: PlacementClient = request.app.state.placement_client
    return client


PlacementClientDep = Annotated[PlacementClient, Depends(_placement_client)]


@router.post(
    "/school-plans",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SchoolPlanOut,
    tags=["school plans"],
    dependencies=[WRITE],
)
async def create_plan(
    body: schemas.SchoolPlanCreate, session: SessionDep, client: PlacementClientDep, clock: ClockDep
) -> schemas.SchoolPlanOut:
    """Record a school plan (skolplanering) for a placement."""
    plan = await service.create_plan(session, body, client=client, clock=clock)
    return schemas.SchoolPlanOut.model_validate(plan)


@router.get("/school-plans/{plan_id}", response_model=schemas.SchoolPlanOut, tags=["school plans"], dependencies=[READ])
async def get_plan(plan_id: uuid.UUID, session: SessionDep) -> schemas.SchoolPlanOut:
    return schemas.SchoolPlanOut.model_validate(await service.get_plan(session, plan_id))


@router.post(
    "/school-starts",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SchoolStartOut,
    tags=["school starts"],
    dependencies=[WRITE],
)
async def create_start(
    body: schemas.SchoolStartCreate, session: SessionDep, client: PlacementClientDep, clock: ClockDep
) -> schemas.SchoolStartOut:
    """Record that the child started school (a school unit) or other teaching. Refused while
    an earlier start of the same placement has no school end."""
    start = await service.create_start(session, body, client=client, clock=clock)
    return schemas.SchoolStartOut.model_validate(start)


@router.get("/school-starts", response_model=schemas.SchoolStartPage, tags=["school starts"], dependencies=[READ])
async def list_starts(
    session: SessionDep,
    settings: SettingsDep,
    district: str | None = None,
    placement_id: uuid.UUID | None = None,
    open_: Annotated[
        bool | None, Query(alias="open", description="Only starts without (true) or with (false) an end.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> schemas.SchoolStartPage:
    if district is not None:
        service.check_district(settings, district, "query.district")
    stmt = service.list_starts_query(district=district, placement_id=placement_id, open_only=open_)
    items, total = await service.list_starts(session, stmt, limit=limit, offset=offset)
    return schemas.SchoolStartPage(
        items=[schemas.SchoolStartOut.model_validate(s) for s in items], total=total, limit=limit, offset=offset
    )


@router.get(
    "/school-starts/{start_id}", response_model=schemas.SchoolStartOut, tags=["school starts"], dependencies=[READ]
)
async def get_start(start_id: uuid.UUID, session: SessionDep) -> schemas.SchoolStartOut:
    return schemas.SchoolStartOut.model_validate(await service.get_start(session, start_id))


@router.post(
    "/school-ends",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SchoolEndOut,
    tags=["school ends"],
    dependencies=[WRITE],
)
async def create_end(
    body: schemas.SchoolEndCreate, session: SessionDep, client: PlacementClientDep, clock: ClockDep
) -> schemas.SchoolEndOut:
    """Record that the child stopped attending; where the child is schooled is open again."""
    end = await service.create_end(session, body, client=client, clock=clock)
    return schemas.SchoolEndOut.model_validate(end)


@router.get("/school-ends/{end_id}", response_model=schemas.SchoolEndOut, tags=["school ends"], dependencies=[READ])
async def get_end(end_id: uuid.UUID, session: SessionDep) -> schemas.SchoolEndOut:
    return schemas.SchoolEndOut.model_validate(await service.get_end(session, end_id))


@router.get(
    "/placements/{placement_id}/schooling", response_model=schemas.Schooling, tags=["schooling"], dependencies=[READ]
)
async def get_schooling(placement_id: uuid.UUID, session: SessionDep, client: PlacementClientDep) -> schemas.Schooling:
    """The school plans, starts and ends of one placement, oldest first."""
    plans, starts, ends = await service.schooling(session, placement_id, client=client)
    return schemas.Schooling(
        placement_id=placement_id,
        plans=[schemas.SchoolPlanOut.model_validate(p) for p in plans],
        starts=[schemas.SchoolStartOut.model_validate(s) for s in starts],
        ends=[schemas.SchoolEndOut.model_validate(e) for e in ends],
    )
