"""The local copy of placements that school, health and notify keep from `obruten.placement`.

Each consuming service owns its copy (a table in its own database). Events carry the whole
placement with a version; an upsert keeps the highest version, so duplicates and late
events change nothing. When a request names a placement not yet seen on the bus, the
service asks the placement service over HTTP and stores the same snapshot.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import httpx
from sqlalchemy import Boolean, Column, Date, DateTime, Integer, MetaData, Table, Text, Uuid, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from shared.bus.batch import BatchHandler, by_column, newest, unnest
from shared.bus.inbox import event_data
from shared.contracts.envelope import CloudEvent
from shared.contracts.placement import PlacementSnapshot
from shared.contracts.vocabulary import PlacementForm
from shared.kernel.errors import Problem
from shared.kernel.settings import Settings
from shared.kernel.tracing import instrument_httpx


def placement_view_table(metadata: MetaData, *extra: Column[Any]) -> Table:
    """The copy's table; `extra` columns hold snapshot fields only this service keeps (school:
    `outside_municipality`), so the other services' tables need no migration for them."""
    return Table(
        "placement_view",
        metadata,
        Column("placement_id", Uuid, primary_key=True),
        Column("child_id", Uuid, nullable=False, index=True),
        Column("version", Integer, nullable=False),
        Column("district", Text, nullable=False),
        Column("form", Text, nullable=False),
        Column("start_date", Date, nullable=False),
        Column("end_date", Date),
        Column("end_reason", Text),
        Column("school_change", Boolean, nullable=False),
        Column("child_birth_date", Date, nullable=False),
        Column("protected_identity", Boolean, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        *extra,
    )


def _row(snapshot: PlacementSnapshot, table: Table) -> dict[str, object]:
    row: dict[str, object] = {
        "placement_id": snapshot.placement_id,
        "child_id": snapshot.child_id,
        "version": snapshot.version,
        "district": snapshot.district,
        "form": snapshot.form.value,
        "start_date": snapshot.start_date,
        "end_date": snapshot.end_date,
        "end_reason": snapshot.end_reason.value if snapshot.end_reason else None,
        "school_change": snapshot.school_change,
        "child_birth_date": snapshot.child_birth_date,
        "protected_identity": snapshot.protected_identity,
    }
    if "outside_municipality" in table.c:
        row["outside_municipality"] = None if snapshot.protected_identity else snapshot.outside_municipality
    if "external_id" in table.c:
        row["external_id"] = snapshot.external_id
    return row


def external_id_column() -> Column[Any]:
    """The extra column a copy needs to resolve import lines' `placement_external_id`."""
    return Column("external_id", Text, unique=True)


async def placement_by_external_id(session: AsyncSession, table: Table, external_id: str) -> uuid.UUID | None:
    found: uuid.UUID | None = await session.scalar(
        select(table.c.placement_id).where(table.c.external_id == external_id)
    )
    return found


async def upsert_placement(session: AsyncSession, table: Table, snapshot: PlacementSnapshot) -> bool:
    """Store the snapshot unless a newer version is already there; True when it was stored."""
    return bool(await upsert_placements(session, table, [snapshot]))


async def upsert_placements(
    session: AsyncSession, table: Table, snapshots: Sequence[PlacementSnapshot]
) -> set[uuid.UUID]:
    """Store each placement's newest snapshot of these, in one statement, unless a newer version
    is already on file; the placements stored. Duplicates and late versions change nothing."""
    rows = [_row(s, table) for s in newest(snapshots, key=lambda s: s.placement_id, version=lambda s: s.version)]
    if not rows:
        return set()
    statement, columns = _upsert_statement(table)
    stored = await session.execute(statement, by_column(rows, columns))
    return set(stored.scalars())


@functools.cache
def _upsert_statement(table: Table) -> tuple[Any, list[str]]:
    """Built once per table, so SQLAlchemy compiles it once (its text does not depend on the rows)."""
    columns = [c.name for c in table.c if c.name != "updated_at"]
    stmt = insert(table).from_select(columns, unnest(table, columns))
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.placement_id],
        set_={**{k: stmt.excluded[k] for k in columns if k != "placement_id"}, "updated_at": func.now()},
        where=table.c.version < stmt.excluded.version,
    ).returning(table.c.placement_id)
    return upsert, columns


