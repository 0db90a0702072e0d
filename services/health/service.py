"""Health rules: what may be recorded about a placed child's health and dental examinations,
and the events each change announces.

An examination moves booked → completed | declined | missed. A declined or missed one can be
booked again (`rebook`, same examination, its history keeps the earlier outcome); a booked
one can be moved to a new date the same way. A completed one is final. An outcome recorded
without a booking (`POST /v1/examinations` with status completed) is an examination too.

Dates: every date lies within the placement ([start_date, end_date)). A booking is for today
or later, at most MAX_BOOKING_AHEAD_DAYS ahead: a booking dated in the past has either
happened or not, so what happened is recorded as its outcome instead, and a past booking
would make an overdue examination look on track. An outcome is dated today or earlier.

Functions take the request's session and never commit: the caller's transaction holds the
record and its outbox row together.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.health import schemas
from services.health.models import Examination, ExaminationStatus, outbox, placement_view
from shared.bus.placement_copy import PlacementClient, placement_for_write
from shared.contracts.envelope import EventType
from shared.contracts.health import (
    EXAM_BOOKED,
    EXAM_COMPLETED,
    EXAM_DECLINED,
    EXAM_MISSED,
    ExaminationEvent,
    ExamKind,
    ExamStatus,
)
from shared.kernel.clock import Clock
from shared.kernel.errors import Problem, invalid, not_found
from shared.web.policy import Access

# A booking further ahead than this is refused as a typing error.
MAX_BOOKING_AHEAD_DAYS = 366

EVENT_FOR_STATUS: dict[ExamStatus, EventType] = {
    ExamStatus.booked: EXAM_BOOKED,
    ExamStatus.completed: EXAM_COMPLETED,
    ExamStatus.declined: EXAM_DECLINED,
    ExamStatus.missed: EXAM_MISSED,
}


def check_date(placement: RowMapping, status: ExamStatus, day: dt.date, *, clock: Clock, field: str) -> None:
    start: dt.date = placement["start_date"]
    end: dt.date | None = placement["end_date"]
    if day < start:
        raise invalid(field, f"before the placement started ({start})")
    if end is not None and day >= end:
        raise invalid(field, f"on or after the placement ended ({end})")
    today = clock.today()
    if status is ExamStatus.booked:
        if day < today:
            raise invalid(
                field,
                "a booking is for today or later; record an examination that has already happened "
                "as completed, declined or missed",
            )
        if day > today + dt.timedelta(days=MAX_BOOKING_AHEAD_DAYS):
            raise invalid(field, f"more than {MAX_BOOKING_AHEAD_DAYS} days ahead")
    elif day > today:
        raise invalid(field, f"in the future; record a {status.value} examination when it has happened")


def booking_open(kind: ExamKind, open_id: uuid.UUID, open_date: dt.date, *, field: str) -> Problem:
    """The answer to a second booking of a kind while one is open."""
    return Problem(
        409,
        "booking-open",
        "Examination already booked",
        f"A {kind.value} examination is already booked for {open_date}; record its outcome or move it "
        f"(POST /v1/examinations/{open_id}/outcome or /rebook) instead.",
        field=field,
        open_examination_id=str(open_id),
    )


def open_booking_query(
    placement_id: uuid.UUID, kind: ExamKind, ignore: uuid.UUID | None = None
) -> Select[uuid.UUID, dt.date]:
    stmt = select(Examination.id, Examination.date).where(
        Examination.placement_id == placement_id,
        Examination.kind == kind.value,
        Examination.status == ExamStatus.booked.value,
    )
    if ignore is not None:
        stmt = stmt.where(Examination.id != ignore)
    return stmt.limit(1)


async def _refuse_second_booking(
    session: AsyncSession, placement_id: uuid.UUID, kind: ExamKind, *, field: str, ignore: uuid.UUID | None = None
) -> None:
    open_booking = (await session.execute(open_booking_query(placement_id, kind, ignore))).first()
    if open_booking is not None:
        raise booking_open(kind, open_booking.id, open_booking.date, field=field)


def another_booking(field: str) -> Problem:
    # Only reachable if a writer bypassed the placement lock; the unique index still holds.
    return Problem(
        409, "booking-open", "Examination already booked", "Another booking of this kind is open.", field=field
    )


async def _flush(session: AsyncSession, *, field: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise another_booking(field) from exc


def event_of(exam: Examination) -> tuple[EventType, ExaminationEvent]:
    """The event announcing the examination's current status."""
    status = ExamStatus(exam.status)
    # No provider: a clinic can reveal where a child lives.
    data = ExaminationEvent(
        examination_id=exam.id,
        placement_id=exam.placement_id,
        child_id=exam.child_id,
        district=exam.district,
        kind=ExamKind(exam.kind),
        status=status,
        booked_date=exam.booked_date,
        date=exam.date,
    )
    return EVENT_FOR_STATUS[status], data


async def _record(session: AsyncSession, exam: Examination, *, clock: Clock) -> None:
    """Append the examination's current status to its history and announce it."""
    session.add(ExaminationStatus(examination_id=exam.id, status=exam.status, date=exam.date, recorded_at=clock.now()))
    etype, data = event_of(exam)
    await outbox.add(session, etype, subject=str(exam.child_id), data=data, time=clock.now())


async def create_examination(
    session: AsyncSession,
    body: schemas.ExaminationCreate,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
    external_id: str | None = None,
) -> Examination:
    placement = await placement_for_write(session, placement_view, client, body.placement_id, access)
    check_date(placement, body.status, body.date, clock=clock, field="body.date")
    if body.status is ExamStatus.booked:
        await _refuse_second_booking(session, body.placement_id, body.kind, field="body.kind")
    exam = new_examination(placement, body, external_id=external_id)
    session.add(exam)
    await _flush(session, field="body.kind")
    await _record(session, exam, clock=clock)
    await session.flush()
    return exam


