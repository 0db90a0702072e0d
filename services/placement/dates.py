"""The dates a placement may have: not far ahead, within the child's ages 0-20, stödboende only
from the configured age (16 by default: stödboende is for ages 16-20)."""

from __future__ import annotations

from datetime import date, timedelta

from services.placement.models import Child
from services.placement.settings import PlacementSettings
from shared.contracts.vocabulary import PlacementForm
from shared.kernel.clock import Clock
from shared.kernel.errors import invalid
from shared.kernel.settings import Settings


def check_dates(
    child: Child,
    start: date,
    planned_end: date | None,
    *,
    settings: Settings,
    own: PlacementSettings,
    clock: Clock,
    prefix: str,
    form: str | None = None,
    form_field: str | None = None,
) -> None:
    today = clock.today()
    if start > today + timedelta(days=own.max_future_start_days):
        raise invalid(f"{prefix}start_date", f"more than {own.max_future_start_days} days in the future")
    if start < child.birth_date:
        raise invalid(f"{prefix}start_date", "before the child's birth date")
    limit = _birthday(child.birth_date, settings.max_age_at_placement)
    if start >= limit:
        raise invalid(
            f"{prefix}start_date",
            f"the child is {settings.max_age_at_placement} or older on that date; care covers ages 0-20",
        )
    if planned_end is not None and planned_end < start:
        raise invalid(f"{prefix}planned_end_date", "before start_date")
    if form == PlacementForm.stodboende.value and start < _birthday(child.birth_date, settings.stodboende_min_age):
        # Named on the field the caller changed: the form, or the start date of a stödboende placement.
        raise invalid(
            form_field or f"{prefix}form",
            f"stödboende is for young people aged {settings.stodboende_min_age}-20; the child is younger "
            "on the placement's start date",
        )


def _birthday(birth: date, age: int) -> date:
    """The day a person turns `age`; someone born on 29 February turns a year older on 1 March."""
    try:
        return birth.replace(year=birth.year + age)
    except ValueError:
        return date(birth.year + age, 3, 1)
