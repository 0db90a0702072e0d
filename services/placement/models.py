"""The placement service's tables."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.bus.inbox import inbox_table
from shared.bus.outbox import Outbox, outbox_table
from shared.kernel.db import ServiceBase, TimestampMixin, service_metadata
from shared.web.audit import audit_table


class Base(ServiceBase, DeclarativeBase):
    metadata = service_metadata()


class Child(TimestampMixin, Base):
    """A district's record of a child. Each district (an authority of its own, with secrecy
    between districts) keeps its own: a personnummer is unique within a district, and a
    district registering a child another district holds makes its own record, with the same
    answer as for a child nobody holds. Reports count persons (personnummer), not records."""

    __tablename__ = "child"

    # The pseudonymous id everything else uses; it says nothing about the child.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Normalised to 12 digits (YYYYMMDDNNNC). Only ever in request and response bodies.
    personnummer: Mapped[str] = mapped_column(Text, index=True)
    coordination_number: Mapped[bool]
    birth_date: Mapped[date]
    protected_identity: Mapped[bool]
    district: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("district", "personnummer", name="uq_child_district_personnummer"),)


class Placement(TimestampMixin, Base):
    __tablename__ = "placement"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    child_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("child.id"), index=True)
    district: Mapped[str] = mapped_column(Text)
    form: Mapped[str] = mapped_column(Text)
    variants: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    legal_basis: Mapped[str] = mapped_column(Text)
    duration: Mapped[str] = mapped_column(Text)
    start_date: Mapped[date]
    planned_end_date: Mapped[date | None]
    # The day the child left; the placement covers [start_date, end_date).
    end_date: Mapped[date | None]
    end_reason: Mapped[str | None] = mapped_column(Text)
    school_change: Mapped[bool]
    caseworker: Mapped[str | None] = mapped_column(Text)
    # Where the child lives. Never in an event, a log line or a report.
    location: Mapped[str | None] = mapped_column(Text)
    previous_placement_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("placement.id"))
    # Whether the child lives outside the municipality; null when not recorded. For a protected
    # child a protected field (shared/web/policy.py PROTECTED_FIELDS) and never in an event.
    outside_municipality: Mapped[bool | None]
    # The case system's own id, for placements entered by bulk import (POST /v1/imports):
    # re-sending a file finds the placement by it instead of recording it twice.
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)
    # Bumped on every change and carried in events, so consumers can drop stale ones.
    version: Mapped[int] = mapped_column(server_default=text("1"))

    __table_args__ = (
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="end_not_before_start"),
        CheckConstraint("(end_date IS NULL) = (end_reason IS NULL)", name="end_has_reason"),
        # Two placements of one child may not overlap in time; the database enforces it
        # so that two concurrent requests cannot both slip past the route's own check.
        ExcludeConstraint(
            (text("child_id"), "="),
            (text("daterange(start_date, end_date, '[)')"), "&&"),
            name="placement_no_overlap",
            using="gist",
        ),
        Index("ix_placement_district_form", "district", "form"),
        Index("ix_placement_dates", "start_date", "end_date"),
    )


class SchoolStartSeen(Base):
    """The school starts of each placement as `obruten.school` announced them: what lets this
    service refuse a start-date correction to after the child's school start (409), which it
    could not otherwise know (services/school/corrections.py says where each check lives)."""

    __tablename__ = "school_start_seen"

    school_start_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    start_date: Mapped[date]


inbox = inbox_table(Base.metadata)
outbox = Outbox(outbox_table(Base.metadata), source="/obruten/placement")
audit = audit_table(Base.metadata)
