"""The examination writes in one statement after an unlocked read (as services/placement/writes.py).

The placement (and, for a change, the examination) is read without a lock on a session whose
statements each commit on their own, and the rules of service.py are checked against what was
read. Then one statement (shared/kernel/writes.py) locks the placement, and the examination if it
is changed, in that order (as service.py takes them), re-checks that they are still as read, and
writes the examination, its history row, its event and the request's audit row. A placement or
examination changed in between writes nothing and the request runs again (`Changed`).

An open booking that appeared in between is caught by the unique index of one open booking per
placement and kind: the statement fails whole and the answer is the same 409 as when it was read.

A placement not in the local copy yet goes the way of service.py: it is asked of the placement
service and stored only together with the write, in one transaction (a refused request keeps
nothing, not even the copy).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.health import schemas, service
from services.health.models import Examination, ExaminationStatus, outbox, placement_view
from shared.bus.placement_copy import is_protected, placement_not_found
from shared.contracts.health import ExamKind, ExamStatus
from shared.kernel.clock import Clock
from shared.kernel.errors import not_found
from shared.kernel.writes import OnError, defer, defer_new, defer_update, guard
from shared.web.policy import Access, ProtectedField

exam_t: Table = Examination.__table__  # type: ignore[assignment]
status_t: Table = ExaminationStatus.__table__  # type: ignore[assignment]
# The open booking of the examination's kind, other than the examination itself.
_open = exam_t.alias("open_booking")
# A literal, so that the condition is the partial index's own (ux_examination_open_booking).
_BOOKED: ColumnElement[str] = literal_column(f"'{ExamStatus.booked.value}'")
_OPEN = (_open.c.id.label("open_id"), _open.c.date.label("open_date"))
# What a history step answers (schemas.StatusOut).
_STEP = ("status", "date", "recorded_at")

PLACEMENT_FOR_CREATE: Select[Any] = (
    select(*placement_view.c, *_OPEN)
    .select_from(placement_view)
    .outerjoin(
        _open,
        and_(
            _open.c.placement_id == placement_view.c.placement_id,
            _open.c.kind == bindparam("kind"),
            _open.c.status == _BOOKED,
        ),
    )
    .where(placement_view.c.placement_id == bindparam("id"))
)


def _history(column: Any) -> Any:
    """One column of the examination's history, oldest first, as an array."""
    ordered = aggregate_order_by(column, status_t.c.id)
    return (
        select(func.array_agg(ordered, type_=ARRAY(column.type)))
        .where(status_t.c.examination_id == exam_t.c.id)
        .scalar_subquery()
        .label(f"h_{column.name}")
    )


# The examination, its placement (columns as in the copy), its kind's other open booking and its
# history, in one read; the examination's own columns are prefixed x_, its history's h_.
EXAM_FOR_CHANGE: Select[Any] = (
    select(
        *(c.label(f"x_{c.name}") for c in exam_t.c),
        *placement_view.c,
        *_OPEN,
        *(_history(status_t.c[c]) for c in _STEP),
    )
    .select_from(exam_t)
    .outerjoin(placement_view, placement_view.c.placement_id == exam_t.c.placement_id)
    .outerjoin(
        _open,
        and_(
            _open.c.placement_id == exam_t.c.placement_id,
            _open.c.kind == exam_t.c.kind,
            _open.c.status == _BOOKED,
            _open.c.id != exam_t.c.id,
        ),
    )
    .where(exam_t.c.id == bindparam("id"))
)

# The placement as read (its copy changes only with its version), locked for the statement.
PLACEMENT_AS_READ: Select[Any] = (
    select(literal_column("1"))
    .select_from(placement_view)
    .where(
        placement_view.c.placement_id == bindparam("g_placement"), placement_view.c.version == bindparam("g_version")
    )
    .with_for_update()
)

# The placement and the examination as read, both locked, the placement first (FROM order).
EXAM_AS_READ: Select[Any] = (
    select(literal_column("1"))
    .select_from(placement_view)
    .join(exam_t, exam_t.c.placement_id == placement_view.c.placement_id)
    .where(
        placement_view.c.placement_id == bindparam("g_placement"),
        placement_view.c.version == bindparam("g_version"),
        exam_t.c.id == bindparam("g_id"),
        exam_t.c.status == bindparam("g_status"),
        exam_t.c.date == bindparam("g_date"),
        exam_t.c.booked_date.is_not_distinct_from(bindparam("g_booked_date", type_=exam_t.c.booked_date.type)),
        exam_t.c.provider.is_not_distinct_from(bindparam("g_provider", type_=exam_t.c.provider.type)),
        exam_t.c.updated_at == bindparam("g_updated_at"),
    )
    .with_for_update()
)


async def _autocommit(session: AsyncSession) -> Any:
    return await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


async def read_placement(session: AsyncSession, body: schemas.ExaminationCreate) -> RowMapping | None:
    """The placement with its open booking of `body.kind` (open_id, open_date), unlocked; None
    when the local copy does not have it, and then the session is back to one transaction."""
    conn = await _autocommit(session)
    row: RowMapping | None = (
        (await conn.execute(PLACEMENT_FOR_CREATE, {"id": body.placement_id, "kind": body.kind.value}))
        .mappings()
        .first()
    )
    if row is None:
        # Nothing was written; a new connection, in a transaction, for service.py's way.
        await session.rollback()
    return row


