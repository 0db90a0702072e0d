"""The school service's reports: days from placement to school start (the city's monthly
statistic), computed in its database. shared/web/reports.py holds the period, suppression and
format rules they share.

Who is counted
    Placements in the school service's copy (`placement_view`) that mean a change of school
    (`school_change`) and began in the period, by the placement's district and form as the copy
    holds them now: a corrected start date or district moves the placement. Placements that
    have not begun by the day of extraction (planned ones) are left out.

Days to school start
    From the placement's start date to its first school start (the earliest `school_start` of
    the placement; later ones are changes of school within the placement). Counted from the
    current start date in the copy, not from the copy the school start kept when recorded, so
    that the row-level list's placement date and days always agree.

Waiting, and the day it is measured to
    A placement without a school start is `waiting` while it is under way on the day of
    extraction, with its days so far counted to that day; one that ended first is
    `ended_without_start`. Starts are counted as of extraction too, whatever the period: the
    monthly file is compiled after the month, and a child placed on the 28th who started on the
    3rd belongs to the month's figures with its 6 days. Measuring at the period's end instead
    would show every late-month placement as waiting and keep its days out of every month.

Suppression (the "statistics of groups" rule of shared/web/reports.py)
    A district row describes the group of placements that began there; the group's size is
    its distinct children. Fewer than the threshold (1-3 by default): the whole row is `*`.
    Otherwise `began`, `started`, `waiting` and `ended_without_start` are shown, and:
    - the day statistics (`timed`, `within_7_days`, `pct_within_7_days`, `median_days`,
      `p90_days`, `max_days`) describe the children who started; hidden when they are 1-3;
    - `longest_wait_days` describes the children waiting; hidden when they are 1-3.
    The `total` row counts the shown district rows only, and each statistic covers only the
    districts where that statistic is shown.

By form
    A second endpoint breaks the same children down by form. Its population is exactly what
    the district table's total covers (the same three groups), so the two totals are equal and
    neither table can be subtracted from the other to uncover a hidden district. A form whose
    group would be under the threshold is not hidden on its own (that leaves the hidden value
    as total minus shown forms): its row is `*` and its children are in the row `other_forms`,
    to which the smallest forms are added until that row is over the threshold, so that no
    single form's figures can be computed from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    ColumnElement,
    Date,
    Numeric,
    Subquery,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from services.school.models import SchoolStart, placement_view
from services.school.service import attended
from shared.contracts.vocabulary import PlacementForm
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings
from shared.web.reports import (
    HIDDEN,
    TOTAL,
    Count,
    Period,
    Report,
    ReportTable,
    Statistic,
    Suppression,
    WholeStatistic,
)

# The order of the city's published tables, as in the placement reports.
FORMS: tuple[str, ...] = (
    PlacementForm.sis,
    PlacementForm.hvb,
    PlacementForm.jourhem,
    PlacementForm.familjehem,
    PlacementForm.skyddat_boende,
    PlacementForm.stodboende,
)
OTHER_FORMS = "other_forms"
# Where the child is placed (the placement's `outside_municipality`).
INSIDE, OUTSIDE, UNKNOWN = "inside", "outside", "unknown"
LOCATIONS: tuple[str, ...] = (INSIDE, OUTSIDE, UNKNOWN)
# The city's rule: no child without school for more than a week.
WITHIN_DAYS = 7

Status = Literal["started", "waiting", "ended_without_start"]


# --- rows -----------------------------------------------------------------------------------


class _Figures(BaseModel):
    began: Count = Field(description="Placements with a change of school that began in the period.")
    started: Count = Field(description="Of those, placements with a school start (as of extraction).")
    waiting: Count = Field(description="Placements under way on the day of extraction without a school start.")
    ended_without_start: Count = Field(description="Placements that ended without a school start.")
    timed: Count = Field(description="Started placements the day statistics are computed over.")
    within_7_days: Count = Field(description="Started within 7 days of the placement (days ≤ 7).")
    pct_within_7_days: Statistic = Field(description="within_7_days as a percentage of timed, one decimal.")
    median_days: Statistic = Field(description="Median days from placement to first school start.")
    p90_days: WholeStatistic = Field(
        description="90th percentile of days (percentile_disc: at least 90 % started within it)."
    )
    max_days: WholeStatistic = Field(description="Most days from placement to first school start.")
    longest_wait_days: WholeStatistic = Field(description="Days so far of the longest-waiting placement.")


class SchoolStartsRow(_Figures):
    district: str = Field(description="A configured district, or `total` on the last row.")


class SchoolStartsByFormRow(_Figures):
    form: str = Field(description=f"A placement form, `{OTHER_FORMS}` (merged small forms), or `total`.")


class SchoolStartsReport(Report[SchoolStartsRow]):
    as_of: date = Field(description="The day of extraction: waiting days are counted to it.")


class SchoolStartsByFormReport(Report[SchoolStartsByFormRow]):
    as_of: date = Field(description="The day of extraction: waiting days are counted to it.")


FIGURES: tuple[str, ...] = tuple(_Figures.model_fields)
_COUNTS = ("began", "started", "waiting", "ended_without_start")
_TIMING = ("timed", "within_7_days", "pct_within_7_days", "median_days", "p90_days", "max_days")
_WAITING = ("longest_wait_days",)


# --- queries --------------------------------------------------------------------------------


def _rows(settings: Settings, district: str | None) -> list[str]:
    return [district] if district is not None else list(settings.districts)


def placements_base(period: Period, today: date, districts: Sequence[str]) -> Subquery:
    """One row per placement in the report, with its first school start and status."""
    pv = placement_view
    # A planned start counts from its day: until then the placement is waiting (with the
    # planned day shown in the row-level list).
    first = (
        select(SchoolStart.placement_id, func.min(SchoolStart.start_date).label("first_start"))
        .where(attended(), SchoolStart.start_date <= today)
        .group_by(SchoolStart.placement_id)
        .subquery("first_start")
    )
    planned = (
        select(SchoolStart.placement_id, func.min(SchoolStart.start_date).label("planned_start"))
        .where(SchoolStart.start_date > today)
        .group_by(SchoolStart.placement_id)
        .subquery("planned_start")
    )
    as_of = literal(today, Date)
    protected = or_(pv.c.protected_identity, pv.c.form == PlacementForm.skyddat_boende.value)
    # A protected child's placement is never known here as inside or outside (its events carry
    # null): it is `unknown`, together with placements where it was not recorded.
    location = case(
        (protected, literal(UNKNOWN)),
        (pv.c.outside_municipality.is_(True), literal(OUTSIDE)),
        (pv.c.outside_municipality.is_(False), literal(INSIDE)),
        else_=literal(UNKNOWN),
    )
    started = first.c.first_start.is_not(None)
    ended = and_(pv.c.end_date.is_not(None), pv.c.end_date <= as_of)
    status = case((started, literal("started")), (ended, literal("ended_without_start")), else_=literal("waiting"))
    last_day = min(period.to, today)
    return (
        select(
            pv.c.placement_id,
            pv.c.child_id,
            pv.c.district,
            pv.c.form,
            pv.c.start_date.label("placement_date"),
            pv.c.end_date,
            first.c.first_start,
            status.label("status"),
            (first.c.first_start - pv.c.start_date).label("days"),
            case((and_(~started, ~ended), as_of - pv.c.start_date), else_=null()).label("wait_days"),
            planned.c.planned_start,
            location.label("location"),
        )
        .join_from(pv, first, first.c.placement_id == pv.c.placement_id, isouter=True)
        .join(planned, planned.c.placement_id == pv.c.placement_id, isouter=True)
        .where(
            pv.c.school_change.is_(True),
            pv.c.start_date.between(period.from_, last_day),
            pv.c.district.in_(list(districts)),
        )
        .subquery("base")
    )


def _figures(
    b: Subquery,
    *,
    counted: ColumnElement[bool],
    timed: ColumnElement[bool],
    waited: ColumnElement[bool],
) -> list[ColumnElement[Any]]:
    """The aggregates of a group, each over its own subgroup: `counted` picks the placements
    the counts cover, `timed` those the day statistics cover, `waited` those the wait covers.
    `*_children` are the distinct children suppression looks at."""
    is_started = b.c.status == "started"
    # A start before its placement (a placement start corrected after the school start was
    # recorded, services/school/corrections.py) is flagged, not timed: -3 days is no success.
    timing = and_(is_started, timed, b.c.days >= 0)
    waiting = and_(b.c.status == "waiting", waited)
    within = func.count().filter(and_(timing, b.c.days <= WITHIN_DAYS))
    n_timed = func.count().filter(timing)
    return [
        func.count(b.c.child_id.distinct()).filter(counted).label("children"),
        func.count(b.c.child_id.distinct()).filter(timing).label("timed_children"),
        func.count(b.c.child_id.distinct()).filter(waiting).label("waiting_children"),
        func.count().filter(counted).label("began"),
        func.count().filter(and_(counted, is_started)).label("started"),
        func.count().filter(and_(counted, b.c.status == "waiting")).label("waiting"),
        func.count().filter(and_(counted, b.c.status == "ended_without_start")).label("ended_without_start"),
        n_timed.label("timed"),
        within.label("within_7_days"),
        func.round(cast(within * 100.0 / func.nullif(n_timed, 0), Numeric), 1).label("pct_within_7_days"),
        func.round(cast(func.percentile_cont(0.5).within_group(b.c.days).filter(timing), Numeric), 1).label(
            "median_days"
        ),
        func.percentile_disc(0.9).within_group(b.c.days).filter(timing).label("p90_days"),
        func.max(b.c.days).filter(timing).label("max_days"),
        func.max(b.c.wait_days).filter(waiting).label("longest_wait_days"),
    ]


@dataclass(frozen=True)
class _Shown:
    """Which groups' figures are shown: by count, by day statistics, by wait."""

    counted: frozenset[str]
    timed: frozenset[str]
    waited: frozenset[str]


