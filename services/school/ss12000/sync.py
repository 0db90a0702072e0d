"""One sync of one source: read its whole change set, keep what matched, move the position.

The position (the newest `meta.modified` read) moves in the same transaction that stores the
matched enrolments, and only once every page of the change set has been read: a source that
fails on page 7 of 9 is asked again from the old position, and re-reading is harmless because
storing an enrolment is idempotent. Every sync, failed or not, leaves an `ss12000_sync` row and a
row in the service's audit trail naming it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.school.models import audit
from services.school.ss12000.client import Enrolment, SourceClient, parse_person
from services.school.ss12000.matching import Awaiting, Matcher
from services.school.ss12000.models import SourceEnrolment, SourceState, SyncRun
from services.school.ss12000.recording import SETTLED, settle_placement, store_person
from services.school.ss12000.settings import SourceConfig
from shared.bus.placement_copy import PlacementClient
from shared.kernel.clock import Clock

log = logging.getLogger("obruten.school.ss12000")


@dataclass
class ChangeSet:
    """What one sync read: counts, the newest change, and the matched persons only."""

    pages: int = 0
    entities: int = 0
    malformed: int = 0
    newest: datetime | None = None
    matched: list[tuple[list[Awaiting], list[Enrolment], datetime | None]] = field(default_factory=list)


@dataclass
class SyncResult:
    outcome: str
    change_set: ChangeSet
    error: str | None = None
    written: int = 0
    position: datetime | None = None


async def read_change_set(client: SourceClient, matcher: Matcher, after: datetime | None) -> ChangeSet:
    cs = ChangeSet()
    async for page in client.changed_persons(after):
        cs.pages += 1
        for entity in page:
            cs.entities += 1
            person = parse_person(entity)
            if person is None:
                cs.malformed += 1
                continue
            modified = person.meta.modified if person.meta else None
            if modified is not None:
                modified = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
                cs.newest = modified if cs.newest is None else max(cs.newest, modified)
            placements = matcher.match(person.civicNo.value if person.civicNo else None)
            if placements:
                cs.matched.append((placements, person.enrolments, modified))
            # Anyone else ends here: nothing of them outlives this loop.
    return cs


async def _state(session: AsyncSession, name: str) -> SourceState:
    state = await session.get(SourceState, name, with_for_update=True)
    if state is None:
        state = SourceState(name=name, consecutive_failures=0)
        session.add(state)
        await session.flush()
    return state


async def _audit(session: AsyncSession, source: SourceConfig, run: SyncRun) -> None:
    await session.execute(
        insert(audit).values(
            subject=source.provenance,
            roles=["service"],
            district=None,
            action="read",
            resource_type="ss12000_sync",
            resource_id=str(run.id),
            method="SYNC",
            route="ss12000:/persons",
            status=200 if run.outcome == "ok" else 502,
            outcome="allowed" if run.outcome == "ok" else "failed",
        )
    )


def _run(source: SourceConfig, started: datetime, cs: ChangeSet, before: datetime | None, **kw: Any) -> SyncRun:
    return SyncRun(
        id=uuid.uuid4(),
        source=source.name,
        started_at=started,
        finished_at=datetime.now(UTC),
        pages=cs.pages,
        entities=cs.entities,
        matches=len(cs.matched),
        malformed=cs.malformed,
        position_before=before,
        **kw,
    )


async def record_failure(
    sessionmaker: async_sessionmaker[AsyncSession], source: SourceConfig, started: datetime, cs: ChangeSet, kind: str
) -> None:
    async with sessionmaker() as session, session.begin():
        state = await _state(session, source.name)
        state.last_attempt_at, state.last_error = started, kind
        state.consecutive_failures += 1
        run = _run(source, started, cs, state.position, outcome="failed", error=kind, position_after=state.position)
        session.add(run)
        await session.flush()
        await _audit(session, source, run)


async def record_success(
    sessionmaker: async_sessionmaker[AsyncSession],
    source: SourceConfig,
    started: datetime,
    cs: ChangeSet,
    units: dict[uuid.UUID, str | None],
    before: datetime | None,
) -> datetime | None:
    """Store the matched enrolments and move the position, together; the new position."""
    async with sessionmaker() as session, session.begin():
        state = await _state(session, source.name)
        if state.position != before:
            # Another replica synced this source meanwhile; its position stands, this read is
            # still stored (idempotent) but does not move the position backwards.
            before = state.position
        for placements, enrolments, modified in cs.matched:
            await store_person(session, source, placements, enrolments, modified, units)
        if cs.newest is not None and (state.position is None or cs.newest > state.position):
            state.position = cs.newest
        state.last_attempt_at = state.last_success_at = started
        state.last_error, state.consecutive_failures = None, 0
        run = _run(source, started, cs, before, outcome="ok", error=None, position_after=state.position)
        session.add(run)
        await session.flush()
        await _audit(session, source, run)
        return state.position


async def position_of(sessionmaker: async_sessionmaker[AsyncSession], name: str) -> datetime | None:
    async with sessionmaker() as session:
        return await session.scalar(select(SourceState.position).where(SourceState.name == name))


async def settle_source(
    sessionmaker: async_sessionmaker[AsyncSession],
    source: SourceConfig,
    *,
    client: PlacementClient,
    clock: Clock,
    after_commit: Callable[[AsyncSession], None] | None,
) -> int:
    """Apply every unsettled enrolment of this source, one placement per transaction so that one
    placement's trouble (its service unreachable, a lock) never holds up another's."""
    async with sessionmaker() as session:
        placement_ids = (
            await session.scalars(
                select(SourceEnrolment.placement_id)
                .where(SourceEnrolment.source == source.name, SourceEnrolment.outcome.not_in(SETTLED))
                .distinct()
            )
        ).all()
    written = 0
    for placement_id in placement_ids:
        try:
            async with sessionmaker() as session:
                async with session.begin():
                    n = await settle_placement(session, source, placement_id, client=client, clock=clock)
                written += n
                if after_commit is not None:
                    after_commit(session)  # the service's commit hooks: the relay wakes for the events
        except Exception as exc:
            # Retried at the next sync; the placement id is not personal data, the error type is enough.
            log.warning(
                "could not apply an enrolment",
                extra={"source": source.name, "placement_id": str(placement_id), "error": type(exc).__name__},
            )
    return written
