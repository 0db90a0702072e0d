"""Events the school service emits on `obruten.school` (key: the child's id).

A school start may lie in the future (a planned start, up to the school service's configured
number of days ahead): consumers count it as a start from its day. It is withdrawn by an
`obruten.school.ended` whose `end_date` is on or before its `start_date` (any reason): the start
never took place, and no gap opens on that end date.

For a child with protected identity or in protected housing, `school_unit_code` is always
null in events: only the teaching team may know where such a child goes to school.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import Field

from shared.contracts.envelope import EventData, event_type
from shared.contracts.topics import TOPIC_SCHOOL


class Provision(StrEnum):
    school_unit = "school_unit"  # a school unit, identified by its skolenhetskod
    home_school = "home_school"  # continued attendance at the home school
    protected_teaching = "protected_teaching"  # the city's teaching team for protected housing
    other_teaching = "other_teaching"  # other teaching (pedagogisk verksamhet)


class SchoolEndReason(StrEnum):
    moved = "moved"
    left = "left"
    long_term_absence = "long_term_absence"
    other = "other"


class SchoolPlanRegistered(EventData):
    plan_id: uuid.UUID
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    drawn_up_on: date
    planned_provision: Provision | None = None


class SchoolStarted(EventData):
    school_start_id: uuid.UUID
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    start_date: date
    provision: Provision
    school_unit_code: str | None = Field(
        default=None, description="Null for a child with protected identity or in protected housing."
    )
    placement_start_date: date
    school_change: bool
    days_to_school_start: int | None = Field(
        description="Calendar days from placement start to this school start, for a placement that means a change "
        "of school; null otherwise."
    )
    planned: bool = Field(
        default=False,
        description="The start lies ahead of the day it was recorded (a planned start): it counts as a school start "
        "from start_date, unless withdrawn before (a school end on its own first day).",
    )


class SchoolEnded(EventData):
    school_start_id: uuid.UUID
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    end_date: date
    reason: SchoolEndReason


SCHOOL_PLAN_REGISTERED = event_type(
    "obruten.school.plan_registered", TOPIC_SCHOOL, SchoolPlanRegistered, "A school plan was drawn up for a placement."
)
SCHOOL_STARTED = event_type(
    "obruten.school.started", TOPIC_SCHOOL, SchoolStarted, "A placed child started school or other teaching."
)
SCHOOL_START_CHANGED = event_type(
    "obruten.school.start_changed",
    TOPIC_SCHOOL,
    SchoolStarted,
    "A school start was corrected (its date), or recomputed after its placement's start date was corrected: the "
    "whole start as it stands now.",
)
SCHOOL_ENDED = event_type(
    "obruten.school.ended",
    TOPIC_SCHOOL,
    SchoolEnded,
    "A placed child stopped attending; where the child is schooled is open again from end_date.",
)
