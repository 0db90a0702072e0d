"""HTTP routes of the health service. Thin: the rules live in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.health import imports, schemas, service, writes
from services.health.models import Examination, ExaminationStatus, placement_view
from shared.bus.placement_copy import is_protected, protected_placements
from shared.contracts.health import ExamKind, ExamStatus
from shared.kernel.clock import ClockDep
from shared.kernel.db import SessionDep
from shared.kernel.errors import check_district
from shared.web.app import SettingsDep
from shared.web.imports import ImportReport, Outcome, ndjson_body, read_lines, run_import
from shared.web.placement_client import PlacementClientDep
from shared.web.policy import Access, AccessDep, ProtectedField, v1_router
from shared.web.schemas import Limit, NameText, Offset

# Who may call what, and which rows each caller sees: shared/web/policy.py.
router = v1_router()


async def _exams_out(session: AsyncSession, access: Access, exams: list[Examination]) -> list[schemas.ExaminationOut]:
    """A protected child's `provider` (the clinic, which can reveal where the child lives) is
    null unless the policy grants it (shared/web/policy.py, PROTECTED_FIELDS)."""
    protected = await protected_placements(session, placement_view, {e.placement_id for e in exams})
    out = []
    for exam in exams:
        item = schemas.ExaminationOut.model_validate(exam)
        if exam.placement_id in protected and not access.sees(ProtectedField.provider):
            item.provider = None
        out.append(item)
    return out


def _step(step: ExaminationStatus) -> schemas.StatusOut:
    return schemas.StatusOut.model_validate(step)


async def _detail(session: AsyncSession, access: Access, exam: Examination) -> schemas.ExaminationDetail:
    [out] = await _exams_out(session, access, [exam])
    steps = [schemas.StatusOut.model_validate(s) for s in await service.history(session, exam.id)]
    return schemas.ExaminationDetail(**out.model_dump(), history=steps)


@router.post(
    "/examinations",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ExaminationDetail,
    tags=["examinations"],
)
async def create_examination(
    body: schemas.ExaminationCreate,
    session: SessionDep,
    client: PlacementClientDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.ExaminationDetail:
    """Record a health or dental examination: a booking (today or later), or an outcome that
    already happened (completed, declined or missed, not in the future)."""
    # Read unlocked; the write locks the placement and writes only if it is still as read (writes.py).
    placement = await writes.read_placement(session, body)
    if placement is None:  # not seen on the bus yet: asked of the placement service
        exam = await service.create_examination(session, body, client=client, clock=clock, access=access)
        access.resource_id = str(exam.id)
        return await _detail(session, access, exam)
    exam, step = writes.record_examination(session, placement, body, clock=clock, access=access)
    access.resource_id = str(exam.id)
    return writes.detail(access, exam, [_step(step)], protected=is_protected(placement))


@router.post(
    "/examinations/{examination_id}/outcome",
    response_model=schemas.ExaminationDetail,
    tags=["examinations"],
)
async def record_outcome(
    examination_id: uuid.UUID,
    body: schemas.ExaminationOutcome,
    session: SessionDep,
    client: PlacementClientDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.ExaminationDetail:
    """A booked examination was completed, declined or missed."""
    read = await writes.read_examination(session, examination_id, access)
    if read is None or read.placement is None:  # its placement not in the local copy
        exam = await service.record_outcome(session, examination_id, body, client=client, clock=clock, access=access)
        return await _detail(session, access, exam)
    exam, step = writes.record_outcome(session, read, body, clock=clock)
    return writes.detail(access, exam, [*read.history, _step(step)], protected=is_protected(read.placement))


@router.post(
    "/examinations/{examination_id}/rebook",
    response_model=schemas.ExaminationDetail,
    tags=["examinations"],
)
async def rebook(
    examination_id: uuid.UUID,
    body: schemas.ExaminationRebook,
    session: SessionDep,
    client: PlacementClientDep,
    clock: ClockDep,
    access: AccessDep,
) -> schemas.ExaminationDetail:
    """Book a declined or missed examination again, or move a booked one to a new date.
    The history keeps the earlier statuses."""
    read = await writes.read_examination(session, examination_id, access)
    if read is None or read.placement is None:  # its placement not in the local copy
        exam = await service.rebook(session, examination_id, body, client=client, clock=clock, access=access)
        return await _detail(session, access, exam)
    exam, step = writes.rebook(session, read, body, clock=clock)
    return writes.detail(access, exam, [*read.history, _step(step)], protected=is_protected(read.placement))


@router.get(
    "/examinations/{examination_id}",
    response_model=schemas.ExaminationDetail,
    tags=["examinations"],
)
async def get_examination(
    examination_id: uuid.UUID, session: SessionDep, access: AccessDep
) -> schemas.ExaminationDetail:
    exam = await service.get_examination(session, examination_id)
    access.check(exam.district, "examination")
    return await _detail(session, access, exam)


@router.get("/examinations", response_model=schemas.ExaminationPage, tags=["examinations"])
async def list_examinations(
    session: SessionDep,
    settings: SettingsDep,
    access: AccessDep,
    placement_id: uuid.UUID | None = None,
    child_id: uuid.UUID | None = None,
    district: Annotated[NameText | None, Query()] = None,
    kind: ExamKind | None = None,
    status: ExamStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.ExaminationPage:
    if district is not None:
        check_district(settings.districts, district, "query.district")
    stmt = service.list_query(
        placement_id=placement_id, child_id=child_id, district=district, kind=kind, status=status
    ).where(access.list_filter(district, Examination.district))
    items, total = await service.list_examinations(session, stmt, limit=limit, offset=offset)
    return schemas.ExaminationPage(
        items=await _exams_out(session, access, items), total=total, limit=limit, offset=offset
    )


@router.post(
    "/imports",
    response_model=ImportReport,
    tags=["imports"],
    openapi_extra=ndjson_body(imports.ExaminationImportLine),
)
async def import_examinations(
    request: Request, session: SessionDep, client: PlacementClientDep, clock: ClockDep, access: AccessDep
) -> ImportReport:
    """Bulk import (application/x-ndjson): one examination per line, with the fields of
    `POST /v1/examinations`, the case system's `external_id`, and its placement by `placement_id` or
    by `placement_external_id` (the external_id the placement was imported with). Each line is
    all-or-nothing and reported as created, unchanged (re-sending a file changes nothing) or refused
    (field and reason). Imports have their own rate limit."""
    lines = await read_lines(request)

    async def apply(line: imports.ExaminationImportLine) -> Outcome:
        return await imports.import_examination(session, line, client=client, clock=clock, access=access)

    return await run_import(session, lines, imports.ExaminationImportLine, apply)
