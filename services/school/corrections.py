"""Corrections to school starts, and what a corrected placement changes here.

Where each date check lives (issue 14)
    - A school start before its placement's start contradicts the recorded placement: the school
      service refuses it (a new start: 422 as any out-of-range field; a corrected start date:
      409 `date-contradiction`, naming `body.start_date`).
    - A placement start corrected to after a recorded school start: only the school service
      knows the school start, so the placement service keeps, from `obruten.school`, the
      first school start of each placement and refuses such a correction with 409 itself
      (services/placement/school_copy.py). Should the correction still arrive here first (the
      school start's event not yet consumed there), this service keeps the start, recomputes
      its days (then negative) and flags it: the day statistics of the school-start report
      leave out negative days, and the row-level list shows them for the district to correct.
    - `days_to_school_start` always follows the placement's start date as this service's copy
      holds it: recomputed when a placement event brings a new start date or school_change,
      and when a school start's own date is corrected (`obruten.school.start_changed`).

Planned starts
    A start may be recorded up to `school_max_planned_days` (OBRUTEN_SCHOOL_MAX_PLANNED_DAYS,
    default 30) ahead. It counts as a school start from its day, and may be withdrawn before
    that day (recorded as every withdrawn start is: a school end on its own first day); once its
    day has come it is a fact, corrected through its date or closed by a school end.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.school import schemas
from services.school.models import SchoolEnd, SchoolStart, outbox, placement_view
from services.school.service import confirmed_protected
from services.school.starts import not_too_far_ahead, started
from shared.bus.placement_copy import PlacementClient, placement_for_write
from shared.contracts.envelope import CloudEvent
from shared.contracts.placement import PlacementSnapshot
from shared.contracts.school import SCHOOL_ENDED, SCHOOL_START_CHANGED, SchoolEnded, SchoolEndReason
from shared.kernel.clock import STOCKHOLM, Clock
from shared.kernel.errors import Problem, invalid
from shared.kernel.settings import Settings
from shared.web.policy import Access

log = logging.getLogger("obruten.school")


def contradiction(field: str, reason: str) -> Problem:
    return invalid(field, reason, status=409, type="date-contradiction")


def _recompute(start: SchoolStart, placement_start: date, school_change: bool) -> bool:
    """Bring the start's copy of its placement up to date; True when anything changed."""
    days = (start.start_date - placement_start).days if school_change else None
    if (start.placement_start_date, start.school_change, start.days_to_school_start) == (
        placement_start,
        school_change,
        days,
    ):
        return False
    start.placement_start_date = placement_start
    start.school_change = school_change
    start.days_to_school_start = days
    return True


async def correct_start(
    session: AsyncSession,
    start: SchoolStart,
    body: schemas.SchoolStartUpdate,
    *,
    client: PlacementClient,
    settings: Settings,
    clock: Clock,
    access: Access,
) -> SchoolStart:
    """A corrected start date: checked against the placement and the child's other schooling."""
    placement = await placement_for_write(session, placement_view, client, start.placement_id, access)
    new = body.start_date
    if new < placement["start_date"]:
        raise contradiction("body.start_date", f"before the placement began ({placement['start_date']})")
    if placement["end_date"] is not None and new >= placement["end_date"]:
        raise contradiction("body.start_date", f"on or after the placement ended ({placement['end_date']})")
    if start.end_date is not None and new > start.end_date:
        raise contradiction("body.start_date", f"after this schooling ended ({start.end_date})")
    not_too_far_ahead(new, settings=settings, clock=clock, field="body.start_date")
    previous_end = await session.scalar(
        select(func.max(SchoolStart.end_date)).where(
            SchoolStart.placement_id == start.placement_id,
            SchoolStart.id != start.id,
            SchoolStart.start_date < start.start_date,
        )
    )
    if previous_end is not None and new < previous_end:
        raise contradiction("body.start_date", f"before the previous schooling ended ({previous_end})")
    if new == start.start_date:
        return start
    start.start_date = new
    _recompute(start, placement["start_date"], bool(placement["school_change"]))
    await session.flush()
    publishable = start.school_unit_code is not None and not await confirmed_protected(session, client, placement)
    data = started(start, clock.today(), publishable=publishable)
    await outbox.add(session, SCHOOL_START_CHANGED, subject=str(start.child_id), data=data, time=clock.now())
    return start


async def withdraw_start(
    session: AsyncSession, start: SchoolStart, *, client: PlacementClient, clock: Clock, access: Access
) -> None:
    """A planned start withdrawn before its day. Recorded as the suite records every withdrawn
    start (services/school/service.py `attended`): a school end on the start's own first day, so
    that it never counts as started, here and for notify (`obruten.school.ended`)."""
    await placement_for_write(session, placement_view, client, start.placement_id, access)
    if start.start_date <= clock.today():
        raise Problem(
            409,
            "school-start-begun",
            "School start has begun",
            f"The start's day ({start.start_date}) has come: correct its date or record a school end instead.",
            field="path.start_id",
        )
    start.end_date = start.start_date
    end = SchoolEnd(
        id=uuid.uuid4(),
        school_start_id=start.id,
        placement_id=start.placement_id,
        child_id=start.child_id,
        district=start.district,
        end_date=start.start_date,
        reason=SchoolEndReason.other.value,
    )
    session.add(end)
    await session.flush()
    data = SchoolEnded(
        school_start_id=start.id,
        placement_id=end.placement_id,
        child_id=end.child_id,
        district=end.district,
        end_date=end.end_date,
        reason=SchoolEndReason.other,
    )
    await outbox.add(session, SCHOOL_ENDED, subject=str(start.child_id), data=data, time=clock.now())


async def after_placement_event(session: AsyncSession, event: CloudEvent, snapshot: PlacementSnapshot) -> None:
    """A newer version of a placement was stored: recompute its school starts' days."""
    today = event.time.astimezone(STOCKHOLM).date()
    starts = await session.scalars(select(SchoolStart).where(SchoolStart.placement_id == snapshot.placement_id))
    for start in starts:
        if not _recompute(start, snapshot.start_date, snapshot.school_change):
            continue
        if start.start_date < snapshot.start_date:
            # Flagged, not refused (the placement service could not know yet): see the module doc.
            log.warning(
                "placement start corrected to after a recorded school start",
                extra={"placement_id": str(snapshot.placement_id), "school_start_id": str(start.id)},
            )
        await session.flush()
        # No request here to confirm the child unprotected with: the school unit stays out.
        data = started(start, today, publishable=False)
        await outbox.add(session, SCHOOL_START_CHANGED, subject=str(start.child_id), data=data, time=event.time)
