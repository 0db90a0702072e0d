"""Request and response bodies of the placement API."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.placement import Duration, EndReason, Variant
from shared.contracts.vocabulary import LegalBasis, PlacementForm
from shared.web.schemas import Day, IdentityText, LongText, NameText, ShortText


class ChildCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    personnummer: IdentityText = Field(
        description="Personnummer or samordningsnummer, 10 or 12 digits, with or without separator.",
        examples=["20150312-2383"],
    )
    district: NameText = Field(description="Responsible district, as configured.")
    protected_identity: bool = False


class ChildUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    district: NameText | None = None
    protected_identity: bool | None = None


class ChildLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    personnummer: IdentityText
    district: NameText | None = Field(
        default=None,
        description="Each district keeps its own record of a child: whose to look up. A district-scoped caller "
        "may name only their own (the default); an administrator names one when a number is registered in several.",
    )


class ChildOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    personnummer: str
    coordination_number: bool
    birth_date: date
    protected_identity: bool
    district: str
    created_at: datetime


class PlacementFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    district: NameText
    form: PlacementForm
    variants: list[Variant] = Field(default_factory=list, max_length=len(Variant))
    legal_basis: LegalBasis
    duration: Duration = Duration.temporary
    start_date: Day
    planned_end_date: Day | None = None
    school_change: bool = Field(description="Whether the placement means the child changes school.")
    caseworker: ShortText | None = Field(default=None, description="The responsible caseworker's user id.")
    location: LongText | None = Field(
        default=None,
        description="Where the child lives (home or institution and municipality). Never published in events.",
    )
    outside_municipality: bool | None = Field(
        default=None,
        description="Whether the child is placed outside the municipality; null when not recorded. For a protected "
        "child a protected field: answered as null except to those who may see its location, never in an event.",
    )


class PlacementCreate(PlacementFields):
    child_id: uuid.UUID


class PlacementUpdate(BaseModel):
    """Corrections to an active placement. Omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    form: PlacementForm | None = None
    variants: list[Variant] | None = Field(default=None, max_length=len(Variant))
    legal_basis: LegalBasis | None = None
    duration: Duration | None = None
    start_date: Day | None = None
    planned_end_date: Day | None = None
    school_change: bool | None = None
    caseworker: ShortText | None = None
    location: LongText | None = None
    outside_municipality: bool | None = None


class PlacementEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    end_date: Day = Field(description="The day the child left the placement.")
    end_reason: EndReason


class PlacementMove(BaseModel):
    """End the current placement and start the next one in one transaction."""

    model_config = ConfigDict(extra="forbid")

    move_date: Day = Field(description="The day the child leaves the old placement and starts the new one.")
    end_reason: EndReason = EndReason.moved
    next: PlacementFields = Field(description="The new placement; its start_date must equal move_date.")


class PlacementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    child_id: uuid.UUID
    district: str
    form: PlacementForm
    variants: list[Variant]
    legal_basis: LegalBasis
    duration: Duration
    start_date: date
    planned_end_date: date | None
    end_date: date | None
    end_reason: EndReason | None
    school_change: bool
    caseworker: str | None
    location: str | None
    outside_municipality: bool | None
    previous_placement_id: uuid.UUID | None
    external_id: str | None = Field(description="The case system's id, for a placement entered by bulk import.")
    version: int
    created_at: datetime
    updated_at: datetime


class PlacementMoveOut(BaseModel):
    ended: PlacementOut
    started: PlacementOut


class PlacementPage(BaseModel):
    items: list[PlacementOut]
    total: int
    limit: int
    offset: int