def _present(rec: RowMapping, suppression: Suppression) -> dict[str, Any]:
    def number(name: str) -> Any:
        value = rec[name]
        if value is None:
            return None
        return float(value) if name in ("pct_within_7_days", "median_days") else int(value)

    hidden_row = suppression.hides(int(rec["children"]))
    out: dict[str, Any] = {}
    for name in FIGURES:
        value = number(name)
        if hidden_row:
            out[name] = HIDDEN
        elif name in _TIMING:
            out[name] = suppression.statistic(value, int(rec["timed_children"]))
        elif name in _WAITING:
            out[name] = suppression.statistic(value, int(rec["waiting_children"]))
        else:
            out[name] = value
    return out


def _empty() -> dict[str, Any]:
    return {name: (0 if name in (*_COUNTS, "timed", "within_7_days") else None) for name in FIGURES}


async def _by_district(
    session: AsyncSession, b: Subquery, districts: Sequence[str], suppression: Suppression
) -> tuple[dict[str, dict[str, Any]], _Shown]:
    stmt = select(b.c.district, *_figures(b, counted=true(), timed=true(), waited=true())).group_by(b.c.district)
    recs = {rec["district"]: rec for rec in (await session.execute(stmt)).mappings()}
    rows: dict[str, dict[str, Any]] = {}
    counted: set[str] = set()
    timed: set[str] = set()
    waited: set[str] = set()
    for district in districts:
        rec = recs.get(district)
        if rec is None:
            rows[district] = _empty()
            continue
        shown_row = not suppression.hides(int(rec["children"]))
        rows[district] = _present(rec, suppression)
        if shown_row:
            counted.add(district)
            if not suppression.hides(int(rec["timed_children"])):
                timed.add(district)
            if not suppression.hides(int(rec["waiting_children"])):
                waited.add(district)
    return rows, _Shown(frozenset(counted), frozenset(timed), frozenset(waited))


