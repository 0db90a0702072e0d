"""School-year calendars: one data file per school year (services/notify/rules/school_years/, or
OBRUTEN_NOTIFY_SCHOOL_YEARS_DIR), each with its first and last day and its term breaks.

Whether term breaks pause the school-gap count is the municipality's choice (the reports leave it
open): `school_gap.pause_in_term_breaks`. When they do, the breaks of every configured school year
and the summer between two consecutive ones are not counted. Today outside every configured school
year is never passed over in silence: the tick logs a warning and sets a metric
(`obruten_notify_outside_school_year`), for someone to add the coming year's calendar.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.notify.rules.config import RulesConfig, RulesConfigError, TermBreak

SHIPPED = Path(__file__).resolve().parent / "school_years"


class NamedBreak(TermBreak):
    name: str = Field(default="", max_length=100)


class SchoolYear(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    school_year: str = Field(pattern=r"^\d{4}/\d{4}$")
    start: date
    end: date
    breaks: list[NamedBreak] = Field(default_factory=list)

    @model_validator(mode="after")
    def _inside(self) -> SchoolYear:
        if self.end <= self.start:
            raise ValueError("end is not after start")
        for b in self.breaks:
            if b.start < self.start or b.end > self.end:
                raise ValueError(f"break {b.name or b.start} lies outside the school year")
        return self

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


def load_school_years(folder: Path) -> list[SchoolYear]:
    """Every *.yaml calendar of the folder, by start; a broken file stops the service at start-up."""
    import yaml

    years = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            years.append(SchoolYear.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))))
        except (ValidationError, yaml.YAMLError) as exc:
            raise RulesConfigError(f"school-year calendar {path}: {exc}") from None
    return sorted(years, key=lambda y: y.start)


def breaks_of(years: list[SchoolYear]) -> list[TermBreak]:
    """The term breaks of the school years, and the summer between two consecutive ones."""
    out: list[TermBreak] = [TermBreak(start=b.start, end=b.end) for y in years for b in y.breaks]
    for prev, nxt in itertools.pairwise(years):
        if nxt.start - prev.end > timedelta(days=1):
            out.append(TermBreak(start=prev.end + timedelta(days=1), end=nxt.start - timedelta(days=1)))
    return out


def with_calendars(cfg: RulesConfig, years: list[SchoolYear]) -> RulesConfig:
    """The rules with the calendars' breaks added to school_gap's when it pauses in term breaks."""
    gap = cfg.school_gap
    if not gap.pause_in_term_breaks or not years:
        return cfg
    merged = gap.model_copy(update={"term_breaks": [*gap.term_breaks, *breaks_of(years)]})
    return cfg.model_copy(update={"school_gap": merged})


def outside_every_school_year(years: list[SchoolYear], day: date) -> bool:
    """Outside every school year and not in the summer between two configured ones."""
    if any(y.covers(day) for y in years):
        return False
    return not any(prev.end < day < nxt.start for prev, nxt in itertools.pairwise(years))
