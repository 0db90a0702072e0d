"""HTTP routes of the health service. Thin: the rules live in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.health import schemas, service
from services.health.events import ExamKind, ExamStatus
from services.health.models import Examination
from shared.app import SettingsDep, v1_router
from shared.auth import Role, require_roles
from shared.clock import ClockDep
from shared.db import SessionDep
from shared.errors import invalid
from shared.placement_view import PlacementClient

router = v1_router()

# The full access model (district scoping, protected fields) arrives with issue 7; until
# then these role gates keep the obviously wrong callers out.
WRITE = require_roles(Role.admin, Role.caseworker, Role.health_staff, Role.service)
READ = require_roles(Role.admin, Role.caseworker, Role.district_manager, Role.health_staff, Role.service)


def _placement_client(request: Request) -> PlacementClient:
    client: PlacementClient = request.app.state.placement_client
    return client


PlacementClientDep = Annotated[PlacementClient, Depends(_placement_client)]


async def _detail(session: AsyncSession, exam: Examination) -> schemas.ExaminationDetail:
    out = schemas.ExaminationOut.model_validate(exam)
    steps = [schemas.StatusOut.model_validate(s) for s in await service.history(session, exam.id)]
    return schemas.ExaminationDetail(**out.model_dump(), history=steps)


@router.post(
    "/examinations",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ExaminationDetail,
    tags=["examinations"],
    dependencies=[WRITE],
)
async def create_examination(
    body: schemas.ExaminationCreate, session: SessionDep, client: PlacementClientDep, clock: ClockDep
) -> schemas.ExaminationDetail:
    """Record a health or dental examination: a booking (today or later), or an outcome that
    already happened (completed, declined or missed, not in the future)."""
    exam = await service.create_examination(session, body, client=client, clock=clock)
    return await _detail(session, exam)


@router.post(
    "/examinations/{examination_id}/outcome",
    response_model=schemas.ExaminationDetail,
    tags=["examinations"],
    dependencies=[WRITE],
)
async def record_outcome(
    examination_id: uuid.UUID,
    body: schemas.ExaminationOutcome,
    session: SessionDep,
    client: PlacementClientDep,
    clock: ClockDep,
) -> schemas.ExaminationDetail:
    """A booked examination was completed, declined or missed."""
    exam = await service.record_outcome(session, examination_id, body, client=client, clock=clock)
    return await _detail(session, exam)


@router.post(
    "/examinations/{examination_id}/rebook",
    response_model=schemas.ExaminationDetail,
    tags=["examinations"],
    dependencies=[WRITE],
)
async def rebook(
    examination_id: uuid.UUID,
    body: schemas.ExaminationRebook,
    session: SessionDep,
    client: PlacementClientDep,
    clock: ClockDep,
) -> schemas.ExaminationDetail:
    """Book a declined or missed examination again, or move a booked one to a new date.
    The history keeps the earlier statuses."""
    exam = await service.rebook(session, examination_id, body, client=client, clock=clock)
    return await _detail(session, exam)


@router.get(
    "/examinations/{examination_id}",
    response_model=schemas.ExaminationDetail,
    tags=["examinations"],
    dependencies=[READ],
)
async def get_examination(examination_id: uuid.UUID, session: SessionDep) -> schemas.ExaminationDetail:
    return await _detail(session, await service.get_examination(session, examination_id))


@router.get("/examinations", response_model=schemas.ExaminationPage, tags=["examinations"], dependencies=[READ])
async def list_examinations(
    session: SessionDep,
    settings: SettingsDep,
    placement_id: uuid.UUID | None = None,
    child_id: uuid.UUID | None = None,
    district: str | None = None,
    kind: ExamKind | None = None,
    status: ExamStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    # Bounded so that a huge offset is a 422, not a bigint overflow in the database.
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> schemas.ExaminationPage:
    if district is not None and district not in settings.districts:
        raise invalid("query.district", "unknown district")
    stmt = service.list_query(placement_id=placement_id, child_id=child_id, district=district, kind=kind, status=status)
    items, total = await service.list_examinations(session, stmt, limit=limit, offset=offset)
    return schemas.ExaminationPage(
        items=[schemas.ExaminationOut.model_validate(e) for e in items], total=total, limit=limit, offset=offset
    )
