"""HTTP routes of the school reports. Thin: the queries live in tables.py, the period,
suppression and format rules in shared/web/reports.py and report_routes.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import Response

from services.school.reports import breakdown, rows
from services.school.reports import tables as reports
from shared.kernel.clock import ClockDep
from shared.kernel.db import SessionDep
from shared.web.app import SettingsDep
from shared.web.policy import AccessDep, v1_router
from shared.web.report_routes import TAGS, FormatDep, add_period_report, report_responses, respond
from shared.web.reports import FORMAT_DOC, SUPPRESSION_DOC, PeriodDep, district_query
from shared.web.schemas import NameText

router = v1_router()

# Who reads what: shared/web/policy.py. The aggregates are `report` (every reporting role, any
# district); the row-level list is `report_rows`: the caller's own district only, and not
# central_analyst.

_HEADER = ",".join(reports.FIGURES)
SCHOOL_STARTS_CSV = (
    f"district,{_HEADER}\r\n"
    "Farsta,5,4,1,0,4,2,50.0,7.5,12,12,*\r\n"
    "Bromma,*,*,*,*,*,*,*,*,*,*,*\r\n"
    "…\r\n"
    "total,5,4,1,0,4,2,50.0,7.5,12,12,\r\n"
)
BY_FORM_CSV = (
    f"form,{_HEADER}\r\n"
    "sis,*,*,*,*,*,*,*,*,*,*,*\r\n"
    "hvb,*,*,*,*,*,*,*,*,*,*,*\r\n"
    "jourhem,12,10,2,0,10,6,60.0,6.5,14,14,\r\n"
    "…\r\n"
    "other_forms,5,4,1,0,4,2,50.0,7.5,12,12,\r\n"
    "total,…\r\n"
)
LIST_CSV = (
    "district,form,placement_date,school_start_date,days,status,planned,planned_start_date\r\n"
    "Farsta,jourhem,2025-07-01,2025-07-04,3,started,False,\r\n"
    "Farsta,hvb,2025-07-20,,43,waiting,True,2025-09-08\r\n"
)

_COLUMNS_DOC = (
    "Placements that mean a change of school (`school_change`) and began in `[from, to]` (and by the day of "
    "extraction), by the placement's district: `began`; `started` (a school start is recorded, whenever it "
    "came); `waiting` (under way on the day of extraction without one); `ended_without_start`. Days run from "
    "the placement's start to its first school start: `timed` placements, `within_7_days` (days ≤ 7) and its "
    "percentage, `median_days` (percentile_cont), `p90_days` (percentile_disc: at least 90 % started within "
    "it) and `max_days`; `longest_wait_days` is the longest wait so far, counted to the day of extraction "
    "(`as_of`). In the CSV an empty cell is null (no value: an empty group), and decimals "
    "have a point.\n\n"
    "**Groups.** A row is `*` throughout when its placements belong to 1 to threshold - 1 children. The day "
    "statistics are `*` when the children who started are that few, `longest_wait_days` when the children "
    "waiting are. The `total` row covers only the shown districts, and each statistic in it only the "
    "districts where that statistic is shown."
)


add_period_report(
    router,
    "/reports/school-starts",
    reports.school_starts,
    name="school_starts_report",
    response_model=reports.SchoolStartsReport,
    csv_example=SCHOOL_STARTS_CSV,
    summary="Days from placement to school start, by district (the monthly school-start statistic)",
    description=f"{_COLUMNS_DOC}\n\n{SUPPRESSION_DOC}\n\n{FORMAT_DOC}",
)


add_period_report(
    router,
    "/reports/school-starts/by-form",
    breakdown.school_starts_by_form,
    name="school_starts_by_form_report",
    response_model=reports.SchoolStartsByFormReport,
    csv_example=BY_FORM_CSV,
    summary="The school-start statistic by placement form",
    description=(
        "The placements `/v1/reports/school-starts` totals (its shown districts; with `district`, that "
        "district's), by form, with the same columns. Its `total` row equals that report's. A form whose "
        "placements belong to 1 to threshold - 1 children (or whose started or waiting children are that few) "
        "is `*` and counted in `other_forms`, together with the smallest other forms until that row is over "
        "the threshold: hiding one form alone would leave it as the total minus the shown forms.\n\n"
        f"{_COLUMNS_DOC}\n\n{SUPPRESSION_DOC}\n\n{FORMAT_DOC}"
    ),
)


BY_MUNICIPALITY_CSV = (
    f"location,{_HEADER}\r\n"
    "inside,12,10,2,0,10,8,80.0,4.5,9,9,\r\n"
    "outside,6,4,2,0,4,1,25.0,11.0,19,19,\r\n"
    "unknown,*,*,*,*,*,*,*,*,*,*,*\r\n"
    "merged,…\r\n"
    "total,…\r\n"
)


add_period_report(
    router,
    "/reports/school-starts/by-municipality",
    breakdown.school_starts_by_municipality,
    name="school_starts_by_municipality_report",
    response_model=breakdown.SchoolStartsByMunicipalityReport,
    csv_example=BY_MUNICIPALITY_CSV,
    summary="The school-start statistic by placement inside or outside the municipality",
    description=(
        "The placements `/v1/reports/school-starts` totals, by whether the child is placed `inside` or `outside` "
        "the municipality (the placement's `outside_municipality`), with the same columns. `unknown`: not "
        "recorded, or a protected child (for whom it is a protected field, never published in events: counted "
        "with the unrecorded so that nothing tells where a protected child is not). Small groups are `*` and "
        "counted in `merged`, as small forms are in the by-form report.\n\n"
        f"{_COLUMNS_DOC}\n\n{SUPPRESSION_DOC}\n\n{FORMAT_DOC}"
    ),
)


@router.get(
    "/reports/school-starts/rows",
    response_model=rows.SchoolStartListReport,
    responses=report_responses(LIST_CSV),
    tags=TAGS,
    summary="One row per placement: the district's own school-start follow-up (not for central_analyst)",
    description=(
        "The placements behind a district's row of `/v1/reports/school-starts`, one row each, like the monthly "
        "file the districts sent in: district, form, placement date, first school start date (empty while "
        "none), days (to the school start; while waiting, so far, to the day of extraction; for one that "
        "ended without a start, until it ended), status, and `planned` with `planned_start_date` while a school start "
        "is planned ahead (it counts from its day). No personnummer, no school unit. Row-level, so "
        "not suppressed, and refused to `central_analyst`.\n\n"
        "**Formats.** JSON by default; `Accept: text/csv` gives the list as CSV (UTF-8, header row, one row per "
        "placement, dates as YYYY-MM-DD, an empty school start date while none), with the same "
        "`X-Obruten-Period` and `X-Obruten-Extracted-At` headers as the reports."
    ),
)
async def school_start_list(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    period: PeriodDep,
    district: Annotated[NameText, Query(description="The district whose placements to list.")],
    fmt: FormatDep,
    access: AccessDep,
) -> Response:
    await district_query(settings, district)
    access.require_district(district)
    report = await rows.school_start_list(session, period, district, settings=settings, clock=clock)
    return respond(report, fmt)
