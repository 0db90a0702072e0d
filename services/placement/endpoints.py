"""HTTP routes of the placement service. Thin: the rules live in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, status

from services.placement import children, imports, listing, schemas, service, writes
from services.placement.models import Child, Placement
from services.placement.settings import PlacementSettingsDep
from shared.contracts.placement import PlacementSnapshot
from shared.contracts.vocabulary import PlacementForm
from shared.kernel.clock import ClockDep
from shared.kernel.db import SessionDep
from shared.kernel.errors import check_district, not_found
from shared.web.app import SettingsDep
from shared.web.imports import ImportReport, ndjson_body, read_lines, run_import
from shared.web.policy import Access, AccessDep, Privileged, ProtectedField, v1_router
from shared.web.schemas import Day, Limit, NameText, Offset

# Who may call what, and which rows and fields each caller sees: shared/web/policy.py.
router = v1_router()


def _child_out(access: Access, child: Child) -> schemas.ChildOut:
    access.check(child.district, "child", record_id=child.id)
    return schemas.ChildOut.model_validate(child)


async def _placements_out(
    session: SessionDep, access: Access, placements: list[Placement], known: set[uuid.UUID] | None = None
) -> list[schemas.PlacementOut]:
    """The placements as this caller may see them: a protected child's location is null
    unless the policy grants it (shared/web/policy.py, PROTECTED_FIELDS). `known`: which of
    their children are protected, when the caller has just read them."""
    protected_children = (
        known if known is not None else await service.protected_children(session, {p.child_id for p in placements})
    )
    out = []
    for p in placements:
        item = schemas.PlacementOut.model_validate(p)
        protected = p.child_id in protected_children or p.form == PlacementForm.skyddat_boende.value
        if protected and not access.sees(ProtectedField.location, responsible=p.caseworker):
            item.location = None
        if protected and not access.sees(ProtectedField.outside_municipality, responsible=p.caseworker):
            item.outside_municipality = None
        out.append(item)
    return out


async def _placement_out(session: SessionDep, access: Access, placement: Placement) -> schemas.PlacementOut:
    [item] = await _placements_out(session, access, [placement])
    return item


async def _placement(
    session: SessionDep, access: Access, placement_id: uuid.UUID, *, for_update: bool = False
) -> Placement:
    if for_update:
        return await service.lock_placement(session, placement_id, access)
    placement = await service.get_placement(session, placement_id)
    access.check(placement.district, "placement")
    return placement


@router.post(
    "/children",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ChildOut,
    tags=["children"],
)
async def create_child(
    body: schemas.ChildCreate, session: SessionDep, settings: SettingsDep, clock: ClockDep, access: AccessDep
) -> schemas.ChildOut:
    """Register a child. The answer's `id` is the pseudonymous id used everywhere else."""
    access.check_new(body.district, "body.district")
    child = await children.create_child(session, body, settings=settings, clock=clock)
    return _child_out(access, child)


@router.post("/children/lookup", response_model=schemas.ChildOut, tags=["children"])
async def lookup_child(
    body: schemas.ChildLookup, session: SessionDep, clock: ClockDep, access: AccessDep
) -> schemas.ChildOut:
    """Find a child by personnummer. A POST, so the number never stands in a URL."""
    return _child_out(access, await children.find_child(session, body, access=access, clock=clock))


@router.get("/children/{child_id}", response_model=schemas.ChildOut, tags=["children"])
async def get_child(child_id: uuid.UUID, session: SessionDep, access: AccessDep) -> schemas.ChildOut:
    return _child_out(access, await service.get_child(session, child_id))


