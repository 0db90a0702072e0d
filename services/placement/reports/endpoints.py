"""HTTP routes of the placement reports. Thin: the queries live in tables.py, the period,
suppression and format rules in shared/web/reports.py and report_routes.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import Response

from services.placement.reports import tables as reports
from shared.kernel.clock import ClockDep
from shared.kernel.db import SessionDep
from shared.web.app import SettingsDep
from shared.web.policy import v1_router
from shared.web.report_routes import TAGS, FormatDep, add_period_report, report_responses, respond
from shared.web.reports import FORMAT_DOC, SUPPRESSION_DOC, DistrictDep
from shared.web.schemas import Day

router = v1_router()


PLACEMENTS_CSV = (
    "district,sis,hvb,jourhem,familjehem,skyddat_boende,stodboende,total,children\r\n"
    "Rinkeby-Kista,25,57,115,94,*,35,326,318\r\n"
    "Spånga-Tensta,17,31,75,56,0,25,204,199\r\n"
    "…\r\n"
    "total,97,307,817,622,8,193,2044,1990\r\n"
)
ENDINGS_CSV = (
    "district,care_plan,turned_18,custody_transferred,adoption,breakdown,moved,other,total\r\n"
    "Farsta,12,9,*,0,5,31,4,61\r\n"
    "…\r\n"
)
LONG_TEMPORARY_CSV = "district,long_temporary\r\nFarsta,6\r\nBromma,*\r\n…\r\ntotal,48\r\n"


add_period_report(
    router,
    "/reports/placements",
    reports.placed_children,
    name="placements_report",
    response_model=reports.PlacedChildrenReport,
    csv_example=PLACEMENTS_CSV,
    summary="Children placed during a period, by district and form",
    description=(
        "Children placed at some time during the period (a placement covers "
        "`[start_date, end_date)` and counts when it shares a day with `[from, to]`), by the "
        "district and form of the placement (one that starts and ends on the same day counts on that day). "
        "A child counts once per cell; a child placed in two forms counts in both cells. `total` is the "
        "city's: the plain sum of the row's (or column's) shown cells, so such a child counts twice there; "
        "`children` counts the distinct children of the shown cells. Columns follow the city's table: "
        "sis (§12-hem), hvb, jourhem, familjehem, skyddat_boende, stodboende.\n\n"
        f"{SUPPRESSION_DOC}\n\n{FORMAT_DOC}"
    ),
)


add_period_report(
    router,
    "/reports/placement-endings",
    reports.endings,
    name="endings_report",
    response_model=reports.EndingsReport,
    csv_example=ENDINGS_CSV,
    summary="Placements that ended during a period, by district and end reason",
    description=(
        "Placements whose end date (the day the child left) lies in `[from, to]`, by district and "
        "end reason; `care_plan` counts those that ended according to the care plan. A cell counts "
        "placements but is hidden when they belong to fewer children than the threshold.\n\n"
        f"{SUPPRESSION_DOC}\n\n{FORMAT_DOC}"
    ),
)


@router.get(
    "/reports/long-temporary-placements",
    response_model=reports.LongTemporaryReport,
    responses=report_responses(LONG_TEMPORARY_CSV),
    tags=TAGS,
    summary="Temporary placements that have run past the configured bound, by district",
    description=(
        "Temporary (tillfällig) placements under way on `on` that had by then run longer than "
        "`temporary_placement_max_days` days (default 183, six months, the usual outer bound; "
        "configurable with OBRUTEN_TEMPORARY_PLACEMENT_MAX_DAYS). The report's period is the one "
        "day `on`.\n\n"
        f"{SUPPRESSION_DOC}\n\n{FORMAT_DOC}"
    ),
)
async def long_temporary_report(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    district: DistrictDep,
    fmt: FormatDep,
    on: Annotated[Day | None, Query(description="The day to look at (YYYY-MM-DD); today when omitted.")] = None,
) -> Response:
    day = on if on is not None else clock.today()
    report = await reports.long_temporary(session, day, settings=settings, clock=clock, district=district)
    return respond(report, fmt)