def new_examination(placement: RowMapping, body: schemas.ExaminationCreate, *, external_id: str | None) -> Examination:
    return Examination(
        id=uuid.uuid4(),
        placement_id=placement["placement_id"],
        child_id=placement["child_id"],
        district=placement["district"],
        kind=body.kind.value,
        status=body.status.value,
        date=body.date,
        booked_date=body.date if body.status is ExamStatus.booked else None,
        provider=body.provider,
        external_id=external_id,
    )


async def _examination_for_write(
    session: AsyncSession, client: PlacementClient, examination_id: uuid.UUID, access: Access
) -> tuple[Examination, RowMapping]:
    exam = await session.scalar(select(Examination).where(Examination.id == examination_id))
    if exam is None:
        raise not_found("examination")
    access.check(exam.district, "examination")
    # Placement first, then the examination: the same lock order as create_examination.
    placement = await placement_for_write(session, placement_view, client, exam.placement_id, access)
    locked = await session.scalar(
        select(Examination)
        .where(Examination.id == examination_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    return locked, placement


async def record_outcome(
    session: AsyncSession,
    examination_id: uuid.UUID,
    body: schemas.ExaminationOutcome,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
) -> Examination:
    exam, placement = await _examination_for_write(session, client, examination_id, access)
    check_outcome(exam, placement, body, clock=clock)
    exam.status = body.status.value
    exam.date = body.date
    await session.flush()
    await _record(session, exam, clock=clock)
    await session.flush()
    return exam


def check_outcome(exam: Examination, placement: RowMapping, body: schemas.ExaminationOutcome, *, clock: Clock) -> None:
    """The rules an outcome of `exam` must meet (a Problem naming the field when it does not)."""
    if exam.status == ExamStatus.completed.value:
        raise Problem(
            409,
            "examination-completed",
            "Examination already completed",
            f"It was completed on {exam.date}; a completed examination is final.",
            field="body.status",
        )
    if exam.status != ExamStatus.booked.value:
        raise Problem(
            409,
            "not-booked",
            "Examination not booked",
            f"It was {exam.status} on {exam.date}; book it again (POST /v1/examinations/{exam.id}/rebook) first.",
            field="body.status",
        )
    status = ExamStatus(body.status.value)
    check_date(placement, status, body.date, clock=clock, field="body.date")
    if status is ExamStatus.missed and exam.booked_date is not None and body.date < exam.booked_date:
        raise invalid("body.date", f"before the booked date ({exam.booked_date}); it cannot have been missed yet")


async def rebook(
    session: AsyncSession,
    examination_id: uuid.UUID,
    body: schemas.ExaminationRebook,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
) -> Examination:
    exam, placement = await _examination_for_write(session, client, examination_id, access)
    check_rebook(exam, placement, body, clock=clock)
    await _refuse_second_booking(session, exam.placement_id, ExamKind(exam.kind), field="body.date", ignore=exam.id)
    apply_rebook(exam, body)
    await _flush(session, field="body.date")
    await _record(session, exam, clock=clock)
    await session.flush()
    return exam


def check_rebook(exam: Examination, placement: RowMapping, body: schemas.ExaminationRebook, *, clock: Clock) -> None:
    """The rules a rebooking of `exam` must meet, but the one open booking per kind."""
    if exam.status == ExamStatus.completed.value:
        raise Problem(
            409,
            "examination-completed",
            "Examination already completed",
            f"It was completed on {exam.date}; record a new examination (POST /v1/examinations) instead.",
            field="body.date",
        )
    check_date(placement, ExamStatus.booked, body.date, clock=clock, field="body.date")


def apply_rebook(exam: Examination, body: schemas.ExaminationRebook) -> None:
    exam.status = ExamStatus.booked.value
    exam.date = body.date
    exam.booked_date = body.date
    if body.provider is not None:
        exam.provider = body.provider


async def get_examination(session: AsyncSession, examination_id: uuid.UUID) -> Examination:
    exam = await session.scalar(select(Examination).where(Examination.id == examination_id))
    if exam is None:
        raise not_found("examination")
    return exam


async def history(session: AsyncSession, examination_id: uuid.UUID) -> Sequence[ExaminationStatus]:
    rows = await session.scalars(
        select(ExaminationStatus)
        .where(ExaminationStatus.examination_id == examination_id)
        .order_by(ExaminationStatus.id)
    )
    return rows.all()


def list_query(
    *,
    placement_id: uuid.UUID | None,
    child_id: uuid.UUID | None,
    district: str | None,
    kind: ExamKind | None,
    status: ExamStatus | None,
) -> Select[Examination]:
    stmt = select(Examination)
    if placement_id is not None:
        stmt = stmt.where(Examination.placement_id == placement_id)
    if child_id is not None:
        stmt = stmt.where(Examination.child_id == child_id)
    if district is not None:
        stmt = stmt.where(Examination.district == district)
    if kind is not None:
        stmt = stmt.where(Examination.kind == kind.value)
    if status is not None:
        stmt = stmt.where(Examination.status == status.value)
    return stmt


async def list_examinations(
    session: AsyncSession, stmt: Select[Examination], *, limit: int, offset: int
) -> tuple[list[Examination], int]:
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await session.scalars(stmt.order_by(Examination.date.desc(), Examination.id).limit(limit).offset(offset))
    return list(rows.all()), int(total or 0)
