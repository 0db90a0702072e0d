"""The one row-level list under /v1/reports/: a district's own school-start follow-up, one row per
placement, as the monthly file the districts sent in (not suppressed; shared/web/policy.py's
`report_rows` decides who reads it). Built on the same placements as the aggregates (tables.py)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.school.reports.tables import Status, placements_base
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings
from shared.web.reports import Period, Report, ReportTable


class SchoolStartListRow(BaseModel):
    district: str
    form: str
    placement_date: date
    school_start_date: date | None = Field(description="The first school start; empty while none.")
    days: int = Field(
        description=(
            "Days from the placement to its first school start; while waiting, days so far (to the day of "
            "extraction); for one that ended without a start, days until it ended."
        )
    )
    status: Status
    planned: bool = Field(
        default=False, description="A school start is planned (recorded ahead of its day); it counts from that day."
    )
    planned_start_date: date | None = Field(default=None, description="The planned start's day, while it lies ahead.")


class SchoolStartListReport(Report[SchoolStartListRow]):
    as_of: date = Field(description="The day of extraction: waiting days are counted to it.")


async def school_start_list(
    session: AsyncSession, period: Period, district: str, *, settings: Settings, clock: Clock
) -> SchoolStartListReport:
    extracted_at, today = clock.now(), clock.today()
    b = placements_base(period, today, [district])
    stmt = select(
        b.c.district,
        b.c.form,
        b.c.placement_date,
        b.c.first_start.label("school_start_date"),
        func.coalesce(b.c.days, b.c.wait_days, b.c.end_date - b.c.placement_date).label("days"),
        b.c.status,
        b.c.planned_start.is_not(None).label("planned"),
        b.c.planned_start.label("planned_start_date"),
    ).order_by(b.c.placement_date, b.c.form, b.c.placement_id)
    rows = [SchoolStartListRow.model_validate(dict(rec)) for rec in (await session.execute(stmt)).mappings()]
    return SchoolStartListReport(
        period=period,
        as_of=today,
        extracted_at=extracted_at,
        threshold=settings.report_suppress_below,
        suppression="none: a row-level list for the district's own follow-up, not for publication",
        tables=[
            ReportTable[SchoolStartListRow](
                name="school_start_list",
                description="One row per placement with a change of school that began in the period.",
                columns=list(SchoolStartListRow.model_fields),
                rows=rows,
            )
        ],
    )
