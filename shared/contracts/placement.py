"""Events the placement service emits on `obruten.placement` (key: the child's id).

All three carry the same snapshot of the placement after the change, with `version`
increasing by one per change, so a consumer keeps the highest version it has seen and
events that arrive late or twice change nothing.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import Field

from shared.contracts.envelope import EventData, event_type
from shared.contracts.topics import TOPIC_PLACEMENT
from shared.contracts.vocabulary import LegalBasis, PlacementForm


class Variant(StrEnum):
    kinship = "kinship"  # närstående
    agency_supported = "agency_supported"  # konsulentstött
    treatment_family = "treatment_family"  # behandlingsfamilj, e.g. TFCO
    with_parent = "with_parent"  # samplacering


class Duration(StrEnum):
    temporary = "temporary"  # tillfällig
    long_term = "long_term"  # stadigvarande


class EndReason(StrEnum):
    care_plan = "care_plan"  # enligt vårdplan
    turned_18 = "turned_18"
    custody_transferred = "custody_transferred"  # vårdnadsöverflyttning
    adoption = "adoption"
    breakdown = "breakdown"  # sammanbrott
    moved = "moved"  # moved to another placement
    other = "other"


class PlacementSnapshot(EventData):
    placement_id: uuid.UUID
    child_id: uuid.UUID
    version: int = Field(ge=1)
    district: str
    form: PlacementForm
    variants: list[Variant]
    legal_basis: LegalBasis
    duration: Duration
    start_date: date
    planned_end_date: date | None
    end_date: date | None
    end_reason: EndReason | None
    school_change: bool = Field(description="The placement means the child changes school.")
    child_birth_date: date = Field(description="Needed for school-age rules.")
    protected_identity: bool = Field(
        description="The child has protected personal data: consumers must not publish where it is."
    )
    previous_placement_id: uuid.UUID | None = Field(
        default=None, description="The placement this one followed in a move."
    )
    caseworker: str | None = Field(
        default=None,
        max_length=200,
        description="The responsible caseworker's user id (their token subject, a pseudonym, never a name): "
        "whom notify mails about this placement's alerts.",
    )
    outside_municipality: bool | None = Field(
        default=None,
        description="The child is placed outside the municipality; null when not recorded, and always null for a "
        "protected child (it narrows down where the child is).",
    )
    external_id: str | None = Field(
        default=None,
        description="The case system's own id of the placement, for one entered by bulk import: school and health "
        "import lines name their placement by it (`placement_external_id`).",
    )
    imported: bool = Field(
        default=False,
        description="The change was entered by a bulk import (POST /v1/imports) of history kept elsewhere: the rest "
        "of the child's records (school starts, examinations) may still be on their way, so a consumer should "
        "not raise alarms from this event alone.",
    )


PLACEMENT_STARTED = event_type(
    "obruten.placement.started", TOPIC_PLACEMENT, PlacementSnapshot, "A placement was recorded."
)
PLACEMENT_CHANGED = event_type(
    "obruten.placement.changed", TOPIC_PLACEMENT, PlacementSnapshot, "A placement's details were corrected or changed."
)
PLACEMENT_ENDED = event_type(
    "obruten.placement.ended", TOPIC_PLACEMENT, PlacementSnapshot, "A placement ended, with its end date and reason."
)
