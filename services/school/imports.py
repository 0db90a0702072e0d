"""Bulk import of school records (`POST /v1/imports`, shared/web/imports.py): a city starting out
enters the school plans, starts and ends its case system holds.

A line is one record, named by `record` (`school_plan`, `school_start`, `school_end`), with the
fields of its create endpoint, the case system's `external_id`, and its placement by
`placement_id` or `placement_external_id` (the placement's own external_id from the placement
import; shared/web/imports.py PlacementRef). Lines apply in the file's order, so a child's start
then its end, in that order, is one file. A start line is checked as `POST /v1/school-starts`
checks it (a planned start up to OBRUTEN_SCHOOL_MAX_PLANNED_DAYS ahead).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.school import schemas, service
from services.school.models import SchoolEnd, SchoolPlan, SchoolStart, placement_view
from shared.bus.placement_copy import PlacementClient
from shared.kernel.clock import Clock
from shared.kernel.errors import Problem
from shared.kernel.settings import Settings
from shared.web.imports import LineStatus, Outcome, PlacementRef, already_imported, differs, resolve_placement
from shared.web.policy import Access
from shared.web.schemas import ShortText


class _Line(PlacementRef):
    model_config = ConfigDict(extra="forbid")

    external_id: ShortText = Field(min_length=1, description="The case system's own id of the record.")


class PlanLine(_Line, schemas.SchoolPlanCreate):
    record: Literal["school_plan"]
    placement_id: uuid.UUID | None = None  # type: ignore[assignment]


class StartLine(_Line, schemas.SchoolStartCreate):
    record: Literal["school_start"]
    placement_id: uuid.UUID | None = None  # type: ignore[assignment]


class EndLine(_Line, schemas.SchoolEndCreate):
    record: Literal["school_end"]
    placement_id: uuid.UUID | None = None  # type: ignore[assignment]


SchoolLine = Annotated[PlanLine | StartLine | EndLine, Field(discriminator="record")]


class SchoolImportLine(RootModel[SchoolLine]):
    """One line of a school import: a school plan, start or end, by `record`."""


RecordT = SchoolPlan | SchoolStart | SchoolEnd
MODELS: dict[str, type[RecordT]] = {"school_plan": SchoolPlan, "school_start": SchoolStart, "school_end": SchoolEnd}
CREATE: dict[str, type[BaseModel]] = {
    "school_plan": schemas.SchoolPlanCreate,
    "school_start": schemas.SchoolStartCreate,
    "school_end": schemas.SchoolEndCreate,
}


def _sent(line: PlanLine | StartLine | EndLine, placement_id: uuid.UUID) -> dict[str, Any]:
    fields = line.model_dump(exclude={"record", "external_id", "placement_external_id"}, mode="json")
    return {**fields, "placement_id": str(placement_id)}


def _recorded(record: RecordT, keys: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys:
        value = getattr(record, k, None)
        out[k] = value.isoformat() if isinstance(value, date) else value
    out["placement_id"] = str(record.placement_id)
    if isinstance(record, SchoolStart):
        # Given as a code, or as what else started: recorded as the provision with the code.
        out["provision"] = None if record.school_unit_code is not None else record.provision
    if isinstance(record, SchoolPlan) and record.planned_school_unit_code is not None:
        out["planned_provision"] = None
    return out


async def import_school_record(
    session: AsyncSession,
    root: SchoolImportLine,
    *,
    client: PlacementClient,
    settings: Settings,
    clock: Clock,
    access: Access,
) -> Outcome:
    line = root.root
    placement_id = await resolve_placement(session, placement_view, line)
    model = MODELS[line.record]
    existing: RecordT | None = await session.scalar(
        select(model).where(model.external_id == line.external_id)  # type: ignore[arg-type]
    )
    sent = _sent(line, placement_id)
    if existing is not None:
        await service.check_placement(session, access, existing.placement_id, existing.district, field="external_id")
        field = differs(_recorded(existing, set(sent)), {k: v for k, v in sent.items() if v is not None})
        if field is not None:
            raise already_imported(field)
        return Outcome(status=LineStatus.unchanged, id=str(existing.id))
    body = CREATE[line.record].model_validate(sent)
    record: RecordT
    if isinstance(body, schemas.SchoolPlanCreate):
        record = await service.create_plan(
            session, body, client=client, clock=clock, access=access, external_id=line.external_id
        )
    elif isinstance(body, schemas.SchoolStartCreate):
        record = await service.create_start(
            session, body, client=client, settings=settings, clock=clock, access=access, external_id=line.external_id
        )
    elif isinstance(body, schemas.SchoolEndCreate):
        record = await service.create_end(
            session, body, client=client, clock=clock, access=access, external_id=line.external_id
        )
    else:  # pragma: no cover - the discriminator allows no other record
        raise Problem(422, "invalid-field", "Invalid request", "unknown record", field="record")
    return Outcome(status=LineStatus.created, id=str(record.id))