@router.patch("/children/{child_id}", response_model=schemas.ChildOut, tags=["children"])
async def update_child(
    child_id: uuid.UUID,
    body: schemas.ChildUpdate,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.ChildOut:
    child = await service.lock_child(session, child_id)
    if child is None:
        raise not_found("child")
    access.check(child.district, "child")
    if body.district is not None:
        # A transfer between districts (authorities of their own) needs a caller who sees both:
        # a district-scoped role may name only its own district, so in effect an administrator.
        access.check_new(body.district, "body.district")
    if body.protected_identity is False and child.protected_identity:
        access.privileged(Privileged.lift_protection, "body.protected_identity")
    return _child_out(access, await service.update_child(session, child, body, settings=settings, clock=clock))


@router.post(
    "/placements",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.PlacementOut,
    tags=["placements"],
)
async def create_placement(
    body: schemas.PlacementCreate,
    session: SessionDep,
    settings: SettingsDep,
    own: PlacementSettingsDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.PlacementOut:
    """Record a placement. Refused while another placement of the child overlaps it. Naming
    the responsible caseworker (`caseworker`) is a district manager's or an administrator's act."""
    # Read unlocked; the write locks the child and writes only if it is still as read (writes.py).
    child = await writes.read_child(session, body.child_id)
    if child is not None:
        access.check(child.district, service.child_not_found("body.child_id"))
    access.check_new(body.district, "body.district")
    if child is None:
        raise service.child_not_found("body.child_id")
    if body.caseworker is not None:
        access.privileged(Privileged.name_caseworker, "body.caseworker")
    placement = await writes.record_placement(session, child, body, settings=settings, own=own, clock=clock)
    access.resource_id = str(placement.id)
    [out] = await _placements_out(session, access, [placement], {child.id} if child.protected_identity else set())
    return out


@router.get("/placements", response_model=schemas.PlacementPage, tags=["placements"])
async def list_placements(
    session: SessionDep,
    settings: SettingsDep,
    access: AccessDep,
    district: Annotated[NameText | None, Query()] = None,
    form: PlacementForm | None = None,
    active_on: Annotated[Day | None, Query(description="Only placements under way on this date.")] = None,
    child_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.PlacementPage:
    if district is not None:
        check_district(settings.districts, district, "query.district")
    stmt = listing.list_query(
        district=district, form=form.value if form else None, active_on=active_on, child_id=child_id
    ).where(access.list_filter(district, Placement.district))
    items, total = await listing.list_placements(session, stmt, limit=limit, offset=offset)
    return schemas.PlacementPage(
        items=await _placements_out(session, access, items), total=total, limit=limit, offset=offset
    )


@router.get("/placements/{placement_id}", response_model=schemas.PlacementOut, tags=["placements"])
async def get_placement(placement_id: uuid.UUID, session: SessionDep, access: AccessDep) -> schemas.PlacementOut:
    return await _placement_out(session, access, await _placement(session, access, placement_id))


@router.patch("/placements/{placement_id}", response_model=schemas.PlacementOut, tags=["placements"])
async def update_placement(
    placement_id: uuid.UUID,
    body: schemas.PlacementUpdate,
    session: SessionDep,
    settings: SettingsDep,
    own: PlacementSettingsDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.PlacementOut:
    placement = await _placement(session, access, placement_id, for_update=True)
    if "caseworker" in body.model_fields_set and body.caseworker != placement.caseworker:
        # Who sees a protected location depends on this field: never the caller's own say.
        access.privileged(Privileged.name_caseworker, "body.caseworker")
    updated = await service.update_placement(session, placement, body, settings=settings, own=own, clock=clock)
    return await _placement_out(session, access, updated)


@router.post("/placements/{placement_id}/end", response_model=schemas.PlacementOut, tags=["placements"])
async def end_placement(
    placement_id: uuid.UUID, body: schemas.PlacementEnd, session: SessionDep, clock: ClockDep, access: AccessDep
) -> schemas.PlacementOut:
    placement = await _placement(session, access, placement_id, for_update=True)
    ended = await service.end_placement(session, placement, body, clock=clock)
    return await _placement_out(session, access, ended)


@router.post(
    "/placements/{placement_id}/move",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.PlacementMoveOut,
    tags=["placements"],
)
async def move_placement(
    placement_id: uuid.UUID,
    body: schemas.PlacementMove,
    session: SessionDep,
    settings: SettingsDep,
    own: PlacementSettingsDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.PlacementMoveOut:
    """End this placement and start the next one atomically (both events, or neither)."""
    placement = await _placement(session, access, placement_id, for_update=True)
    access.check_new(body.next.district, "body.next.district")
    if body.next.caseworker is not None and body.next.caseworker != placement.caseworker:
        access.privileged(Privileged.name_caseworker, "body.next.caseworker")
    ended, started = await service.move_placement(session, placement, body, settings=settings, own=own, clock=clock)
    ended_out, started_out = await _placements_out(session, access, [ended, started])
    return schemas.PlacementMoveOut(ended=ended_out, started=started_out)


@router.get("/placements/{placement_id}/snapshot", response_model=PlacementSnapshot, tags=["placements"])
async def placement_snapshot(placement_id: uuid.UUID, session: SessionDep, access: AccessDep) -> PlacementSnapshot:
    """The placement as its events describe it (no location; the caseworker as a user id): what the other
    services store when they need a placement they have not yet seen on the bus."""
    placement = await _placement(session, access, placement_id)
    child = await service.get_child(session, placement.child_id)
    return service.snapshot(placement, child)


@router.post(
    "/imports",
    response_model=ImportReport,
    tags=["imports"],
    openapi_extra=ndjson_body(imports.PlacementImportLine),
)
async def import_placements(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    own: PlacementSettingsDep,
    clock: ClockDep,
    access: AccessDep,
) -> ImportReport:
    """Bulk import (application/x-ndjson): one placement per line, with the child's personnummer and
    protected_identity instead of child_id, the case system's `external_id`, and `end_date` and
    `end_reason` for one that has ended. Each line is all-or-nothing and reported as created,
    unchanged (its external_id already recorded with the same values: re-sending a file changes
    nothing) or refused (with the field and the reason); a refused line never stops the others.
    The events carry `imported: true`. Imports have their own rate limit (OBRUTEN_RATE_LIMIT_IMPORTS)."""
    lines = await read_lines(request)
    importer = imports.PlacementImport(session, settings=settings, own=own, clock=clock, access=access)
    return await run_import(session, lines, imports.PlacementImportLine, importer.apply, importer.prepare)
