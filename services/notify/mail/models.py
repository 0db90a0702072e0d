"""Notify's mail tables: who is who (people, functional mailboxes, each placement's named
caseworker) and the durable mail queue.

The queue row of a mail is written in the transaction of the alert transition it tells of, with
its text already composed, so a crash, an SMTP outage or a restart can delay a mail but never
lose one. `dedupe_key` (alert, episode, stage, recipient) is unique: two notify
instances, a replayed event or a restart cannot queue one mail twice.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.notify.models import Base

DELIVERY_CHOICES = ("immediate", "digest")
MAIL_STATUSES = ("pending", "held", "digested", "sent", "dead")


class MailPerson(Base):
    """A person notify may mail: their token subject, address and choice of immediate mail or
    a daily digest. Filled by the web service at sign-in, by the person, or by an administrator."""

    __tablename__ = "mail_person"

    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    delivery: Mapped[str] = mapped_column(Text, server_default=text("'immediate'"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (CheckConstraint("delivery IN ('immediate', 'digest')", name="delivery_known"),)


class MailRecipient(Base):
    """A functional mailbox told when an alert of its district reaches its level."""

    __tablename__ = "mail_recipient"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    district: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("district", "level", "address", name="uq_mail_recipient"),)


class PlacementCaseworker(Base):
    """The caseworker named on each placement (a pseudonymous subject from the placement
    events), at the highest placement version seen."""

    __tablename__ = "mail_placement_caseworker"

    placement_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    caseworker: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int]


class MailMessage(Base):
    """One mail to one address. `held` waits for the recipient's daily digest, `digested` was
    listed in one (`digest_id`); `pending` is sent by the sender, retried with backoff, and
    `dead` after the configured number of attempts."""

    __tablename__ = "mail_message"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    dedupe_key: Mapped[str] = mapped_column(Text, unique=True)
    message_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)  # prewarning, alert, resolved, digest
    alert_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    episode: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(Text)  # prewarning, an escalation level, resolved
    district: Mapped[str | None] = mapped_column(Text)
    recipient: Mapped[str] = mapped_column(Text)
    delivery: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    digest_id: Mapped[uuid.UUID | None]
    # What the mail may say (compose.AlertFacts as JSON; for a digest, nothing): the words are
    # composed from it when sent, so a change of OBRUTEN_WEB_URL reaches mail still queued.
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # When the transition happened (the domain clock): the mail's Date and the digest's order.
    happened_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'held', 'digested', 'sent', 'dead')", name="status_known"),
        CheckConstraint("delivery IN ('immediate', 'digest')", name="delivery_known"),
        Index("ix_mail_message_pending", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_mail_message_held", "recipient", postgresql_where=text("status = 'held'")),
    )


class MailDigestRun(Base):
    """One row per local day the digest ran: the insert decides which notify instance runs it."""

    __tablename__ = "mail_digest_run"

    day: Mapped[date] = mapped_column(primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(server_default=func.now())
