"""Placement rules: what may be recorded, and the events each change announces.

Functions take the request's session and never commit: the caller's transaction holds the
record and its outbox row together.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import inspect, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.placement import schemas
from services.placement.children import child_exists
from services.placement.dates import check_dates
from services.placement.models import Child, Placement, outbox
from services.placement.school_copy import check_start_not_after_school
from services.placement.settings import PlacementSettings
from shared.contracts.envelope import EventType
from shared.contracts.placement import (
    PLACEMENT_CHANGED,
    PLACEMENT_ENDED,
    PLACEMENT_STARTED,
    PlacementSnapshot,
)
from shared.kernel.clock import Clock
from shared.kernel.errors import Problem, check_district, invalid, not_found, sqlstate
from shared.kernel.settings import Settings
from shared.web.policy import Access


async def get_child(session: AsyncSession, child_id: uuid.UUID) -> Child:
    child = await session.get(Child, child_id)
    if child is None:
        raise not_found("child")
    return child


async def update_child(
    session: AsyncSession, child: Child, body: schemas.ChildUpdate, *, settings: Settings, clock: Clock
) -> Child:
    """`child` is locked by the caller (`lock_child`)."""
    if body.district is not None and body.district != child.district:
        check_district(settings.districts, body.district, "body.district")
        # A transfer is an administrator's act (the route): who sees both districts may learn
        # that the receiving district already holds a record.
        clash = await session.scalar(
            select(Child.id).where(Child.district == body.district, Child.personnummer == child.personnummer)
        )
        if clash is not None:
            raise child_exists(clash)
        child.district = body.district
    if body.protected_identity is not None and body.protected_identity != child.protected_identity:
        child.protected_identity = body.protected_identity
        # Consumers must learn the flag at once: re-announce the child's active placement.
        for placement in await session.scalars(
            select(Placement).where(Placement.child_id == child.id, Placement.end_date.is_(None))
        ):
            placement.version += 1
            await _emit(session, PLACEMENT_CHANGED, placement, child, clock)
    await session.flush()
    return child


async def protected_children(session: AsyncSession, child_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these children have protected identity. Children this transaction already
    loaded are answered from the session, without a query (a placement just written)."""
    protected: set[uuid.UUID] = set()
    missing: set[uuid.UUID] = set()
    mapper = inspect(Child)
    for child_id in child_ids:
        child = session.sync_session.identity_map.get(mapper.identity_key_from_primary_key((child_id,)))
        if isinstance(child, Child):
            if child.protected_identity:
                protected.add(child_id)
        else:
            missing.add(child_id)
    if missing:
        rows = await session.scalars(select(Child.id).where(Child.id.in_(missing), Child.protected_identity))
        protected.update(rows.all())
    return protected


async def lock_child(session: AsyncSession, child_id: uuid.UUID) -> Child | None:
    """The child, locked until the transaction ends: its placements are checked and written
    one writer at a time."""
    return await session.get(Child, child_id, with_for_update=True)


async def lock_placement(session: AsyncSession, placement_id: uuid.UUID, access: Access) -> Placement:
    """The placement, for a write: its child is locked first, then the placement. Every path
    that writes placements takes its locks in that order (the child first), so that a move and
    a new placement of one child queue behind each other instead of deadlocking. Nothing is
    locked for a caller the placement is hidden from."""
    row = (
        await session.execute(select(Placement.child_id, Placement.district).where(Placement.id == placement_id))
    ).first()
    if row is None:
        raise not_found("placement")
    access.check(row.district, "placement")
    await lock_child(session, row.child_id)
    return await get_placement(session, placement_id, for_update=True)


async def get_placement(session: AsyncSession, placement_id: uuid.UUID, *, for_update: bool = False) -> Placement:
    stmt = select(Placement).where(Placement.id == placement_id)
    if for_update:
        stmt = stmt.with_for_update()
    placement = await session.scalar(stmt)
    if placement is None:
        raise not_found("placement")
    return placement


