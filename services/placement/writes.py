"""`POST /v1/placements` in two round trips: the child is read without a lock and the rules are
checked against it; then one statement (shared/kernel/writes.py) locks the child, re-checks that
it is still as read (district, birth date, protected identity: what the access check, the date
rules and the event used), and inserts the placement, its event and the request's audit row. The
session is in autocommit, so that statement is the whole transaction: no BEGIN, no COMMIT.

The rules are those of service.create_placement, and the locks are taken in the same order (the
child first, in the statement itself). A child changed in between writes nothing and the request
runs again (shared/kernel/writes.py `Changed`); an overlap is the same 409, with the same field."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, bindparam, literal_column, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.placement import schemas
from services.placement.models import Child, Placement, outbox
from services.placement.service import EXCLUSION_VIOLATION, new_placement, overlap, snapshot
from services.placement.settings import PlacementSettings
from shared.contracts.placement import PLACEMENT_STARTED
from shared.kernel.clock import Clock
from shared.kernel.errors import sqlstate
from shared.kernel.settings import Settings
from shared.kernel.writes import defer_new, guard

# The child as the route read it, locked for the statement.
CHILD_AS_READ: Select[Any] = (
    select(literal_column("1"))
    .select_from(Child)
    .where(
        Child.id == bindparam("g_id"),
        Child.district == bindparam("g_district"),
        Child.birth_date == bindparam("g_birth_date"),
        Child.protected_identity == bindparam("g_protected"),
    )
    .with_for_update()
)


CHILD_BY_ID = select(*Child.__table__.columns).where(Child.id == bindparam("id"))


async def read_child(session: AsyncSession, child_id: uuid.UUID) -> Child | None:
    """The child, unlocked, on a session whose statements each commit on their own. A Core read,
    not the ORM's: the child is only read here, so it is not loaded into the session."""
    conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    row = (await conn.execute(CHILD_BY_ID, {"id": child_id})).first()
    return Child(**row._mapping) if row is not None else None


async def record_placement(
    session: AsyncSession,
    child: Child,
    body: schemas.PlacementFields,
    *,
    settings: Settings,
    own: PlacementSettings,
    clock: Clock,
) -> Placement:
    """A new placement of `child` (from `read_child`), sent with the request's other rows at the
    end of the request, provided the child is still as read."""
    placement = new_placement(child, body, settings=settings, own=own, clock=clock)
    child_id, start = child.id, body.start_date

    async def refused(session: AsyncSession, exc: DBAPIError) -> BaseException | None:
        if sqlstate(exc) != EXCLUSION_VIOLATION:
            return None
        return await overlap(session, child_id, start, "body.start_date")

    guard(
        session,
        CHILD_AS_READ,
        {
            "g_id": child.id,
            "g_district": child.district,
            "g_birth_date": child.birth_date,
            "g_protected": child.protected_identity,
        },
    )
    defer_new(session, placement, refused)
    outbox.add_deferred(
        session, PLACEMENT_STARTED, subject=str(child.id), data=snapshot(placement, child), time=clock.now()
    )
    return placement
