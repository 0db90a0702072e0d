"""What a school start is beyond its row: the event that describes it, and how far ahead it
may be recorded (a planned start, OBRUTEN_SCHOOL_MAX_PLANNED_DAYS)."""

from __future__ import annotations

from datetime import date

from services.school.models import SchoolStart
from shared.contracts.school import Provision, SchoolStarted
from shared.kernel.clock import Clock
from shared.kernel.errors import invalid
from shared.kernel.settings import Settings


def not_too_far_ahead(value: date, *, settings: Settings | None, clock: Clock, field: str) -> None:
    """A school start may be planned: up to `school_max_planned_days` ahead. Without settings (a
    start read from a school system, recorded when its day has come) none is planned."""
    ahead = settings.school_max_planned_days if settings is not None else 0
    if (value - clock.today()).days > ahead:
        raise invalid(field, f"more than {ahead} days ahead; a start may be planned at most {ahead} days ahead")


def started(start: SchoolStart, today: date, *, publishable: bool) -> SchoolStarted:
    """The start as its events describe it, `today` being the day of the change; the school unit
    only when `publishable` (the placement service has just confirmed the child unprotected)."""
    return SchoolStarted(
        school_start_id=start.id,
        placement_id=start.placement_id,
        child_id=start.child_id,
        district=start.district,
        start_date=start.start_date,
        provision=Provision(start.provision),
        # Only the teaching team may know where a protected child goes to school.
        school_unit_code=start.school_unit_code if publishable else None,
        placement_start_date=start.placement_start_date,
        school_change=start.school_change,
        days_to_school_start=start.days_to_school_start,
        planned=start.start_date > today,
    )
