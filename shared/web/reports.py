"""The reporting kernel every service's reports are built from.

A report is one or more tables of counts for a period, computed in the service's own
database and published so that no child can be singled out.

Period
    `from` and `to` query parameters, ISO dates, both days included. `to` before `from`, or
    a period longer than `report_max_period_days` (default 3660, about ten years), is a 422
    problem+json naming `query.to`.

Small-count suppression (primary)
    A cell whose count of distinct children is between 1 and `report_suppress_below - 1`
    (default: 1 to 3) is published as `*`; 0 is published as 0. The rule looks at children,
    not at what the cell counts: a cell of five ended placements that belong to two children
    is hidden too.

Totals count only shown cells (no secondary suppression)
    Every total (a row's `total` column, the `total` row, and the grand total) counts the
    children (or placements) in the *shown* cells it spans, never those in hidden cells. This
    is the convention of the city's own tables: in the 2020 table of placed children, Rinkeby-
    Kista's total 326 is the sum of its shown cells, and its hidden skyddat boende children are
    in no total. A total is therefore a function of the shown cells' contents alone: changing
    what hides behind a `*` (within 1..threshold-1) changes nothing in the table, so no hidden
    value can be computed from totals and other cells, whatever the number of hidden cells in
    a row or column. Secondary suppression (hiding a second cell next to every lone `*`) would
    publish true totals but hide more data, and whether it protects depends on the pattern of
    cells; the city's convention is simpler to check and is what its readers already know.
    The price: a total is a lower bound ("children in the cells shown"), stated as such.

    Where a child can be in several cells of one row (placed in two forms in a year), a total
    counts distinct children of the shown cells, so it can be less than the sum of its cells.
    Cells and totals are computed in the database in one statement (`crosstab_query`), and the
    true totals are never selected.

    What suppression within one table cannot prevent: differencing two tables whose periods
    differ by a day, or a table from another service. Publish fixed periods (months, years)
    when that matters.

Statistics of groups (an addition for the school and health reports)
    Where a table's row describes a group of children (the placements of a district that
    began in the period) with several figures (how many started school, a median of days, a
    share), the threshold applies to the *group* each figure is computed over, not to the
    figure: a median, a percentile, a maximum or a share over 1 to threshold - 1 children is
    `*` like a count (`Suppression.statistic`), and a count of the group's children who did
    something is a figure of that group, shown when the group is. Such a table's total row
    covers only the groups whose figure it totals is shown, so, as above, nothing behind a `*`
    enters a total. Each report's module says which group each column is computed over.

Content negotiation
    JSON by default; CSV with `Accept: text/csv` (an Accept that allows neither is 406). The CSV
    holds one table: a header row, then one row per row label and a last row `total`; UTF-8
    without a byte-order mark, RFC 4180 quoting and CRLF line ends, so Python's `csv.reader`
    reads it directly. The period, the time of extraction and the threshold are stated in
    response headers (`X-Obruten-Period: 2020-01-01/2020-12-31`, `X-Obruten-Extracted-At`,
    `X-Obruten-Suppress-Below`) and in the file name of `Content-Disposition`, not inside the
    body, so the body stays one plain table. The JSON carries the same in its body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeAlias, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, CompoundSelect, Select, Text, and_, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from shared.kernel.errors import check_district, invalid
from shared.kernel.settings import Settings
from shared.web.app import SettingsDep
from shared.web.schemas import Day, NameText

HIDDEN: Literal["*"] = "*"
TOTAL = "total"

SUPPRESSION_DOC = (
    "**Suppression.** A cell counting between 1 and `threshold - 1` distinct children "
    '(default 1-3) is published as `"*"`; 0 is published as 0. **Totals count only the shown '
    "cells**, as in the city's own tables: a `total` column, the `total` row and the grand total "
    "count the children (each once) in the shown cells they span, never those behind a `*`, so "
    "no hidden value can be computed from the totals and the other cells. A total is therefore a "
    "lower bound, and where a child is in several cells of a row it can be less than the sum of "
    "the row's cells."
)
FORMAT_DOC = (
    "**Formats.** JSON by default; `Accept: text/csv` gives the table as CSV (UTF-8, header row, "
    "one row per district and a last row `total`; a cell is a whole number or `*`). The CSV "
    "states the period, the time of extraction and the threshold in the headers "
    "`X-Obruten-Period` (`from/to`), `X-Obruten-Extracted-At` and `X-Obruten-Suppress-Below`."
)

# A SELECT of `row_key`, `col_key`, `unit`, `child` (see Crosstab).
Hits: TypeAlias = Select[*tuple[Any, ...]]

Cell = Annotated[
    int | Literal["*"],
    Field(description='A count, or "*" for a count from 1 to threshold - 1 (hidden).'),
]
StatT = TypeVar("StatT")
# A figure describing a group of children (see "Statistics of groups" above).
Count = Annotated[
    int | Literal["*"],
    Field(description='A count within a group, or "*" when the group has 1 to threshold - 1 children.'),
]
Statistic = Annotated[
    float | Literal["*"] | None,
    Field(description='A statistic of a group; null for an empty group, "*" for 1 to threshold - 1 children.'),
]
WholeStatistic = Annotated[
    int | Literal["*"] | None,
    Field(description='A whole-number statistic of a group (a maximum, a percentile of days); null or "*" as above.'),
]


# --- period and filters ---------------------------------------------------------------------


class Period(BaseModel):
    """A span of days; both `from` and `to` are included."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    from_: date = Field(alias="from", description="First day of the period.")
    to: date = Field(description="Last day of the period (included).")

    @property
    def days(self) -> int:
        return (self.to - self.from_).days + 1

    def iso(self) -> str:
        """ISO 8601 interval notation, as in the `X-Obruten-Period` header."""
        return f"{self.from_.isoformat()}/{self.to.isoformat()}"

    @classmethod
    def of(cls, first: date, last: date) -> Period:
        return cls.model_validate({"from": first, "to": last})


