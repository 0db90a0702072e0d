"""The placement list: its filters and its page, read-only."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.placement.models import Placement


def list_query(
    *,
    district: str | None,
    form: str | None,
    active_on: date | None,
    child_id: uuid.UUID | None,
) -> Select[Placement]:
    stmt = select(Placement)
    if district is not None:
        stmt = stmt.where(Placement.district == district)
    if form is not None:
        stmt = stmt.where(Placement.form == form)
    if child_id is not None:
        stmt = stmt.where(Placement.child_id == child_id)
    if active_on is not None:
        stmt = stmt.where(
            Placement.start_date <= active_on,
            or_(Placement.end_date.is_(None), Placement.end_date > active_on),
        )
    return stmt


async def list_placements(
    session: AsyncSession, stmt: Select[Placement], *, limit: int, offset: int
) -> tuple[list[Placement], int]:
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await session.scalars(stmt.order_by(Placement.start_date.desc(), Placement.id).limit(limit).offset(offset))
    return list(rows.all()), int(total or 0)
