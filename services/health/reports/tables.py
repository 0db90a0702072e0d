"""The health service's report: examination coverage of placed children, computed in its
database. shared/web/reports.py holds the period, suppression and format rules it shares.

Who is counted
    Placements in the health service's copy (`placement_view`) that began in the period (and by
    the day of extraction), by the placement's district. Began, not active: the deadlines run
    from the placement's start, so each placement belongs to the one period it began in; counting
    active placements would put a placement of three years into 36 monthly reports, each time
    judged on an examination due in its first month. An examination belongs to the placement it
    was recorded for, so a child placed twice in a period is counted twice, as notify's
    `health_exam_missing` rule alerts per placement.

Deadlines
    `report_health_exam_days` / `report_dental_exam_days` (default 30 calendar days, as notify's
    rules; services/health/settings.py) after the placement's start date. An examination is *in time*
    when it is completed (status `completed`) on or before that day. It is *outstanding* when no
    completed examination of that kind is recorded, the deadline day has passed (before the day
    of extraction), and the placement was still under way after it: the child was owed the
    examination and did not get it in time; a placement that ended before its deadline owes none.
    Notify can count working days (`working_days: true`); this report counts calendar days only.

Share
    `pct_both_in_time` is `both_in_time` as a percentage of `due`: the placements whose result is
    settled. A placement is not yet due while it is under way, not both examinations are done in
    time, and a deadline is still to come; these are counted in `placements` but not in `due`, so
    that the current month's share is not pulled down by children who still have time.

Suppression (the "statistics of groups" rule of shared/web/reports.py)
    A district row describes the group of placements that began there; its size is their
    distinct children. Fewer than the threshold (1-3 by default): the whole row is `*`. Every
    other figure is a count within that group, shown with it. The `total` row counts the shown
    district rows only.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Date, Numeric, Subquery, Text, and_, cast, func, literal, null, or_, select, true, union_all
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from services.health.models import Examination, placement_view
from services.health.settings import HealthSettings
from shared.contracts.health import ExamKind, ExamStatus
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings
from shared.web.reports import HIDDEN, TOTAL, Count, Period, Report, ReportTable, Statistic, Suppression


class ExaminationsRow(BaseModel):
    district: str = Field(description="A configured district, or `total` on the last row.")
    placements: Count = Field(description="Placements that began in the period.")
    due: Count = Field(description="Placements whose result is settled (see `pct_both_in_time`).")
    health_in_time: Count = Field(description="With a health examination completed within the deadline.")
    dental_in_time: Count = Field(description="With a dental examination completed within the deadline.")
    both_in_time: Count = Field(description="With both completed within their deadlines.")
    pct_both_in_time: Statistic = Field(description="both_in_time as a percentage of due, one decimal.")
    health_outstanding: Count = Field(
        description="Without a completed health examination, its deadline passed while the placement was under way."
    )
    dental_outstanding: Count = Field(
        description="Without a completed dental examination, its deadline passed while the placement was under way."
    )


class ExaminationsReport(Report[ExaminationsRow]):
    as_of: date = Field(description="The day of extraction: deadlines are judged as of it.")
    health_exam_days: int = Field(description="The health examination deadline, days after the placement's start.")
    dental_exam_days: int = Field(description="The dental examination deadline, days after the placement's start.")


FIGURES: tuple[str, ...] = tuple(f for f in ExaminationsRow.model_fields if f != "district")


def placements_base(period: Period, today: date, districts: list[str], own: HealthSettings) -> Subquery:
    """One row per placement in the report, with what its examinations came to."""
    pv = placement_view
    completed = Examination.status == ExamStatus.completed.value
    done = (
        select(
            Examination.placement_id,
            func.min(Examination.date).filter(completed, Examination.kind == ExamKind.health.value).label("health"),
            func.min(Examination.date).filter(completed, Examination.kind == ExamKind.dental.value).label("dental"),
        )
        .group_by(Examination.placement_id)
        .subquery("done")
    )
    as_of = literal(today, Date)
    health_deadline = pv.c.start_date + own.report_health_exam_days
    dental_deadline = pv.c.start_date + own.report_dental_exam_days

    def in_time(done_on: Any, deadline: Any) -> Any:
        return func.coalesce(done_on <= deadline, False)

    def outstanding(done_on: Any, deadline: Any) -> Any:
        return and_(done_on.is_(None), deadline < as_of, or_(pv.c.end_date.is_(None), pv.c.end_date > deadline))

    health_ok, dental_ok = in_time(done.c.health, health_deadline), in_time(done.c.dental, dental_deadline)
    pending = and_(
        ~and_(health_ok, dental_ok),
        or_(pv.c.end_date.is_(None), pv.c.end_date > as_of),
        func.greatest(health_deadline, dental_deadline) >= as_of,
    )
    return (
        select(
            pv.c.child_id,
            pv.c.district,
            health_ok.label("health_ok"),
            dental_ok.label("dental_ok"),
            outstanding(done.c.health, health_deadline).label("health_out"),
            outstanding(done.c.dental, dental_deadline).label("dental_out"),
            pending.label("pending"),
        )
        .join_from(pv, done, done.c.placement_id == pv.c.placement_id, isouter=True)
        .where(pv.c.start_date.between(period.from_, min(period.to, today)), pv.c.district.in_(districts))
        .subquery("base")
    )


def _figures(b: Subquery, where: Any) -> list[Any]:
    due = func.count().filter(where, ~b.c.pending)
    both = func.count().filter(where, b.c.health_ok, b.c.dental_ok)
    return [
        func.count(b.c.child_id.distinct()).filter(where).label("children"),
        func.count().filter(where).label("placements"),
        due.label("due"),
        func.count().filter(where, b.c.health_ok).label("health_in_time"),
        func.count().filter(where, b.c.dental_ok).label("dental_in_time"),
        both.label("both_in_time"),
        func.round(cast(both * 100.0 / func.nullif(due, 0), Numeric), 1).label("pct_both_in_time"),
        func.count().filter(where, b.c.health_out).label("health_outstanding"),
        func.count().filter(where, b.c.dental_out).label("dental_outstanding"),
    ]


def _values(rec: RowMapping | None) -> dict[str, Any]:
    if rec is None:
        return {name: None if name == "pct_both_in_time" else 0 for name in FIGURES}
    return {
        name: (None if rec[name] is None else float(rec[name])) if name == "pct_both_in_time" else int(rec[name])
        for name in FIGURES
    }


async def examinations(
    session: AsyncSession,
    period: Period,
    *,
    settings: Settings,
    own: HealthSettings,
    clock: Clock,
    district: str | None = None,
) -> ExaminationsReport:
    suppression = Suppression.from_settings(settings)
    extracted_at, today = clock.now(), clock.today()
    districts = [district] if district is not None else list(settings.districts)
    b = placements_base(period, today, districts, own)
    # The groups' sizes first, then the rows and the total over the shown groups only, in one
    # statement: the total never sees a hidden district's placements.
    sizes = select(b.c.district, func.count(b.c.child_id.distinct()).label("n")).group_by(b.c.district).cte("sizes")
    sized = select(b, sizes.c.n).join_from(b, sizes, sizes.c.district == b.c.district).subquery("sized")
    shown = sized.c.n >= suppression.threshold
    per_district = select(sized.c.district, *_figures(sized, true())).group_by(sized.c.district)
    total = select(null().cast(Text).label("district"), *_figures(sized, shown))
    result = await session.execute(union_all(per_district, total))
    recs = list(result.mappings())
    by_district = {rec["district"]: rec for rec in recs if rec["district"] is not None}
    total_rec = next((rec for rec in recs if rec["district"] is None), None)

    rows: list[dict[str, Any]] = []
    for name in districts:
        rec = by_district.get(name)
        if rec is not None and suppression.hides(int(rec["children"])):
            rows.append({"district": name, **dict.fromkeys(FIGURES, HIDDEN)})
        else:
            rows.append({"district": name, **_values(rec)})
    rows.append({"district": TOTAL, **_values(total_rec)})
    return ExaminationsReport(
        period=period,
        as_of=today,
        health_exam_days=own.report_health_exam_days,
        dental_exam_days=own.report_dental_exam_days,
        extracted_at=extracted_at,
        threshold=suppression.threshold,
        tables=[
            ReportTable[ExaminationsRow](
                name="examinations",
                description=(
                    "Placements that began in the period, by district: health and dental examinations completed "
                    "within the deadlines, the share of settled placements with both, and those outstanding."
                ),
                columns=["district", *FIGURES],
                rows=[ExaminationsRow.model_validate(r) for r in rows],
            )
        ],
    )
