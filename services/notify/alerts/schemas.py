"""Request and response bodies of the notify API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.contracts.alerts import AlertStatus


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
    placement_id: uuid.UUID
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

    note: str | None = Field(
        default=None,
        max_length=2000,
        description="What is being done. Kept behind the API, never in events or webhooks; "
        "do not write a personnummer, a name or an address here.",
    )


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="An http(s) URL the alert events are POSTed to.")
    secret: str = Field(
        min_length=16,
        max_length=500,
        description="Signs each body: header X-Obruten-Signature: sha256=<hex HMAC-SHA256 of the body>.",
    )
    districts: list[str] | None = Field(default=None, description="Only alerts of these districts; null: all.")
    rules: list[str] | None = Field(default=None, description="Only alerts of these rules; null: all.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; the secret signs the body instead")
        return value.strip()


class WebhookOut(_Out):
    id: uuid.UUID
    url: str
    districts: list[str] | None
    rules: list[str] | None
    created_at: datetime


class WebhookAttemptOut(_Out):
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDeliveryOut(_Out):
    id: uuid.UUID
    alert_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    last_error: str | None
    attempt_log: list[WebhookAttemptOut]


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDeliveryOut]
    total: int
    limit: int
    offset: int
