"""Request and response bodies of the health API.

There is deliberately no field for what an examination found: the service records that it
took place and when, and `extra="forbid"` refuses anything else a client sends.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.health import ExamKind, ExamStatus
from shared.web.schemas import Day, ShortText

# PostgreSQL text cannot hold NUL, and no name needs a control character: refused here as a
# 422 rather than failing in the database.


class Outcome(StrEnum):
    """What a booked examination can turn into."""

    completed = "completed"
    declined = "declined"
    missed = "missed"


class ExaminationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    placement_id: uuid.UUID
    kind: ExamKind
    status: ExamStatus = Field(
        description="`booked` for an appointment (today or later); an outcome to record one that already happened."
    )
    date: Day = Field(description="The booked date, or the day it was completed, declined or missed.")
    provider: ShortText | None = Field(
        default=None,
        min_length=1,
        description="The clinic or professional. Kept in the record only, never published in events.",
    )


class ExaminationOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Outcome
    date: Day = Field(description="The day it was completed, declined or missed; not in the future.")


class ExaminationRebook(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    date: Day = Field(description="The new booked date: today or later.")
    provider: ShortText | None = Field(
        default=None,
        min_length=1,
        description="A new provider; omitted keeps the current one.",
    )


class StatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: ExamStatus
    date: dt.date
    recorded_at: dt.datetime


class ExaminationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    kind: ExamKind
    status: ExamStatus
    date: dt.date
    booked_date: dt.date | None
    provider: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ExaminationDetail(ExaminationOut):
    history: list[StatusOut] = Field(description="Every status the examination has had, oldest first.")


class ExaminationPage(BaseModel):
    items: list[ExaminationOut]
    total: int
    limit: int
    offset: int
