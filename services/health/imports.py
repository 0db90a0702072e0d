"""Bulk import of examinations (`POST /v1/imports`, shared/web/imports.py): a city starting out
enters the health and dental examinations its records hold.

A line is an examination as `POST /v1/examinations` takes it, with the case system's
`external_id` and its placement by `placement_id` or `placement_external_id` (the external_id
the placement was imported with; shared/web/imports.py PlacementRef). Checked as the create
endpoint checks it.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.health import schemas, service
from services.health.models import Examination, placement_view
from shared.bus.placement_copy import PlacementClient, is_protected, placement_not_found
from shared.kernel.clock import Clock
from shared.web.imports import LineStatus, Outcome, PlacementRef, already_imported, differs, resolve_placement
from shared.web.policy import Access
from shared.web.schemas import ShortText


class ExaminationImportLine(PlacementRef, schemas.ExaminationCreate):
    """One line of an examination import."""

    external_id: ShortText = Field(min_length=1, description="The case system's own id of the examination.")
    placement_id: uuid.UUID | None = None  # type: ignore[assignment]


def _recorded(exam: Examination) -> dict[str, Any]:
    return {
        "placement_id": exam.placement_id,
        "kind": exam.kind,
        "status": exam.status,
        "date": exam.date,
        "provider": exam.provider,
    }


def _sent(line: ExaminationImportLine, placement_id: uuid.UUID) -> dict[str, Any]:
    day: date = line.date
    return {
        "placement_id": placement_id,
        "kind": line.kind.value,
        "status": line.status.value,
        "date": day,
        "provider": line.provider,
    }


async def import_examination(
    session: AsyncSession, line: ExaminationImportLine, *, client: PlacementClient, clock: Clock, access: Access
) -> Outcome:
    placement_id = await resolve_placement(session, placement_view, line)
    existing = await session.scalar(select(Examination).where(Examination.external_id == line.external_id))
    if existing is not None:
        row = (
            (
                await session.execute(
                    select(placement_view).where(placement_view.c.placement_id == existing.placement_id)
                )
            )
            .mappings()
            .first()
        )
        protected = row is None or is_protected(row)
        access.check(existing.district, placement_not_found("external_id"), protected=protected)
        field = differs(_recorded(existing), _sent(line, placement_id))
        if field is not None:
            raise already_imported(field)
        return Outcome(status=LineStatus.unchanged, id=str(existing.id))
    body = schemas.ExaminationCreate.model_validate(
        {**line.model_dump(include=set(schemas.ExaminationCreate.model_fields)), "placement_id": placement_id}
    )
    exam = await service.create_examination(
        session, body, client=client, clock=clock, access=access, external_id=line.external_id
    )
    return Outcome(status=LineStatus.created, id=str(exam.id))
