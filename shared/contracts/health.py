"""Events the health service emits on `obruten.health` (key: the child's id).

They say that an examination was booked, took place, was declined or missed, and when;
never its medical content, and never the provider (a clinic can reveal where a child lives).
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from shared.contracts.envelope import EventData, event_type
from shared.contracts.topics import TOPIC_HEALTH


class ExamKind(StrEnum):
    health = "health"
    dental = "dental"


class ExamStatus(StrEnum):
    booked = "booked"
    completed = "completed"
    declined = "declined"
    missed = "missed"


class ExaminationEvent(EventData):
    examination_id: uuid.UUID
    placement_id: uuid.UUID
    child_id: uuid.UUID
    district: str
    kind: ExamKind
    status: ExamStatus
    booked_date: dt.date | None = None
    date: dt.date  # the date of this status: booked for, completed, declined or missed on


EXAM_BOOKED = event_type("obruten.health.exam_booked", TOPIC_HEALTH, ExaminationEvent, "An examination was booked.")
EXAM_COMPLETED = event_type(
    "obruten.health.exam_completed", TOPIC_HEALTH, ExaminationEvent, "An examination took place."
)
EXAM_DECLINED = event_type(
    "obruten.health.exam_declined", TOPIC_HEALTH, ExaminationEvent, "The child or guardian declined an examination."
)
EXAM_MISSED = event_type(
    "obruten.health.exam_missed", TOPIC_HEALTH, ExaminationEvent, "A booked examination did not take place."
)
