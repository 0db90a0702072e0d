"""Request and response bodies of notify's mail API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.web.schemas import NameText, ShortText

Delivery = Literal["immediate", "digest"]


def _address(value: str) -> str:
    """An e-mail address, normalised (the domain lower-cased); syntax only, no DNS look-up."""
    try:
        return str(validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise ValueError(f"not an e-mail address: {exc}") from None


Address = Annotated[ShortText, AfterValidator(_address)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Address = Field(description="Where notify mails this person (a work address).")
    delivery: Delivery | None = Field(
        default=None,
        description="`immediate`: a mail per event; `digest`: one mail a day listing them. Omitted: the "
        "person's current choice is kept (`immediate` for someone new), so a sign-in that only refreshes "
        "the address never undoes a choice.",
    )


class PersonOut(_Out):
    subject: str
    email: str
    delivery: Delivery
    updated_at: datetime


class PersonPage(BaseModel):
    items: list[PersonOut]
    total: int
    limit: int
    offset: int


class MailRecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    district: NameText
    level: NameText = Field(description="A step of the escalation ladder: district, district_manager, central_office.")
    address: Address = Field(description="A functional mailbox, e.g. the district's alert mailbox.")


class MailRecipientOut(_Out):
    id: uuid.UUID
    district: str
    level: str
    address: str
    created_at: datetime


class MailDeliveryOut(BaseModel):
    id: uuid.UUID
    kind: str = Field(description="prewarning, alert, resolved or digest.")
    alert_id: uuid.UUID | None
    stage: str | None = Field(description="prewarning, the ladder step the alert reached, or resolved.")
    district: str | None
    recipient: str
    delivery: Delivery
    status: Literal["pending", "held", "digested", "sent", "dead"]
    subject: str
    message_id: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    dead_at: datetime | None
    last_error: str | None


class MailDeliveryPage(BaseModel):
    items: list[MailDeliveryOut]
    total: int
    limit: int
    offset: int
