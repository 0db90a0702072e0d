"""The placement service's reports, computed in its database (see shared/web/reports.py for the
period, suppression and format rules they share).

- Placed children: children placed at some time during the period, by district and form: the
  city's yearly table. A placement covers [start_date, end_date) (one that starts and ends on
  the same day covers that day); it counts when that range shares a day with the period. A
  child counts once per cell (by the district and form of the placement), so a child placed in
  two forms is in two cells of its row. `total` is the city's: the plain sum of the shown cells
  (a child in two cells counts twice); `children` counts the distinct children of those cells.
- Placement endings: placements whose end_date (the day the child left) falls in the period, by
  district and end reason.
- Long temporary placements: temporary placements under way on a day that had by then run
  longer than `temporary_placement_max_days`.

Column order of the placed-children table follows the city's table (§12-hem, HVB, jourhem,
familjehem, skyddat boende, stödboende), not the order of PlacementForm, so that the CSV lines
up with the tables the city already publishes.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Date, case, func, literal, select
from sqlalchemy.dialects.postgresql import DATERANGE
from sqlalchemy.ext.asyncio import AsyncSession

from services.placement.models import Child, Placement
from shared.contracts.placement import Duration, EndReason
from shared.contracts.vocabulary import PlacementForm
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings
from shared.web.reports import (
    HIDDEN,
    TOTAL,
    Cell,
    Crosstab,
    Hits,
    Period,
    Report,
    ReportTable,
    Suppression,
    crosstab,
)

FORM_COLUMNS: tuple[str, ...] = (
    PlacementForm.sis,
    PlacementForm.hvb,
    PlacementForm.jourhem,
    PlacementForm.familjehem,
    PlacementForm.skyddat_boende,
    PlacementForm.stodboende,
)
END_REASON_COLUMNS: tuple[str, ...] = tuple(r.value for r in EndReason)
LONG_TEMPORARY = "long_temporary"


# --- rows -----------------------------------------------------------------------------------


class PlacedChildrenRow(BaseModel):
    district: str = Field(description="A configured district, or `total` on the last row.")
    sis: Cell
    hvb: Cell
    jourhem: Cell
    familjehem: Cell
    skyddat_boende: Cell
    stodboende: Cell
    total: int = Field(description="The plain sum of this row's shown cells (the city's convention).")
    children: int = Field(description="Distinct children in this row's shown cells.")


class EndingsRow(BaseModel):
    district: str = Field(description="A configured district, or `total` on the last row.")
    care_plan: Cell = Field(description="Ended according to the care plan (enligt vårdplan).")
    turned_18: Cell
    custody_transferred: Cell = Field(description="Custody transferred to the foster parents.")
    adoption: Cell
    breakdown: Cell
    moved: Cell = Field(description="Ended by a move to another placement.")
    other: Cell
    total: int = Field(description="Ended placements in this row's shown cells.")


class LongTemporaryRow(BaseModel):
    district: str = Field(description="A configured district, or `total` on the last row.")
    long_temporary: Cell = Field(
        description="Temporary placements under way on the day that had run longer than the bound."
    )


class PlacedChildrenReport(Report[PlacedChildrenRow]):
    pass


class EndingsReport(Report[EndingsRow]):
    pass


class LongTemporaryReport(Report[LongTemporaryRow]):
    on: date = Field(description="The day the placements were under way.")
    max_days: int = Field(description="The configured bound (temporary_placement_max_days).")


# --- queries --------------------------------------------------------------------------------


# Whom a cell counts: the person, not a district's record of the child. Each district keeps its
# own record (models.Child), so a child two districts know is one person in the city's figures.
PERSON = Child.personnummer


def _rows(settings: Settings, district: str | None) -> list[str]:
    return [district] if district is not None else list(settings.districts)


def placed_children_hits(period: Period) -> Hits:
    # A placement covers [start_date, end_date); one that starts and ends on the same day
    # covers that day (the child was placed, if only for the day).
    bounds = case((Placement.end_date == Placement.start_date, literal("[]")), else_=literal("[)"))
    covered = func.daterange(Placement.start_date, Placement.end_date, bounds, type_=DATERANGE)
    wanted = func.daterange(literal(period.from_, Date), literal(period.to, Date), literal("[]"), type_=DATERANGE)
    return (
        select(
            Placement.district.label("row_key"),
            Placement.form.label("col_key"),
            PERSON.label("unit"),
            PERSON.label("child"),
        )
        .join(Child, Child.id == Placement.child_id)
        .where(covered.op("&&")(wanted))
    )


async def placed_children(
    session: AsyncSession, period: Period, *, settings: Settings, clock: Clock, district: str | None = None
) -> PlacedChildrenReport:
    shape = Crosstab(row_label="district", rows=_rows(settings, district), columns=FORM_COLUMNS)
    suppression = Suppression.from_settings(settings)
    extracted_at = clock.now()
    rows = city_totals(await crosstab(session, placed_children_hits(period), shape, suppression))
    return PlacedChildrenReport(
        period=period,
        extracted_at=extracted_at,
        threshold=suppression.threshold,
        tables=[
            ReportTable[PlacedChildrenRow](
                name="placements",
                description="Children placed at some time during the period, by district and form.",
                columns=[*shape.header, CHILDREN],
                rows=[PlacedChildrenRow.model_validate(r) for r in rows],
            )
        ],
    )


CHILDREN = "children"


def city_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The city's table: each row's `total` is the plain sum of its shown cells, so a child placed
    in two forms counts twice there (Farsta 2020: 155); the crosstab's distinct children of those
    cells move to `children`. The total row's cells stay the crosstab's (each person once per
    column, however many districts hold a record of them); its `total` is the sum of those cells.
    Sums of shown cells only, so, as before, nothing behind a `*` enters a total."""
    out: list[dict[str, Any]] = []
    for row in rows:
        shown = [row[c] for c in FORM_COLUMNS if row[c] != HIDDEN]
        out.append({**row, TOTAL: sum(shown), CHILDREN: row[TOTAL]})
    return out