async def protected_placements(session: AsyncSession, table: Table, placement_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these placements are a protected child's (protected identity or protected
    housing). One not (yet) in the local copy counts as protected: unsure means protected."""
    if not placement_ids:
        return set()
    rows = (await session.execute(select(table).where(table.c.placement_id.in_(placement_ids)))).mappings()
    open_ = {r["placement_id"] for r in rows if not is_protected(r)}
    return placement_ids - open_


async def get_placement_view(session: AsyncSession, table: Table, placement_id: uuid.UUID) -> RowMapping | None:
    return (await session.execute(select(table).where(table.c.placement_id == placement_id))).mappings().first()


class PlacementClient:
    """Asks the placement service for a placement, as the `service` role."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        token = settings.service_bearer()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(
            base_url=settings.placement_base_url(), headers=headers, timeout=httpx.Timeout(5.0), transport=transport
        )
        # Client spans, and the caller's traceparent sent on, so placement's span joins the trace.
        instrument_httpx(self.http)

    async def fetch(self, placement_id: uuid.UUID) -> PlacementSnapshot | None:
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(httpx.TransportError),
                stop=stop_after_attempt(3),
                wait=wait_exponential_jitter(initial=0.1, max=1.0),
                reraise=True,
            ):
                with attempt:
                    resp = await self.http.get(f"/v1/placements/{placement_id}/snapshot")
        except httpx.TransportError as exc:
            raise Problem(
                503,
                "placement-service-unavailable",
                "Placement service unavailable",
                "The placement is not known here yet and the placement service did not answer; retry later.",
            ) from exc
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise Problem(
                502,
                "placement-service-error",
                "Placement service error",
                f"The placement service answered {resp.status_code} when asked for the placement.",
            )
        return PlacementSnapshot.model_validate(resp.json())

    async def close(self) -> None:
        await self.http.aclose()


def placement_not_found(field: str) -> Problem:
    # Also the answer for a placement outside the caller's rows (shared/web/policy.py): the two
    # must not differ, or ids could be probed.
    return Problem(404, "not-found", "Placement not found", "No placement with that id.", field=field)


async def require_placement(
    session: AsyncSession, table: Table, client: PlacementClient, placement_id: uuid.UUID, *, field: str
) -> RowMapping:
    """The placement from the local copy, or from the placement service when not seen yet."""
    row = await get_placement_view(session, table, placement_id)
    if row is None:
        snapshot = await client.fetch(placement_id)
        if snapshot is None:
            raise placement_not_found(field)
        await upsert_placement(session, table, snapshot)
        row = await get_placement_view(session, table, placement_id)
        assert row is not None
    return row


AfterUpsert = Callable[[AsyncSession, CloudEvent, PlacementSnapshot], Awaitable[None]]


def placement_consumer(table: Table, after_upsert: AfterUpsert | None = None) -> BatchHandler:
    """The consumer handler of `obruten.placement` for a service keeping its copy in `table`:
    a batch's newest version of each placement in one statement. `after_upsert` runs in the same
    transaction for each placement whose newer version was stored (the school service recomputes
    what it derived from the placement's dates), with the event that brought that version."""

    async def apply_placement_events(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
        received = [(e, d) for e in events if isinstance(d := event_data(e), PlacementSnapshot)]
        stored = await upsert_placements(session, table, [snapshot for _, snapshot in received])
        if after_upsert is None or not stored:
            return
        for event, snapshot in newest(received, key=lambda r: r[1].placement_id, version=lambda r: r[1].version):
            if snapshot.placement_id in stored:
                await after_upsert(session, event, snapshot)

    return BatchHandler(apply_placement_events)


def is_protected(placement: RowMapping) -> bool:
    # The placement service already sets protected_identity for protected housing; the form
    # is checked too so that an older snapshot without that rule cannot leak a school.
    return bool(placement["protected_identity"]) or placement["form"] == PlacementForm.skyddat_boende.value


class RowCheck(Protocol):
    """What the request's access decision offers (shared.web.policy.Access.check)."""

    def check(self, district: str | None, what: str | Problem, *, protected: bool = False) -> None: ...


async def placement_for_write(
    session: AsyncSession, table: Table, client: PlacementClient, placement_id: uuid.UUID, access: RowCheck
) -> RowMapping:
    """The placement, locked: writes about one placement queue behind each other, so a
    service's checks see what the previous writer committed. 404 as for an unknown placement
    unless it is among the caller's rows (a protected child's only for the protected scope)."""
    await require_placement(session, table, client, placement_id, field="body.placement_id")
    stmt = select(table).where(table.c.placement_id == placement_id).with_for_update()
    row = (await session.execute(stmt)).mappings().one()
    access.check(row["district"], placement_not_found("body.placement_id"), protected=is_protected(row))
    return row
