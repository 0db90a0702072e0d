"""The school service's tables."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Index, Text, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.bus.inbox import inbox_table
from shared.bus.outbox import Outbox, outbox_table
from shared.bus.placement_copy import external_id_column, placement_view_table
from shared.kernel.db import ServiceBase, TimestampMixin, service_metadata
from shared.web.audit import audit_table


class Base(ServiceBase, DeclarativeBase):
    metadata = service_metadata()


class SchoolPlan(TimestampMixin, Base):
    """A school plan (skolplanering) drawn up for a placement."""

    __tablename__ = "school_plan"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # Copied from the placement when the plan is recorded, so reports need no join.
    child_id: Mapped[uuid.UUID] = mapped_column(index=True)
    district: Mapped[str] = mapped_column(Text)
    drawn_up_on: Mapped[date]
    planned_provision: Mapped[str | None] = mapped_column(Text)
    # Kept in the record only: a planned school can reveal where a protected child lives.
    planned_school_unit_code: Mapped[str | None] = mapped_column(Text)
    # Free text (a role or a name): never published in events.
    responsible: Mapped[str | None] = mapped_column(Text)
    # The case system's id, for a plan entered by bulk import (POST /v1/imports).
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)

    __table_args__ = (
        CheckConstraint("planned_school_unit_code ~ '^[0-9]{8}$'", name="planned_school_unit_code_format"),
    )


class SchoolStart(TimestampMixin, Base):
    """The child started school or other teaching; open until a school end closes it."""

    __tablename__ = "school_start"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    child_id: Mapped[uuid.UUID] = mapped_column(index=True)
    district: Mapped[str] = mapped_column(Text)
    start_date: Mapped[date]
    provision: Mapped[str] = mapped_column(Text)
    # Kept even for a protected child (the teaching team needs it); only events drop it.
    school_unit_code: Mapped[str | None] = mapped_column(Text)
    # The placement as it stood when the start was recorded: the figure reported monthly is
    # computed from these, not from whatever the placement says later.
    placement_start_date: Mapped[date]
    school_change: Mapped[bool]
    days_to_school_start: Mapped[int | None]
    # Set by the school end; the start covers [start_date, end_date).
    end_date: Mapped[date | None]
    # Who recorded it: `caseworker` (a person, through the API) or `ss12000:<source>`.
    provenance: Mapped[str] = mapped_column(Text, server_default=text("'caseworker'"))
    # The case system's id, for a start entered by bulk import (POST /v1/imports).
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)

    __table_args__ = (
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="end_not_before_start"),
        CheckConstraint("(provision = 'school_unit') = (school_unit_code IS NOT NULL)", name="school_unit_has_code"),
        CheckConstraint("school_unit_code ~ '^[0-9]{8}$'", name="school_unit_code_format"),
        # One placement's school starts may not overlap in time, so at most one is open:
        # two concurrent starts cannot both pass the route's own check.
        ExcludeConstraint(
            (text("placement_id"), "="),
            (text("daterange(start_date, end_date, '[)')"), "&&"),
            name="school_start_no_overlap",
            using="gist",
        ),
        Index("ix_school_start_district_start_date", "district", "start_date"),
    )


class SchoolEnd(TimestampMixin, Base):
    """The child stopped attending: where the child is schooled is open again."""

    __tablename__ = "school_end"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # One end per start: ending twice is refused by the database as well as by the route.
    school_start_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("school_start.id"), unique=True)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    child_id: Mapped[uuid.UUID]
    district: Mapped[str] = mapped_column(Text)
    end_date: Mapped[date]
    reason: Mapped[str] = mapped_column(Text)
    provenance: Mapped[str] = mapped_column(Text, server_default=text("'caseworker'"))
    # The case system's id, for an end entered by bulk import (POST /v1/imports).
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)


# outside_municipality: from the placement events, null when not recorded and always for a
# protected child (the placement service never publishes it for one).
# external_id: the placement's own, for import lines naming it (shared/web/imports.py).
placement_view = placement_view_table(Base.metadata, Column("outside_municipality", Boolean), external_id_column())
inbox = inbox_table(Base.metadata)
outbox = Outbox(outbox_table(Base.metadata), source="/obruten/school")
audit = audit_table(Base.metadata)

# The SS 12000 intake's tables share this metadata (one database, one migration history).
from services.school.ss12000 import models as _ss12000_models  # noqa: E402, F401
