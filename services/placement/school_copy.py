"""What the placement service keeps of `obruten.school`: each placement's school starts (id and
day only), so that a correction moving a placement's start to after the child's first school
start is refused with 409 here, where it is made. The placement service cannot otherwise know
the school start; asking the school service on every correction would make placement writes
depend on it being up. A start recorded but not yet consumed here is caught on the school side
instead (services/school/corrections.py)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.placement.models import SchoolStartSeen
from shared.bus.inbox import event_data
from shared.contracts.envelope import CloudEvent
from shared.contracts.school import SchoolEnded, SchoolStarted
from shared.kernel.errors import invalid


async def apply_school_event(session: AsyncSession, event: CloudEvent) -> None:
    """Consumer handler for `obruten.school`: started and corrected starts are kept, withdrawn
    ones (ended on their own first day) dropped; plans and other ends say nothing about the day a
    start came."""
    data = event_data(event)
    if isinstance(data, SchoolStarted):
        stmt = insert(SchoolStartSeen).values(
            school_start_id=data.school_start_id, placement_id=data.placement_id, start_date=data.start_date
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[SchoolStartSeen.school_start_id], set_={"start_date": data.start_date}
            )
        )
    elif isinstance(data, SchoolEnded):
        # Ended on its own first day: withdrawn, never attended (services/school/service.py).
        await session.execute(
            delete(SchoolStartSeen).where(
                SchoolStartSeen.school_start_id == data.school_start_id, SchoolStartSeen.start_date == data.end_date
            )
        )


async def check_start_not_after_school(session: AsyncSession, placement_id: uuid.UUID, start: date) -> None:
    first: date | None = await session.scalar(
        select(func.min(SchoolStartSeen.start_date)).where(SchoolStartSeen.placement_id == placement_id)
    )
    if first is not None and start > first:
        raise invalid(
            "body.start_date",
            f"after the child's school start in this placement ({first}); correct the school start first",
            status=409,
            type="date-contradiction",
        )