def _conditions(b: Subquery, shown: _Shown) -> dict[str, ColumnElement[bool]]:
    def among(names: Iterable[str]) -> ColumnElement[bool]:
        names = sorted(names)
        return b.c.district.in_(names) if names else false()

    return {"counted": among(shown.counted), "timed": among(shown.timed), "waited": among(shown.waited)}


def _total(rec: RowMapping | None) -> dict[str, Any]:
    """A total row: every figure covers only shown groups already, so nothing is hidden."""
    if rec is None:
        return _empty()
    return _present(rec, Suppression(1))


async def school_starts(
    session: AsyncSession, period: Period, *, settings: Settings, clock: Clock, district: str | None = None
) -> SchoolStartsReport:
    suppression = Suppression.from_settings(settings)
    extracted_at, today = clock.now(), clock.today()
    districts = _rows(settings, district)
    b = placements_base(period, today, districts)
    rows, shown = await _by_district(session, b, districts, suppression)
    total = (await session.execute(select(*_figures(b, **_conditions(b, shown))))).mappings().first()
    table = [{"district": d, **rows[d]} for d in districts] + [{"district": TOTAL, **_total(total)}]
    return SchoolStartsReport(
        period=period,
        as_of=today,
        extracted_at=extracted_at,
        threshold=suppression.threshold,
        tables=[
            ReportTable[SchoolStartsRow](
                name="school_starts",
                description=(
                    "Placements with a change of school that began in the period, by district: school starts, "
                    "days from placement to the first school start, and those still waiting."
                ),
                columns=["district", *FIGURES],
                rows=[SchoolStartsRow.model_validate(r) for r in table],
            )
        ],
    )
