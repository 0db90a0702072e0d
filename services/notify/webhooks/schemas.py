"""Request and response bodies of /v1/webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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