def _booking_refused(
    placement_id: uuid.UUID, kind: ExamKind, *, field: str, ignore: uuid.UUID | None = None
) -> OnError:
    """The answer to the statement failing on the one open booking per kind: as when read."""

    async def refused(session: AsyncSession, exc: DBAPIError) -> BaseException | None:
        if not isinstance(exc, IntegrityError):
            return None
        # The failed statement was its own transaction: this reads what made it fail.
        found = (await session.execute(service.open_booking_query(placement_id, kind, ignore))).first()
        if found is None:
            return service.another_booking(field)
        return service.booking_open(kind, found.id, found.date, field=field)

    return refused


def record_examination(
    session: AsyncSession, placement: RowMapping, body: schemas.ExaminationCreate, *, clock: Clock, access: Access
) -> tuple[Examination, ExaminationStatus]:
    """A new examination of `placement` (from `read_placement`) and its first history step, sent
    with the request's other rows at its end, provided the placement is still as read."""
    access.check(placement["district"], placement_not_found("body.placement_id"), protected=is_protected(placement))
    service.check_date(placement, body.status, body.date, clock=clock, field="body.date")
    if body.status is ExamStatus.booked and placement["open_id"] is not None:
        raise service.booking_open(body.kind, placement["open_id"], placement["open_date"], field="body.kind")
    exam = service.new_examination(placement, body, external_id=None)
    guard(session, PLACEMENT_AS_READ, {"g_placement": placement["placement_id"], "g_version": placement["version"]})
    defer_new(session, exam, _booking_refused(exam.placement_id, body.kind, field="body.kind"))
    return exam, _announce(session, exam, clock=clock)


def _announce(session: AsyncSession, exam: Examination, *, clock: Clock) -> ExaminationStatus:
    """The examination's current status appended to its history, and its event (service._record)."""
    step = ExaminationStatus(examination_id=exam.id, status=exam.status, date=exam.date, recorded_at=clock.now())
    defer(session, status_t, {c: getattr(step, c) for c in ("examination_id", *_STEP)})
    etype, data = service.event_of(exam)
    outbox.add_deferred(session, etype, subject=str(exam.child_id), data=data, time=clock.now())
    return step


class Read:
    """An examination as read for a change: the record, its placement, its kind's other open
    booking and its history; None for the placement when the local copy lacks it."""

    def __init__(self, row: RowMapping) -> None:
        self.exam = Examination(**{c.key: row[f"x_{c.name}"] for c in exam_t.c})
        self.placement: RowMapping | None = row if row["version"] is not None else None
        self.open_id: uuid.UUID | None = row["open_id"]
        self.open_date = row["open_date"]
        self.history = [
            schemas.StatusOut(status=status, date=day, recorded_at=at)
            for status, day, at in zip(*(row[f"h_{c}"] or () for c in _STEP), strict=True)
        ]
        self.guard_params = {
            "g_placement": self.exam.placement_id,
            "g_version": row["version"],
            "g_id": self.exam.id,
            **{f"g_{c}": getattr(self.exam, c) for c in ("status", "date", "booked_date", "provider", "updated_at")},
        }


async def read_examination(session: AsyncSession, examination_id: uuid.UUID, access: Access) -> Read | None:
    """The examination for a change, unlocked, after the checks service.py makes first; None
    when its placement is not in the local copy (the session is then back to one transaction)."""
    conn = await _autocommit(session)
    row = (await conn.execute(EXAM_FOR_CHANGE, {"id": examination_id})).mappings().first()
    if row is None:
        raise not_found("examination")
    access.check(row["x_district"], "examination")
    if row["version"] is None:
        await session.rollback()
        return None
    access.check(row["district"], placement_not_found("body.placement_id"), protected=is_protected(row))
    return Read(row)


def _change(session: AsyncSession, read: Read, values: dict[str, Any], on_error: OnError | None = None) -> None:
    exam = read.exam
    # As defer_new sets a new record's: the answer is built before the row is sent.
    exam.updated_at = datetime.now(UTC)
    for column, value in values.items():
        setattr(exam, column, value)
    guard(session, EXAM_AS_READ, read.guard_params)
    defer_update(session, exam_t, {"id": exam.id}, {**values, "updated_at": exam.updated_at}, on_error)


def record_outcome(
    session: AsyncSession, read: Read, body: schemas.ExaminationOutcome, *, clock: Clock
) -> tuple[Examination, ExaminationStatus]:
    assert read.placement is not None
    service.check_outcome(read.exam, read.placement, body, clock=clock)
    _change(session, read, {"status": body.status.value, "date": body.date})
    return read.exam, _announce(session, read.exam, clock=clock)


def rebook(
    session: AsyncSession, read: Read, body: schemas.ExaminationRebook, *, clock: Clock
) -> tuple[Examination, ExaminationStatus]:
    assert read.placement is not None
    exam = read.exam
    service.check_rebook(exam, read.placement, body, clock=clock)
    kind = ExamKind(exam.kind)
    if read.open_id is not None:
        raise service.booking_open(kind, read.open_id, read.open_date, field="body.date")
    service.apply_rebook(exam, body)
    values = {c: getattr(exam, c) for c in ("status", "date", "booked_date", "provider")}
    _change(session, read, values, _booking_refused(exam.placement_id, kind, field="body.date", ignore=exam.id))
    return exam, _announce(session, exam, clock=clock)


def detail(
    access: Access, exam: Examination, history: list[schemas.StatusOut], *, protected: bool
) -> schemas.ExaminationDetail:
    """The answer, from what was read and written (endpoints._detail, without reading again)."""
    out = schemas.ExaminationDetail.model_validate(
        {**schemas.ExaminationOut.model_validate(exam).model_dump(), "history": history}
    )
    if protected and not access.sees(ProtectedField.provider):
        out.provider = None
    return out
