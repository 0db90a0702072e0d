"""The intake's tables: each source's position, each sync, and each matched enrolment.

Nothing here holds a personnummer, a keyed hash of one or a source's person id: an enrolment is
stored only once it matched a placed child, and then under that placement's id.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Index, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.school.models import Base
from shared.kernel.db import TimestampMixin


class SourceState(Base):
    """Where a source's change feed was read up to: the newest `meta.modified` of the last
    change set read whole. The next sync asks for changes after it."""

    __tablename__ = "ss12000_source"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    # A category (`http-503`, `timeout`, `paging`), never a body or an entity.
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(default=0)


class SyncRun(Base):
    """One sync of one source, as the audit trail sees it."""

    __tablename__ = "ss12000_sync"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(Text)  # ok | failed
    pages: Mapped[int]
    entities: Mapped[int]
    # Persons whose civicNo matched a placed child (their enrolments are stored).
    matches: Mapped[int]
    malformed: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)
    position_before: Mapped[datetime | None]
    position_after: Mapped[datetime | None]

    __table_args__ = (Index("ix_ss12000_sync_source_started_at", "source", "started_at"),)


class SourceEnrolment(TimestampMixin, Base):
    """A matched child's enrolment as a source last described it, and what it led to. Kept
    after it is settled: with the caseworker's records it is the history of the child's starts."""

    __tablename__ = "ss12000_enrolment"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source: Mapped[str] = mapped_column(Text)
    placement_id: Mapped[uuid.UUID] = mapped_column(index=True)
    child_id: Mapped[uuid.UUID]
    # The organisation (school unit) id at the source, and its skolenhetskod when it has one.
    enroled_at: Mapped[uuid.UUID]
    school_unit_code: Mapped[str | None] = mapped_column(Text)
    school_type: Mapped[str] = mapped_column(Text)
    start_date: Mapped[date]
    # As SS 12000 has it: the last day of the enrolment, inclusive.
    end_date: Mapped[date | None]
    # Cancelled at the source, or no longer among the person's enrolments.
    cancelled: Mapped[bool] = mapped_column(default=False)
    modified_at: Mapped[datetime | None]
    # pending (not yet due or not yet applied), recorded, agrees, superseded, ended, withdrawn, ignored
    outcome: Mapped[str] = mapped_column(Text, default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    school_start_id: Mapped[uuid.UUID | None]
    school_end_id: Mapped[uuid.UUID | None]

    __table_args__ = (
        UniqueConstraint("source", "placement_id", "enroled_at", "start_date"),
        Index("ix_ss12000_enrolment_unsettled", "source", "outcome"),
    )