def check_period(first: date, last: date, settings: Settings) -> Period:
    if last < first:
        raise invalid("query.to", f"before `from` ({first.isoformat()}); a period ends on or after it starts")
    period = Period.of(first, last)
    if period.days > settings.report_max_period_days:
        raise invalid(
            "query.to",
            f"the period spans {period.days} days; at most {settings.report_max_period_days} are allowed",
        )
    return period


async def period_query(
    settings: SettingsDep,
    first: Annotated[Day, Query(alias="from", description="First day of the period (YYYY-MM-DD).")],
    last: Annotated[Day, Query(alias="to", description="Last day of the period, included (YYYY-MM-DD).")],
) -> Period:
    return check_period(first, last, settings)


PeriodDep = Annotated[Period, Depends(period_query)]


async def district_query(
    settings: SettingsDep,
    district: Annotated[
        NameText | None, Query(description="Only this district's row (and a `total` row for it).")
    ] = None,
) -> str | None:
    if district is not None:
        check_district(settings.districts, district, "query.district")
    return district


DistrictDep = Annotated[str | None, Depends(district_query)]


# --- suppression and cross tables -----------------------------------------------------------


@dataclass(frozen=True)
class Suppression:
    threshold: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Suppression:
        return cls(settings.report_suppress_below)

    def hides(self, children: int) -> bool:
        return 0 < children < self.threshold

    def show(self, value: int, children: int) -> int | Literal["*"]:
        return HIDDEN if self.hides(children) else value

    def statistic(self, value: StatT, children: int) -> StatT | Literal["*"]:
        """A figure computed over a group of `children` (a median, a maximum, a share, or a
        count of those in the group who did something): hidden whenever the group is, whatever
        the figure itself says. A median of two children is as revealing as a count of two."""
        return HIDDEN if self.hides(children) else value


@dataclass(frozen=True)
class Crosstab:
    """The shape of a table: row labels (districts) down, column keys across.

    `hits` (given to `crosstab`) is a SELECT with the columns `row_key`, `col_key`, `unit`
    (what a cell counts, e.g. a child id or a placement id) and `child` (whom the cell is
    about; suppression counts these). A unit counts once per cell.
    """

    row_label: str
    rows: Sequence[str]
    columns: Sequence[str]
    row_totals: bool = True
    total_label: str = TOTAL

    @property
    def header(self) -> list[str]:
        return [self.row_label, *self.columns, *([self.total_label] if self.row_totals else [])]


