"""The health service's tables.

An examination records that a health or dental examination was booked, took place, was
declined or missed, and when: never what it found (there is no column for it).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.bus.inbox import inbox_table
from shared.bus.outbox import Outbox, outbox_table
from shared.bus.placement_copy import external_id_column, placement_view_table
from shared.kernel.db import ServiceBase, TimestampMixin, service_metadata
from shared.web.audit import audit_table


class Base(ServiceBase, DeclarativeBase):
    metadata = service_metadata()


_STATUSES = "('booked', 'completed', 'declined', 'missed')"


class Examination(TimestampMixin, Base):
    """One examination of a placed child, in its current status."""

    __tablename__ = "examination"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # Copied from the placement when the examination is recorded, so events and lists need
    # no join (and the projection may be replaced by a newer version meanwhile).
    child_id: Mapped[uuid.UUID] = mapped_column(index=True)
    district: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    # The date of the current status: booked for, completed, declined or missed on.
    date: Mapped[dt.date]
    # The latest booking, kept when the outcome arrives; null when recorded without one.
    booked_date: Mapped[dt.date | None]
    # The clinic or professional: in the record only, never in an event (a clinic can reveal
    # where a child lives).
    provider: Mapped[str | None] = mapped_column(Text)
    # The case system's id, for an examination entered by bulk import (POST /v1/imports).
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)

    __table_args__ = (
        CheckConstraint("kind IN ('health', 'dental')", name="kind_known"),
        CheckConstraint(f"status IN {_STATUSES}", name="status_known"),
        CheckConstraint("status <> 'booked' OR booked_date = date", name="booked_date_is_date"),
        # One open booking per placement and kind: a second one is a double entry or a new
        # appointment for the same examination, which is a rebooking. The index makes two
        # concurrent bookings unable to both slip past the route's own check.
        Index(
            "ux_examination_open_booking",
            "placement_id",
            "kind",
            unique=True,
            postgresql_where=text("status = 'booked'"),
        ),
        Index("ix_examination_district_kind_status", "district", "kind", "status"),
    )


class ExaminationStatus(Base):
    """Every status an examination has had, in order: the history GET shows."""

    __tablename__ = "examination_status"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    examination_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("examination.id"), index=True)
    status: Mapped[str] = mapped_column(Text)
    date: Mapped[dt.date]
    recorded_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (CheckConstraint(f"status IN {_STATUSES}", name="status_known"),)


# external_id: the placement's own, for import lines naming it (shared/web/imports.py).
placement_view = placement_view_table(Base.metadata, external_id_column())
inbox = inbox_table(Base.metadata)
outbox = Outbox(outbox_table(Base.metadata), source="/obruten/health")
audit = audit_table(Base.metadata)
