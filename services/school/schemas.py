"""Request and response bodies of the school API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.school import Provision, SchoolEndReason
from shared.web.schemas import Day, ShortText

# Skolenhetskod: the 8-digit code Skolverket gives each school unit (no check digit).
SchoolUnitCode = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{8}$"), Field(description="Skolenhetskod: 8 digits.", examples=["12345678"])
]


class TeachingProvision(StrEnum):
    """What a child started when it is not a school unit named by its code."""

    home_school = Provision.home_school.value
    protected_teaching = Provision.protected_teaching.value
    other_teaching = Provision.other_teaching.value


class SchoolPlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    placement_id: uuid.UUID
    drawn_up_on: Day = Field(description="The day the school plan was drawn up.")
    planned_provision: Provision | None = None
    planned_school_unit_code: SchoolUnitCode | None = None
    responsible: ShortText | None = Field(
        default=None, description="Who is responsible for the plan. Kept in the record only."
    )


class SchoolPlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    drawn_up_on: date
    planned_provision: Provision | None
    planned_school_unit_code: str | None
    responsible: str | None
    created_at: datetime


class SchoolStartCreate(BaseModel):
    """Give either `school_unit_code` (a school unit) or `provision`, not both."""

    model_config = ConfigDict(extra="forbid")

    placement_id: uuid.UUID
    start_date: Day = Field(
        description="The first day the child attended; up to OBRUTEN_SCHOOL_MAX_PLANNED_DAYS (default 30) days ahead "
        "for a planned start, which counts as a school start from that day unless withdrawn before."
    )
    school_unit_code: SchoolUnitCode | None = None
    provision: TeachingProvision | None = None


class SchoolStartOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    start_date: date
    provision: Provision
    school_unit_code: str | None
    placement_start_date: date
    school_change: bool
    days_to_school_start: int | None = Field(
        description="Calendar days from placement start to this school start, for a placement that means a change "
        "of school; null otherwise."
    )
    end_date: date | None
    provenance: str = Field(description="`caseworker`, or `ss12000:<source>` for a start read from a school system.")
    planned: bool = Field(
        default=False, description="The start lies ahead (a planned start): it counts as a school start from its day."
    )
    created_at: datetime


class SchoolStartUpdate(BaseModel):
    """A correction of a school start's date."""

    model_config = ConfigDict(extra="forbid")

    start_date: date = Field(description="The corrected first day the child attended (or will attend).")


class SchoolEndCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    placement_id: uuid.UUID
    end_date: Day = Field(description="The day the child stopped attending.")
    reason: SchoolEndReason


class SchoolEndOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    school_start_id: uuid.UUID
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    end_date: date
    reason: SchoolEndReason
    provenance: str = Field(description="`caseworker`, or `ss12000:<source>` for an end read from a school system.")
    created_at: datetime


class Schooling(BaseModel):
    """Everything recorded about one placement's schooling, oldest first."""

    placement_id: uuid.UUID
    plans: list[SchoolPlanOut]
    starts: list[SchoolStartOut]
    ends: list[SchoolEndOut]


class SchoolStartPage(BaseModel):
    items: list[SchoolStartOut]
    total: int
    limit: int
    offset: int
