"""Request and response bodies of /v1/alerts."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.alerts import AlertStatus
from shared.web.schemas import LongText


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AlertTransitionOut(_Out):
    transition: str
    at: datetime
    on_date: date
    status: AlertStatus
    level_name: str | None
    clock_start: date
    deadline: date
    calendar_days: int
    counted_days: int
    reason: str | None
    actor: str | None
    note: str | None
    event_id: uuid.UUID


class AlertOut(_Out):
    id: uuid.UUID
    rule: str
    placement_id: uuid.UUID = Field(
        description="The child's current placement: an alert follows the child across moves (see its history)."
    )
    child_id: uuid.UUID
    district: str
    status: AlertStatus
    level: int | None
    level_name: str | None
    clock_start: date
    deadline: date
    as_of: date
    calendar_days: int
    counted_days: int
    prewarned_at: datetime | None
    opened_at: datetime | None
    escalated_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledgement_note: str | None
    resolved_at: datetime | None
    resolution_reason: str | None
    planned_school_start: date | None = Field(
        description="A school start on record for a later day: the clock keeps running until then (a start "
        "planned after the deadline does not keep the alert from opening); it counts as the start from its day "
        "unless withdrawn before."
    )
    created_at: datetime
    updated_at: datetime


class AlertDetail(AlertOut):
    history: list[AlertTransitionOut]


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class Acknowledge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: LongText | None = Field(
        default=None,
        description="What is being done. Kept behind the API, never in events or webhooks; "
        "do not write a personnummer, a name or an address here.",
    )
