"""What a matched child's enrolments do to the school records.

An enrolment at a school unit (of a school type that means school), starting on or after the
placement's start and the last school end, becomes a school start with that unit's code and
date once the date has come; a later `endDate` (inclusive in SS 12000) becomes a school end the
day after; a cancelled enrolment, or one the source no longer lists, withdraws the start it made
(a school end on the start's own day). Every write goes through services.school.service, so
checks, events, outbox and notify behave as for a caseworker's record.

When a start is already open (typed by a caseworker, or from another source) the one recorded
first stands: the enrolment is kept as `agrees` (same day and unit) or `superseded`, which with
the records themselves is the history of the child's starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.school import schemas, service
from services.school.models import SchoolStart
from services.school.ss12000.client import Enrolment
from services.school.ss12000.matching import Awaiting
from services.school.ss12000.models import SourceEnrolment
from services.school.ss12000.settings import SourceConfig
from shared.bus.placement_copy import PlacementClient
from shared.contracts.school import SchoolEndReason
from shared.kernel.clock import Clock
from shared.kernel.errors import Problem
from shared.web.auth import Principal, Role
from shared.web.policy import Access, Scope

# Outcomes after which nothing the source says changes the records any more. A superseded
# enrolment is looked at again: once the start that stood is withdrawn (a caseworker's
# correction), the source's may become the start.
SETTLED = ("ended", "withdrawn", "ignored")
# Outcomes a changed enrolment re-opens for another look.
REOPENED_BY_CHANGE = ("ignored",)


def intake_access(source: SourceConfig) -> Access:
    """The intake writes as a system of its own, audited under the source's provenance."""
    principal = Principal(subject=source.provenance, roles=frozenset({Role.service}))
    return Access(principal=principal, rule=None, scopes=frozenset({Scope.all}))


def _relevant(source: SourceConfig, enrolments: Sequence[Enrolment]) -> dict[tuple[uuid.UUID, date], Enrolment]:
    """The enrolments that can mean school, one per unit and start day (a pupil is often enrolled
    in grundskola and fritidshem at one unit from one day; only the first counts). Others are
    dropped here and never stored."""
    out: dict[tuple[uuid.UUID, date], Enrolment] = {}
    for e in enrolments:
        if e.schoolType not in source.school_types:
            continue
        if source.organisations is not None and e.enroledAt.id not in source.organisations:
            continue
        key = (e.enroledAt.id, e.startDate)
        if key not in out or (out[key].cancelled and not e.cancelled):
            out[key] = e
    return out


def _unit_code(e: Enrolment, units: dict[uuid.UUID, str | None]) -> str | None:
    code = units.get(e.enroledAt.id)
    return code if code is not None and len(code) == 8 and code.isascii() and code.isdigit() else None


async def store_person(
    session: AsyncSession,
    source: SourceConfig,
    placements: Sequence[Awaiting],
    enrolments: Sequence[Enrolment],
    modified: datetime | None,
    units: dict[uuid.UUID, str | None],
) -> None:
    """Keep a matched child's enrolments as the source now lists them, under each placement."""
    relevant = _relevant(source, enrolments)
    for placement in placements:
        existing = {
            (r.enroled_at, r.start_date): r
            for r in await session.scalars(
                select(SourceEnrolment).where(
                    SourceEnrolment.source == source.name, SourceEnrolment.placement_id == placement.placement_id
                )
            )
        }
        for key, e in relevant.items():
            code = _unit_code(e, units)
            row = existing.get(key)
            if row is None:
                row = SourceEnrolment(
                    id=uuid.uuid4(),
                    source=source.name,
                    placement_id=placement.placement_id,
                    child_id=placement.child_id,
                    enroled_at=e.enroledAt.id,
                    start_date=e.startDate,
                    outcome="pending",
                )
                session.add(row)
            elif row.outcome in REOPENED_BY_CHANGE and (row.end_date, row.cancelled, row.school_unit_code) != (
                e.endDate,
                e.cancelled,
                code,
            ):
                row.outcome, row.reason = "pending", None
            row.school_type, row.school_unit_code = e.schoolType, code
            row.end_date, row.cancelled, row.modified_at = e.endDate, e.cancelled, modified
            if code is None and row.outcome == "pending":
                row.outcome, row.reason = "ignored", "no-school-unit-code"
        for key, row in existing.items():
            if key not in relevant and not row.cancelled:
                # Gone from the person's enrolments: the school took it back.
                row.cancelled, row.modified_at = True, modified
    await session.flush()


