"""Notify's tables: the projection of other services' events, the due-time index, alerts with
their history, and webhook subscriptions with their deliveries and attempts."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.bus.inbox import inbox_table
from shared.bus.outbox import Outbox, outbox_table
from shared.bus.placement_copy import placement_view_table
from shared.contracts.alerts import AlertStatus
from shared.kernel.db import ServiceBase, TimestampMixin, service_metadata
from shared.web.audit import audit_table


class Base(ServiceBase, DeclarativeBase):
    metadata = service_metadata()


audit = audit_table(Base.metadata)
inbox = inbox_table(Base.metadata)
placement_view = placement_view_table(Base.metadata)
outbox = Outbox(outbox_table(Base.metadata), source="/obruten/notify")


class SchoolAttendance(Base):
    """A school start from `obruten.school`, and its end once it ended.

    Keyed by the school start, not the placement: a start may arrive before its placement (the
    topics are not ordered against each other) and is evaluated when the placement arrives.
    """

    __tablename__ = "school_attendance"

    school_start_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # Null while only the end has been seen.
    start_date: Mapped[date | None]
    end_date: Mapped[date | None]


class SchoolPlan(Base):
    __tablename__ = "school_plan"

    plan_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    drawn_up_on: Mapped[date]


class Examination(Base):
    __tablename__ = "examination"

    examination_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    status_date: Mapped[date]
    # Kept once set: an examination that took place stays done whatever follows.
    completed_on: Mapped[date | None]


class PlacementArrival(Base):
    """When notify first learnt of a placement and of its end (notify's clock, not the database's):
    a history entered late is held for the settle period, so that the rest of it can arrive."""

    __tablename__ = "placement_arrival"

    placement_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    first_seen_at: Mapped[datetime]
    ended_seen_at: Mapped[datetime | None]


class AlertDue(Base):
    """The due-time index: when each (placement, rule) must next be looked at.

    Maintained whenever an event about the placement arrives; the evaluation tick reads only
    the rows due now, through the partial index, so its cost follows what is due.
    """

    __tablename__ = "alert_due"

    placement_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(Text, primary_key=True)
    # Null: nothing will change with time alone; only a new event can bring it back.
    due_at: Mapped[datetime | None]
    evaluated_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_alert_due_due_at", "due_at", postgresql_where=text("due_at IS NOT NULL")),)


ALERT_STATUSES = tuple(s.value for s in AlertStatus)


class Alert(TimestampMixin, Base):
    """One alert per (rule, placement): the unique constraint is what stops two replicas from
    raising it twice. The alert follows the child: on a move it passes to the child's new
    placement (and district), so `placement_id` is the latest placement of the child's unbroken
    time in care. A breach after a resolution (a school end reopens the clock) reopens the same
    alert; its history keeps every episode and every move."""

    __tablename__ = "alert"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    rule: Mapped[str] = mapped_column(Text)
    placement_id: Mapped[uuid.UUID]
    child_id: Mapped[uuid.UUID]
    district: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    # Index into the escalation ladder and that step's name; null while only a pre-warning.
    level: Mapped[int | None]
    level_name: Mapped[str | None] = mapped_column(Text)
    clock_start: Mapped[date]
    deadline: Mapped[date]
    # Days as of `as_of` (the latest transition); for a resolved alert, the days it took.
    as_of: Mapped[date]
    calendar_days: Mapped[int]
    counted_days: Mapped[int]
    prewarned_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolution_reason: Mapped[str | None] = mapped_column(Text)
    # A school start on record for a later day: the clock runs until then, the alert says so.
    planned_school_start: Mapped[date | None]

    __table_args__ = (
        UniqueConstraint("rule", "placement_id", name="uq_alert_rule_placement"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in ALERT_STATUSES)})", name="status_known"),
        Index("ix_alert_district_status", "district", "status"),
        Index("ix_alert_placement_id", "placement_id"),
        # What the alerts gauge reads (services/notify/metrics.py): unresolved alerts only.
        Index("ix_alert_unresolved", "rule", "status", "level_name", postgresql_where=text("status <> 'resolved'")),
    )


class AlertHistory(Base):
    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"), index=True)
    transition: Mapped[str] = mapped_column(Text)  # prewarned, opened, escalated, acknowledged, resolved
    at: Mapped[datetime]
    on_date: Mapped[date]
    status: Mapped[str] = mapped_column(Text)
    level_name: Mapped[str | None] = mapped_column(Text)
    clock_start: Mapped[date]
    deadline: Mapped[date]
    calendar_days: Mapped[int]
    counted_days: Mapped[int]
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[uuid.UUID]


class Webhook(TimestampMixin, Base):
    __tablename__ = "webhook"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(Text)
    # Needed in clear to sign each body; never returned by the API. `whsec_<base64>` (signing.py).
    secret: Mapped[str] = mapped_column(Text)
    # The secret before the last rotation: deliveries are signed with both until it expires.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    # Null: every district (rule).
    districts: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    rules: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_by: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One alert event to one subscriber: written in the transaction of the alert transition
    (an outbox of its own), so no delivery is lost; the sender works through the pending ones."""

    __tablename__ = "webhook_delivery"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(Text)
    # The exact bytes signed and sent, so every retry sends (and signs) the same body.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))  # pending, delivered, dead, cancelled
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'dead', 'cancelled')", name="status_known"),
        Index("ix_webhook_delivery_pending", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]


# Mail (issue 16): the people directory, functional mailboxes and the mail queue live in
# services/notify/mail/models.py, on this metadata.
from services.notify.mail import models as _mail_models  # noqa: E402, F401
