"""The school-start statistic broken down: by placement form, and by whether the child is
placed inside or outside the municipality (the most common reason the seven-day goal is missed,
seed 001). The population is exactly what the district table's total covers (tables.py), so the
two totals are equal and neither table can be subtracted from the other to uncover a hidden
district.

A group (a form, or inside / outside / unknown) under the threshold is not hidden on its own
(that leaves the hidden value as total minus shown groups): its row is `*` and its children are
in the row `other_forms` (`merged` in the location table), to which the smallest groups are
added until that row is over the threshold, so that no single group's figures can be computed.

Inside or outside: from the placement events' `outside_municipality`. For a protected child the
events carry null (a protected field), so its placement is `unknown`, together with those where
it was not recorded: counting protected children apart would tell where they are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy import ColumnElement, Subquery, case, func, literal, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from services.school.reports.tables import (
    FIGURES,
    FORMS,
    LOCATIONS,
    OTHER_FORMS,
    SchoolStartsByFormReport,
    SchoolStartsByFormRow,
    _by_district,
    _conditions,
    _Figures,
    _figures,
    _rows,
    _Shown,
    _total,
    placements_base,
)
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings
from shared.web.reports import HIDDEN, TOTAL, Period, Report, ReportTable, Suppression

MERGED = "merged"


class SchoolStartsByMunicipalityRow(_Figures):
    location: str = Field(description="`inside` or `outside` the municipality, `unknown`, `merged`, or `total`.")


class SchoolStartsByMunicipalityReport(Report[SchoolStartsByMunicipalityRow]):
    as_of: date = Field(description="The day of extraction: waiting days are counted to it.")


def _unsafe(rec: RowMapping, suppression: Suppression) -> bool:
    return any(suppression.hides(int(rec[k])) for k in ("children", "timed_children", "waiting_children"))


async def _form_groups(
    session: AsyncSession,
    b: Subquery,
    shown: _Shown,
    merged: Sequence[str],
    key: str = "form",
    merged_label: str = OTHER_FORMS,
) -> tuple[dict[str, RowMapping], RowMapping | None]:
    """Figures per group of `key` (the merged ones as one group) and their total."""
    column: ColumnElement[Any] = b.c[key]
    grp = case((column.in_(list(merged)), literal(merged_label)), else_=column) if merged else column
    # The label is computed once below and grouped by name: GROUPING() must see the very
    # expression ROLLUP groups by, which a CASE with its own bound parameters would not be.
    labelled = select(b, grp.label("grp")).where(_conditions(b, shown)["counted"]).subquery("labelled")
    stmt = select(
        labelled.c.grp,
        func.grouping(labelled.c.grp).label("is_total"),
        *_figures(labelled, **_conditions(labelled, shown)),
    ).group_by(func.rollup(labelled.c.grp))
    recs = list((await session.execute(stmt)).mappings())
    groups = {rec["grp"]: rec for rec in recs if not rec["is_total"]}
    return groups, next((rec for rec in recs if rec["is_total"]), None)


async def _breakdown(
    session: AsyncSession,
    b: Subquery,
    shown: _Shown,
    suppression: Suppression,
    key: str,
    keys: Sequence[str],
    label: str,
) -> list[dict[str, Any]]:
    """The rows of a breakdown by `key`: each of `keys`, the merged row `label`, the total."""
    groups, total = await _form_groups(session, b, shown, [], key, label)
    merged = [k for k in keys if k in groups and _unsafe(groups[k], suppression)]
    if merged:
        # The rest, smallest first: added one by one while the merged group is itself under the
        # threshold. Its distinct children are counted afresh each time (a child can be in two
        # groups). The loop ends safe: all groups together are the district table's total, whose
        # groups are each empty or over the threshold.
        rest = sorted(
            (k for k in keys if k in groups and k not in merged),
            key=lambda k: (int(groups[k]["children"]), keys.index(k)),
        )
        groups, total = await _form_groups(session, b, shown, merged, key, label)
        while _unsafe(groups[label], suppression) and rest:
            merged.append(rest.pop(0))
            groups, total = await _form_groups(session, b, shown, merged, key, label)
    table: list[dict[str, Any]] = []
    for group in (*keys, label):
        if group in merged:
            table.append({key: group, **dict.fromkeys(FIGURES, HIDDEN)})
        else:
            # Every group shown here is over the threshold; _total() passes it through.
            table.append({key: group, **_total(groups.get(group))})
    table.append({key: TOTAL, **_total(total)})
    return table


async def school_starts_by_form(
    session: AsyncSession, period: Period, *, settings: Settings, clock: Clock, district: str | None = None
) -> SchoolStartsByFormReport:
    suppression = Suppression.from_settings(settings)
    extracted_at, today = clock.now(), clock.today()
    districts = _rows(settings, district)
    b = placements_base(period, today, districts)
    _, shown = await _by_district(session, b, districts, suppression)
    table = await _breakdown(session, b, shown, suppression, "form", FORMS, OTHER_FORMS)
    return SchoolStartsByFormReport(
        period=period,
        as_of=today,
        extracted_at=extracted_at,
        threshold=suppression.threshold,
        tables=[
            ReportTable[SchoolStartsByFormRow](
                name="school_starts_by_form",
                description=(
                    "The placements the school-start report's total covers, by form; forms under the threshold "
                    f"are `*` and counted together in `{OTHER_FORMS}`."
                ),
                columns=["form", *FIGURES],
                rows=[SchoolStartsByFormRow.model_validate(r) for r in table],
            )
        ],
    )


async def school_starts_by_municipality(
    session: AsyncSession, period: Period, *, settings: Settings, clock: Clock, district: str | None = None
) -> SchoolStartsByMunicipalityReport:
    suppression = Suppression.from_settings(settings)
    extracted_at, today = clock.now(), clock.today()
    districts = _rows(settings, district)
    b = placements_base(period, today, districts)
    _, shown = await _by_district(session, b, districts, suppression)
    table = await _breakdown(session, b, shown, suppression, "location", LOCATIONS, MERGED)
    return SchoolStartsByMunicipalityReport(
        period=period,
        as_of=today,
        extracted_at=extracted_at,
        threshold=suppression.threshold,
        tables=[
            ReportTable[SchoolStartsByMunicipalityRow](
                name="school_starts_by_municipality",
                description=(
                    "The placements the school-start report's total covers, by whether the child is placed inside "
                    "or outside the municipality (`unknown`: not recorded, or a protected child); groups under the "
                    f"threshold are `*` and counted together in `{MERGED}`."
                ),
                columns=["location", *FIGURES],
                rows=[SchoolStartsByMunicipalityRow.model_validate(r) for r in table],
            )
        ],
    )