async def _check_no_overlap(
    session: AsyncSession, child_id: uuid.UUID, start: date, *, field: str, ignore: uuid.UUID | None = None
) -> None:
    stmt = select(Placement.id, Placement.start_date, Placement.end_date).where(
        Placement.child_id == child_id,
        or_(Placement.end_date.is_(None), Placement.end_date > start),
    )
    if ignore is not None:
        stmt = stmt.where(Placement.id != ignore)
    clash = (await session.execute(stmt.limit(1))).first()
    if clash is not None:
        raise Problem(
            409,
            "placement-overlap",
            "Overlapping placement",
            "The child has a placement that overlaps this one; end it or move the child "
            f"(POST /v1/placements/{clash.id}/end or /move) first.",
            field=field,
            conflicting_placement_id=str(clash.id),
        )


def child_not_found(field: str) -> Problem:
    # Also the answer for a child outside the caller's rows: the two must not differ.
    return Problem(404, "not-found", "Child not found", "No child with that id.", field=field)


def new_placement(
    child: Child,
    body: schemas.PlacementFields,
    *,
    settings: Settings,
    own: PlacementSettings,
    clock: Clock,
    previous: Placement | None = None,
    prefix: str = "body.",
    external_id: str | None = None,
) -> Placement:
    """A new placement of `child` as the rules allow it, not yet written."""
    check_district(settings.districts, body.district, f"{prefix}district")
    check_dates(
        child,
        body.start_date,
        body.planned_end_date,
        settings=settings,
        own=own,
        clock=clock,
        prefix=prefix,
        form=body.form.value,
    )
    # No overlap query first: the exclusion constraint placement_no_overlap decides (it must
    # anyway, for concurrent writers), which saves a round trip on every write that succeeds.
    return Placement(
        id=uuid.uuid4(),
        child_id=child.id,
        district=body.district,
        form=body.form.value,
        variants=sorted({v.value for v in body.variants}),
        legal_basis=body.legal_basis.value,
        duration=body.duration.value,
        start_date=body.start_date,
        planned_end_date=body.planned_end_date,
        school_change=body.school_change,
        caseworker=body.caseworker,
        location=body.location,
        outside_municipality=body.outside_municipality,
        previous_placement_id=previous.id if previous else None,
        external_id=external_id,
        version=1,
    )


async def create_placement(
    session: AsyncSession,
    child: Child,
    body: schemas.PlacementFields,
    *,
    settings: Settings,
    own: PlacementSettings,
    clock: Clock,
    previous: Placement | None = None,
    prefix: str = "body.",
    external_id: str | None = None,
    imported: bool = False,
) -> Placement:
    """A new placement of `child`, which the caller has locked (`lock_child`), written at once
    (services/placement/writes.py sends a request's single placement with its other rows instead)."""
    placement = new_placement(
        child,
        body,
        settings=settings,
        own=own,
        clock=clock,
        previous=previous,
        prefix=prefix,
        external_id=external_id,
    )
    session.add(placement)
    child_id = child.id  # a rollback in overlap expires `child`
    try:
        await session.flush()
    except IntegrityError as exc:
        if sqlstate(exc) != EXCLUSION_VIOLATION:
            raise
        raise await overlap(session, child_id, body.start_date, f"{prefix}start_date") from exc
    await _emit(session, PLACEMENT_STARTED, placement, child, clock, imported=imported)
    return placement


EXCLUSION_VIOLATION = "23P01"


async def overlap(session: AsyncSession, child_id: uuid.UUID, start: date, field: str) -> Problem:
    """The answer to a placement the exclusion constraint refused."""
    if session.in_nested_transaction():
        # An import line (shared/web/imports.py): its savepoint is rolled back, the request's
        # other lines stay.
        return Problem(
            409,
            "placement-overlap",
            "Overlapping placement",
            "The child has a placement that overlaps this one.",
            field=field,
        )
    # The transaction is aborted; the request fails with 409 either way, so roll it back
    # here and look up the clashing placement for the answer in a fresh one.
    await session.rollback()
    await _check_no_overlap(session, child_id, start, field=field)
    return Problem(
        409,
        "placement-overlap",
        "Overlapping placement",
        "The child has a placement that overlaps this one; it changed meanwhile, read it and retry.",
        field=field,
    )


