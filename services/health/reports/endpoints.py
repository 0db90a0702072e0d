"""HTTP routes of the health report. Thin: the query lives in tables.py, the period,
suppression and format rules in shared/web/reports.py and report_routes.py."""

from __future__ import annotations

from services.health.reports import tables as reports
from services.health.settings import health_settings
from shared.web.policy import v1_router
from shared.web.report_routes import add_period_report
from shared.web.reports import FORMAT_DOC, SUPPRESSION_DOC

router = v1_router()


EXAMINATIONS_CSV = (
    f"district,{','.join(reports.FIGURES)}\r\n"
    "Farsta,6,5,4,3,3,60.0,1,2\r\n"
    "Bromma,*,*,*,*,*,*,*,*\r\n"
    "…\r\n"
    "total,6,5,4,3,3,60.0,1,2\r\n"
)


add_period_report(
    router,
    "/reports/examinations",
    reports.examinations,
    name="examinations_report",
    response_model=reports.ExaminationsReport,
    csv_example=EXAMINATIONS_CSV,
    summary="Health and dental examinations within the deadlines, by district",
    description=(
        "Placements that began in `[from, to]` (and by the day of extraction, `as_of`), by district. An "
        "examination is in time when completed on or before the placement's start date plus "
        "`report_health_exam_days` / `report_dental_exam_days` (default 30 calendar days each; stated in the "
        "report). `health_outstanding` / `dental_outstanding`: no completed examination of that kind, and its "
        "deadline passed while the placement was under way. `due`: placements whose result is settled (not "
        "still under way with a deadline to come and not both done in time); `pct_both_in_time` is "
        "`both_in_time` as a percentage of `due`. In the CSV an empty cell is null (no value: an empty "
        "group), and decimals have a point.\n\n"
        "**Groups.** A district row is `*` throughout when its placements belong to 1 to threshold - 1 "
        "children; otherwise every count in it is shown. The `total` row covers the shown districts only.\n\n"
        f"{SUPPRESSION_DOC}\n\n{FORMAT_DOC}"
    ),
    own=health_settings,
)