def endings_hits(period: Period) -> Hits:
    return (
        select(
            Placement.district.label("row_key"),
            Placement.end_reason.label("col_key"),
            Placement.id.label("unit"),
            PERSON.label("child"),
        )
        .join(Child, Child.id == Placement.child_id)
        .where(Placement.end_date.between(period.from_, period.to))
    )


async def endings(
    session: AsyncSession, period: Period, *, settings: Settings, clock: Clock, district: str | None = None
) -> EndingsReport:
    shape = Crosstab(row_label="district", rows=_rows(settings, district), columns=END_REASON_COLUMNS)
    suppression = Suppression.from_settings(settings)
    extracted_at = clock.now()
    rows = await crosstab(session, endings_hits(period), shape, suppression)
    return EndingsReport(
        period=period,
        extracted_at=extracted_at,
        threshold=suppression.threshold,
        tables=[
            ReportTable[EndingsRow](
                name="placement_endings",
                description="Placements that ended during the period (end_date in it), by district and end reason.",
                columns=shape.header,
                rows=[EndingsRow.model_validate(r) for r in rows],
            )
        ],
    )


def long_temporary_hits(on: date, started_before: date) -> Hits:
    return (
        select(
            Placement.district.label("row_key"),
            literal(LONG_TEMPORARY).label("col_key"),
            Placement.id.label("unit"),
            PERSON.label("child"),
        )
        .join(Child, Child.id == Placement.child_id)
        .where(
            Placement.duration == Duration.temporary.value,
            Placement.start_date < started_before,
            # Under way on `on`: the placement covers [start_date, end_date).
            Placement.end_date.is_(None) | (Placement.end_date > on),
        )
    )


def long_temporary_cutoff(on: date, max_days: int) -> date | None:
    """Placements that started before this day have run more than max_days on `on`; None when
    no representable day is that early (then none has)."""
    try:
        return on - timedelta(days=max_days)
    except OverflowError:
        return None


async def long_temporary(
    session: AsyncSession, on: date, *, settings: Settings, clock: Clock, district: str | None = None
) -> LongTemporaryReport:
    shape = Crosstab(row_label="district", rows=_rows(settings, district), columns=(LONG_TEMPORARY,), row_totals=False)
    suppression = Suppression.from_settings(settings)
    extracted_at = clock.now()
    cutoff = long_temporary_cutoff(on, settings.temporary_placement_max_days)
    hits = long_temporary_hits(on, cutoff if cutoff is not None else date.min)
    rows = await crosstab(session, hits, shape, suppression)
    return LongTemporaryReport(
        period=Period.of(on, on),
        on=on,
        max_days=settings.temporary_placement_max_days,
        extracted_at=extracted_at,
        threshold=suppression.threshold,
        tables=[
            ReportTable[LongTemporaryRow](
                name="long_temporary_placements",
                description=(
                    f"Temporary placements under way on {on.isoformat()} that had run longer than "
                    f"{settings.temporary_placement_max_days} days, by district."
                ),
                columns=shape.header,
                rows=[LongTemporaryRow.model_validate(r) for r in rows],
            )
        ],
    )
