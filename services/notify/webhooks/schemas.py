"""Request and response bodies of /v1/webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.notify.webhooks import signing
from shared.web.schemas import LongText, NameText, ShortText


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _usable_secret(value: str | None) -> str | None:
    if value is None:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    signing.normalise_secret(value)  # a malformed whsec_ secret is refused here
    return value


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: LongText = Field(description="An http(s) URL the alert events are POSTed to.")
    secret: ShortText | None = Field(
        default=None,
        min_length=16,
        description="Signs each delivery by the Standard Webhooks specification. Omit it and notify makes one "
        "(`whsec_<base64>`), answered once in the creation's `secret`. A `whsec_<base64>` secret (24-64 bytes) "
        "is used as such; any other string is the key's raw UTF-8 bytes (verify with `Webhook(secret.encode())`).",
    )
    districts: list[NameText] | None = Field(default=None, description="Only alerts of these districts; null: all.")
    rules: list[NameText] | None = Field(default=None, description="Only alerts of these rules; null: all.")

    @field_validator("secret")
    @classmethod
    def _usable_secret(cls, value: str | None) -> str | None:
        return _usable_secret(value)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018 - raises on a port that is not a number 0-65535
        except ValueError:
            raise ValueError("not a valid URL: the port must be a number from 1 to 65535") from None
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
    previous_secret_expires_at: datetime | None = Field(
        default=None, description="After a rotation: until when the previous secret still signs (beside the new)."
    )


class WebhookCreated(WebhookOut):
    secret: str | None = Field(
        default=None, description="Only when notify made the secret: the `whsec_` secret, shown this once."
    )


class SecretRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: ShortText | None = Field(
        default=None, min_length=16, description="The new secret; omitted: notify makes one."
    )

    @field_validator("secret")
    @classmethod
    def _usable_secret(cls, value: str | None) -> str | None:
        return _usable_secret(value)


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