def crosstab_query(hits: Hits, shape: Crosstab, suppression: Suppression) -> CompoundSelect[*tuple[Any, ...]]:
    """Cells and shown-only totals in one statement.

    Each result row has `row_key`, `col_key`, `level` (0 cell, 1 row total, 2 column total,
    3 grand total), `n` and `children` (cells only). For a total, `n` counts the distinct units
    of the shown cells: the true total is never selected.

    Every distinct count is a SELECT DISTINCT under a plain count, rather than COUNT(DISTINCT)
    over GROUPING SETS: PostgreSQL sorts for each COUNT(DISTINCT) but hashes a DISTINCT, which
    made the statement about a third faster over 100,000 placements (bench/RESULTS.md).
    """
    h = hits.subquery("hits")
    scoped = (
        select(h.c.row_key, h.c.col_key, h.c.unit, h.c.child)
        .where(h.c.row_key.in_(list(shape.rows)), h.c.col_key.in_(list(shape.columns)))
        .cte("scoped")
    )
    per_child = select(scoped.c.row_key, scoped.c.col_key, scoped.c.child).distinct().subquery("per_child")
    cells = (
        select(per_child.c.row_key, per_child.c.col_key, func.count().label("children"))
        .group_by(per_child.c.row_key, per_child.c.col_key)
        .cte("cells")
    )
    same_cell = and_(scoped.c.row_key == cells.c.row_key, scoped.c.col_key == cells.c.col_key)
    shown = (
        select(scoped.c.row_key, scoped.c.col_key, scoped.c.unit)
        .join_from(scoped, cells, same_cell)
        .where(cells.c.children >= suppression.threshold)
        .cte("shown")
    )
    no_key = null().cast(Text)

    per_unit = select(scoped.c.row_key, scoped.c.col_key, scoped.c.unit).distinct().subquery("per_unit")
    units = (
        select(per_unit.c.row_key, per_unit.c.col_key, func.count().label("n"))
        .group_by(per_unit.c.row_key, per_unit.c.col_key)
        .subquery("units")
    )
    level_cells = select(
        units.c.row_key, units.c.col_key, literal(0).label("level"), units.c.n, cells.c.children
    ).join_from(units, cells, and_(units.c.row_key == cells.c.row_key, units.c.col_key == cells.c.col_key))

    by_row = select(shown.c.row_key, shown.c.unit).distinct().subquery("by_row")
    level_rows = select(by_row.c.row_key, no_key, literal(1), func.count(), null().cast(BigInteger)).group_by(
        by_row.c.row_key
    )
    by_col = select(shown.c.col_key, shown.c.unit).distinct().subquery("by_col")
    level_cols = select(no_key, by_col.c.col_key, literal(2), func.count(), null().cast(BigInteger)).group_by(
        by_col.c.col_key
    )
    by_all = select(shown.c.unit).distinct().subquery("by_all")
    level_all = select(no_key, no_key, literal(3), func.count(), null().cast(BigInteger)).select_from(by_all)
    return union_all(level_cells, level_rows, level_cols, level_all)


async def crosstab(
    session: AsyncSession, hits: Hits, shape: Crosstab, suppression: Suppression
) -> list[dict[str, Any]]:
    """The table's rows (one per row label, then the total row) as dicts keyed by the header,
    suppressed. Missing cells are 0."""
    result = await session.execute(crosstab_query(hits, shape, suppression))
    cells: dict[tuple[str, str], int | Literal["*"]] = {}
    row_totals: dict[str, int] = {}
    col_totals: dict[str, int] = {}
    grand = 0
    for rec in result.mappings():
        level, n = int(rec["level"]), int(rec["n"])
        if level == 0:
            cells[(rec["row_key"], rec["col_key"])] = suppression.show(n, int(rec["children"]))
        elif level == 1:
            row_totals[rec["row_key"]] = n
        elif level == 2:
            col_totals[rec["col_key"]] = n
        else:
            grand = n
    table: list[dict[str, Any]] = []
    for label in shape.rows:
        row: dict[str, Any] = {shape.row_label: label}
        row.update({col: cells.get((label, col), 0) for col in shape.columns})
        if shape.row_totals:
            row[shape.total_label] = row_totals.get(label, 0)
        table.append(row)
    last: dict[str, Any] = {shape.row_label: shape.total_label}
    last.update({col: col_totals.get(col, 0) for col in shape.columns})
    if shape.row_totals:
        last[shape.total_label] = grand
    table.append(last)
    return table


# --- response bodies ------------------------------------------------------------------------

RowT = TypeVar("RowT", bound=BaseModel)


class ReportTable(BaseModel, Generic[RowT]):
    name: str = Field(description="The table's name; also the CSV file's stem.")
    description: str
    columns: list[str] = Field(description="The CSV header, in order: the keys of each row.")
    rows: list[RowT] = Field(description="One row per district, then a last row `total`.")


class Report(BaseModel, Generic[RowT]):
    """What every report answers with: the period, when it was extracted, the suppression
    threshold in force, and its tables."""

    model_config = ConfigDict(populate_by_name=True)

    period: Period
    extracted_at: datetime = Field(description="When the figures were read from the database (UTC).")
    threshold: int = Field(description='Counts from 1 to threshold - 1 are shown as "*".')
    suppression: str = Field(
        default="totals-count-shown-cells-only",
        description="How hidden cells are kept from being recovered: every total counts only shown cells.",
    )
    tables: list[ReportTable[RowT]]