async def update_placement(
    session: AsyncSession,
    placement: Placement,
    body: schemas.PlacementUpdate,
    *,
    settings: Settings,
    own: PlacementSettings,
    clock: Clock,
) -> Placement:
    if placement.end_date is not None:
        raise Problem(409, "placement-ended", "Placement has ended", "An ended placement cannot be changed.")
    child = await get_child(session, placement.child_id)
    changes = body.model_dump(exclude_unset=True)
    for key in ("form", "legal_basis", "duration", "school_change"):
        if key in changes and changes[key] is None:
            raise invalid(f"body.{key}", "may not be null")
    start = changes.get("start_date") or placement.start_date
    planned_end = changes.get("planned_end_date", placement.planned_end_date)
    form = changes["form"].value if changes.get("form") else placement.form
    check_dates(
        child,
        start,
        planned_end,
        settings=settings,
        own=own,
        clock=clock,
        prefix="body.",
        form=form,
        form_field="body.form" if "form" in changes else "body.start_date",
    )
    if start != placement.start_date:
        await _check_no_overlap(session, child.id, start, field="body.start_date", ignore=placement.id)
    if start > placement.start_date:
        await check_start_not_after_school(session, placement.id, start)
    if not changes:
        return placement
    for key, value in changes.items():
        if key == "variants":
            value = sorted({v for v in (value or [])})
        setattr(placement, key, value.value if hasattr(value, "value") else value)
    placement.version += 1
    await session.flush()
    await _emit(session, PLACEMENT_CHANGED, placement, child, clock)
    return placement


async def end_placement(
    session: AsyncSession,
    placement: Placement,
    body: schemas.PlacementEnd,
    *,
    clock: Clock,
    field: str = "body.end_date",
    imported: bool = False,
) -> Placement:
    if placement.end_date is not None:
        raise Problem(409, "placement-ended", "Placement has already ended", f"It ended on {placement.end_date}.")
    if body.end_date < placement.start_date:
        raise invalid(field, f"before the placement's start_date ({placement.start_date})")
    if body.end_date > clock.today():
        raise invalid(field, "in the future; record the end when it has happened")
    child = await get_child(session, placement.child_id)
    placement.end_date = body.end_date
    placement.end_reason = body.end_reason.value
    placement.version += 1
    await session.flush()
    await _emit(session, PLACEMENT_ENDED, placement, child, clock, imported=imported)
    return placement


async def move_placement(
    session: AsyncSession,
    placement: Placement,
    body: schemas.PlacementMove,
    *,
    settings: Settings,
    own: PlacementSettings,
    clock: Clock,
) -> tuple[Placement, Placement]:
    if body.next.start_date != body.move_date:
        raise invalid("body.next.start_date", "must equal move_date: the new placement starts the day the old one ends")
    ended = await end_placement(
        session,
        placement,
        schemas.PlacementEnd(end_date=body.move_date, end_reason=body.end_reason),
        clock=clock,
        field="body.move_date",
    )
    child = await lock_child(session, placement.child_id)
    if child is None:  # a placement's child is never deleted (foreign key)
        raise child_not_found("body.next.child_id")
    started = await create_placement(
        session, child, body.next, settings=settings, own=own, clock=clock, previous=ended, prefix="body.next."
    )
    return ended, started


def snapshot(placement: Placement, child: Child, *, imported: bool = False) -> PlacementSnapshot:
    protected = child.protected_identity or placement.form == "skyddat_boende"
    return PlacementSnapshot(
        placement_id=placement.id,
        child_id=placement.child_id,
        version=placement.version,
        district=placement.district,
        form=placement.form,  # type: ignore[arg-type]
        variants=placement.variants,  # type: ignore[arg-type]
        legal_basis=placement.legal_basis,  # type: ignore[arg-type]
        duration=placement.duration,  # type: ignore[arg-type]
        start_date=placement.start_date,
        planned_end_date=placement.planned_end_date,
        end_date=placement.end_date,
        end_reason=placement.end_reason,  # type: ignore[arg-type]
        school_change=placement.school_change,
        child_birth_date=child.birth_date,
        protected_identity=protected,
        previous_placement_id=placement.previous_placement_id,
        caseworker=placement.caseworker,
        # A protected field: never in an event for a protected child.
        outside_municipality=None if protected else placement.outside_municipality,
        external_id=placement.external_id,
        imported=imported,
    )


async def _emit(
    session: AsyncSession, etype: EventType, placement: Placement, child: Child, clock: Clock, *, imported: bool = False
) -> None:
    data = snapshot(placement, child, imported=imported)
    await outbox.add(session, etype, subject=str(child.id), data=data, time=clock.now())
