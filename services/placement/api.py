"""HTTP routes of the placement service. Thin: the rules live in service.py."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import Query, status

from services.placement import schemas, service
from services.placement.events import PlacementSnapshot
from shared.app import SettingsDep, v1_router
from shared.auth import PrincipalDep, Role, require_roles
from shared.clock import ClockDep
from shared.db import SessionDep
from shared.errors import invalid
from shared.schemas import Limit, Offset
from shared.vocabulary import PlacementForm

router = v1_router()

# The full access model (district scoping, protected fields) arrives with issue 7; until
# then these role gates keep the obviously wrong callers out.
WRITE = require_roles(Role.admin, Role.caseworker, Role.district_manager, Role.service)
READ = require_roles(Role.admin, Role.caseworker, Role.district_manager, Role.service)


@router.post(
    "/children",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ChildOut,
    tags=["children"],
    dependencies=[WRITE],
)
async def create_child(
    body: schemas.ChildCreate, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> schemas.ChildOut:
    """Register a child. The answer's `id` is the pseudonymous id used everywhere else."""
    child = await service.create_child(session, body, settings=settings, clock=clock)
    return schemas.ChildOut.model_validate(child)


@router.post("/children/lookup", response_model=schemas.ChildOut, tags=["children"], dependencies=[READ])
async def lookup_child(body: schemas.ChildLookup, session: SessionDep, clock: ClockDep) -> schemas.ChildOut:
    """Find a child by personnummer. A POST, so the number never stands in a URL."""
    return schemas.ChildOut.model_validate(await service.find_child(session, body.personnummer, clock=clock))


@router.get("/children/{child_id}", response_model=schemas.ChildOut, tags=["children"], dependencies=[READ])
async def get_child(child_id: uuid.UUID, session: SessionDep) -> schemas.ChildOut:
    return schemas.ChildOut.model_validate(await service.get_child(session, child_id))


@router.patch("/children/{child_id}", response_model=schemas.ChildOut, tags=["children"], dependencies=[WRITE])
async def update_child(
    child_id: uuid.UUID, body: schemas.ChildUpdate, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> schemas.ChildOut:
    child = await service.get_child(session, child_id)
    return schemas.ChildOut.model_validate(
        await service.update_child(session, child, body, settings=settings, clock=clock)
    )


@router.post(
    "/placements",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.PlacementOut,
    tags=["placements"],
    dependencies=[WRITE],
)
async def create_placement(
    body: schemas.PlacementCreate, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> schemas.PlacementOut:
    """Record a placement. Refused while another placement of the child overlaps it."""
    placement = await service.create_placement(session, body.child_id, body, settings=settings, clock=clock)
    return schemas.PlacementOut.model_validate(placement)


@router.get("/placements", response_model=schemas.PlacementPage, tags=["placements"], dependencies=[READ])
async def list_placements(
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    district: str | None = None,
    form: PlacementForm | None = None,
    active_on: Annotated[date | None, Query(description="Only placements under way on this date.")] = None,
    child_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.PlacementPage:
    if district is not None and district not in settings.districts:
        raise invalid("query.district", "unknown district")
    stmt = service.list_query(
        district=district, form=form.value if form else None, active_on=active_on, child_id=child_id
    )
    items, total = await service.list_placements(session, stmt, limit=limit, offset=offset)
    return schemas.PlacementPage(
        items=[schemas.PlacementOut.model_validate(p) for p in items], total=total, limit=limit, offset=offset
    )


@router.get("/placements/{placement_id}", response_model=schemas.PlacementOut, tags=["placements"], dependencies=[READ])
async def get_placement(placement_id: uuid.UUID, session: SessionDep) -> schemas.PlacementOut:
    return schemas.PlacementOut.model_validate(await service.get_placement(session, placement_id))


@router.patch(
    "/placements/{placement_id}", response_model=schemas.PlacementOut, tags=["placements"], dependencies=[WRITE]
)
async def update_placement(
    placement_id: uuid.UUID, body: schemas.PlacementUpdate, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> schemas.PlacementOut:
    placement = await service.get_placement(session, placement_id, for_update=True)
    return schemas.PlacementOut.model_validate(
        await service.update_placement(session, placement, body, settings=settings, clock=clock)
    )


@router.post(
    "/placements/{placement_id}/end", response_model=schemas.PlacementOut, tags=["placements"], dependencies=[WRITE]
)
async def end_placement(
    placement_id: uuid.UUID, body: schemas.PlacementEnd, session: SessionDep, clock: ClockDep
) -> schemas.PlacementOut:
    placement = await service.get_placement(session, placement_id, for_update=True)
    return schemas.PlacementOut.model_validate(await service.end_placement(session, placement, body, clock=clock))


@router.post(
    "/placements/{placement_id}/move",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.PlacementMoveOut,
    tags=["placements"],
    dependencies=[WRITE],
)
async def move_placement(
    placement_id: uuid.UUID, body: schemas.PlacementMove, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> schemas.PlacementMoveOut:
    """End this placement and start the next one atomically (both events, or neither)."""
    placement = await service.get_placement(session, placement_id, for_update=True)
    ended, started = await service.move_placement(session, placement, body, settings=settings, clock=clock)
    return schemas.PlacementMoveOut(
        ended=schemas.PlacementOut.model_validate(ended), started=schemas.PlacementOut.model_validate(started)
    )


@router.get(
    "/placements/{placement_id}/snapshot", response_model=PlacementSnapshot, tags=["placements"], dependencies=[READ]
)
async def placement_snapshot(placement_id: uuid.UUID, session: SessionDep) -> PlacementSnapshot:
    """The placement as its events describe it (no location, no caseworker): what the other
    services store when they need a placement they have not yet seen on the bus."""
    placement = await service.get_placement(session, placement_id)
    child = await service.get_child(session, placement.child_id)
    return service.snapshot(placement, child)