async def settle_placement(
    session: AsyncSession,
    source: SourceConfig,
    placement_id: uuid.UUID,
    *,
    client: PlacementClient,
    clock: Clock,
) -> int:
    """Apply this source's unsettled enrolments of one placement, oldest first; how many records
    were written."""
    rows = (
        await session.scalars(
            select(SourceEnrolment)
            .where(
                SourceEnrolment.source == source.name,
                SourceEnrolment.placement_id == placement_id,
                SourceEnrolment.outcome.not_in(SETTLED),
            )
            .order_by(SourceEnrolment.start_date)
            # Two replicas settling the same placement take turns, and the second sees what the
            # first made of each row.
            .with_for_update()
        )
    ).all()
    written = 0
    access = intake_access(source)
    for row in rows:
        try:
            async with session.begin_nested():
                written += await _settle(session, source, row, client=client, clock=clock, access=access)
        except Problem as problem:
            if problem.status >= 500:
                raise  # the placement service unreachable: tried again at the next sync
            # Refused by the school rules (before the placement or the last school end, after
            # the placement ended, the placement unknown): kept, with the rule's name.
            await session.refresh(row)
            row.outcome, row.reason = "ignored", problem.type
    return written


async def _settle(
    session: AsyncSession,
    source: SourceConfig,
    row: SourceEnrolment,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
) -> int:
    today = clock.today()
    if row.outcome in ("pending", "superseded"):
        if row.cancelled:
            row.outcome, row.reason = "withdrawn", f"cancelled while {row.outcome}"
            return 0
        if row.start_date > today:
            return 0  # not yet: looked at again at every sync until the day comes
        return await _start(session, source, row, client=client, clock=clock, access=access)
    # recorded (the start is the source's) or agrees (a caseworker's, confirmed by the source)
    start = await session.get(SchoolStart, row.school_start_id) if row.school_start_id else None
    if start is None:
        row.outcome, row.reason = "ignored", "start-missing"
        return 0
    if row.cancelled:
        if row.outcome == "agrees":
            # Only a start the source made is withdrawn by it; a caseworker's stays theirs.
            row.outcome, row.reason = "withdrawn", "cancelled; the caseworker's start stands"
            return 0
        return await _end(
            session,
            source,
            row,
            start,
            start.start_date,
            SchoolEndReason.other,
            "withdrawn",
            client=client,
            clock=clock,
            access=access,
        )
    if row.end_date is not None and row.end_date + timedelta(days=1) <= today:
        return await _end(
            session,
            source,
            row,
            start,
            row.end_date + timedelta(days=1),
            SchoolEndReason.left,
            "ended",
            client=client,
            clock=clock,
            access=access,
        )
    return 0


async def _start(
    session: AsyncSession,
    source: SourceConfig,
    row: SourceEnrolment,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
) -> int:
    assert row.school_unit_code is not None
    open_start = await session.scalar(
        select(SchoolStart).where(SchoolStart.placement_id == row.placement_id, SchoolStart.end_date.is_(None))
    )
    if open_start is not None:
        agrees = open_start.start_date == row.start_date and open_start.school_unit_code == row.school_unit_code
        row.outcome = "agrees" if agrees else "superseded"
        row.reason = None if agrees else f"open start by {open_start.provenance}"
        row.school_start_id = open_start.id
        return 0
    body = schemas.SchoolStartCreate(
        placement_id=row.placement_id, start_date=row.start_date, school_unit_code=row.school_unit_code
    )
    start = await service.create_start(
        session, body, client=client, clock=clock, access=access, provenance=source.provenance
    )
    row.outcome, row.reason, row.school_start_id = "recorded", None, start.id
    return 1


async def _end(
    session: AsyncSession,
    source: SourceConfig,
    row: SourceEnrolment,
    start: SchoolStart,
    end_date: date,
    reason: SchoolEndReason,
    outcome: str,
    *,
    client: PlacementClient,
    clock: Clock,
    access: Access,
) -> int:
    if start.end_date is not None:
        row.outcome, row.reason = outcome, "already-ended"
        return 0
    body = schemas.SchoolEndCreate(placement_id=row.placement_id, end_date=end_date, reason=reason)
    end = await service.create_end(
        session, body, client=client, clock=clock, access=access, provenance=source.provenance
    )
    row.outcome, row.reason, row.school_end_id = outcome, None, end.id
    return 1
