"""`POST /v1/placements` in one statement: the placement, its event and the request's audit row
reach PostgreSQL together, as one INSERT with data-modifying CTEs (shared/kernel/db.py `defer`),
after the child's lock. The rules are those of service.create_placement; only the round trips
differ (four in all: BEGIN, the child's lock, the rows, COMMIT)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.placement import schemas
from services.placement.models import Child, Placement, outbox
from services.placement.service import EXCLUSION_VIOLATION, new_placement, overlap, snapshot
from shared.contracts.placement import PLACEMENT_STARTED
from shared.kernel.clock import Clock
from shared.kernel.db import defer
from shared.kernel.errors import sqlstate
from shared.kernel.settings import Settings

PLACEMENT: Table = Placement.__table__  # type: ignore[assignment]
COLUMNS = tuple(c.name for c in PLACEMENT.columns)


async def record_placement(
    session: AsyncSession, child: Child, body: schemas.PlacementFields, *, settings: Settings, clock: Clock
) -> Placement:
    """A new placement of `child` (locked by the caller), sent with the request's other rows just
    before the commit. An overlap found then is the same 409, with the same field, as at once."""
    placement = new_placement(child, body, settings=settings, clock=clock)
    # Set here rather than by the server's now(): the answer is built before the row is sent.
    placement.created_at = placement.updated_at = datetime.now(UTC)
    values: dict[str, Any] = {c: getattr(placement, c) for c in COLUMNS}
    child_id, start = child.id, body.start_date

    async def refused(session: AsyncSession, exc: DBAPIError) -> BaseException | None:
        if sqlstate(exc) != EXCLUSION_VIOLATION:
            return None
        return await overlap(session, child_id, start, "body.start_date")

    defer(session, PLACEMENT, values, refused)
    outbox.add_deferred(
        session, PLACEMENT_STARTED, subject=str(child.id), data=snapshot(placement, child), time=clock.now()
    )
    return placement
