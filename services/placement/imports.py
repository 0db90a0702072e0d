"""Bulk import of placements (`POST /v1/imports`, shared/web/imports.py): a city starting out
enters the placements its case system already holds, ended ones included.

A line is a placement as `POST /v1/placements` takes it, with the child's `personnummer` and
`protected_identity` instead of a `child_id` (the child is found by the number, or registered
in the line's district), the case system's `external_id`, and for a placement that has ended
its `end_date` and `end_reason`. Its events carry `imported: true` (shared/contracts/placement.py),
so that notify can hold its evaluation until the child's other records have arrived.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.placement import children, schemas, service
from services.placement.dates import check_dates
from services.placement.models import Child, Placement
from services.placement.settings import PlacementSettings
from shared.contracts.placement import EndReason
from shared.kernel.clock import Clock
from shared.kernel.errors import Problem, check_district, invalid
from shared.kernel.settings import Settings
from shared.web.imports import LineStatus, Outcome, already_imported, differs

__all__ = ["Outcome", "PlacementImport", "PlacementImportLine"]
from shared.web.policy import Access
from shared.web.schemas import ShortText


class PlacementImportLine(schemas.PlacementFields):
    """One line of a placement import."""

    external_id: ShortText = Field(min_length=1, description="The case system's own id of the placement.")
    personnummer: str = Field(
        description="The child's personnummer or samordningsnummer: the child is found by it, or registered.",
        max_length=13,
    )
    protected_identity: bool = Field(default=False, description="The child has protected personal data.")
    end_date: date | None = Field(default=None, description="For a placement that has ended: the day the child left.")
    end_reason: EndReason | None = None


def _recorded(placement: Placement, child: Child) -> dict[str, Any]:
    return {
        "personnummer": child.personnummer,
        "district": placement.district,
        "form": placement.form,
        "variants": sorted(placement.variants),
        "legal_basis": placement.legal_basis,
        "duration": placement.duration,
        "start_date": placement.start_date,
        "planned_end_date": placement.planned_end_date,
        "end_date": placement.end_date,
        "end_reason": placement.end_reason,
        "school_change": placement.school_change,
        "caseworker": placement.caseworker,
        "location": placement.location,
        "outside_municipality": placement.outside_municipality,
    }


def _as_sent(line: PlacementImportLine, number: str) -> dict[str, Any]:
    return {
        "personnummer": number,
        "district": line.district,
        "form": line.form.value,
        "variants": sorted({v.value for v in line.variants}),
        "legal_basis": line.legal_basis.value,
        "duration": line.duration.value,
        "start_date": line.start_date,
        "planned_end_date": line.planned_end_date,
        "end_date": line.end_date,
        "end_reason": line.end_reason.value if line.end_reason else None,
        "school_change": line.school_change,
        "caseworker": line.caseworker,
        "location": line.location,
        "outside_municipality": line.outside_municipality,
    }


class PlacementImport:
    """One import request: what its lines refer to is read once, up front (`prepare`), so that a
    line costs its writes only; each line then runs in its own savepoint (shared/web/imports.py)."""

    def __init__(
        self, session: AsyncSession, *, settings: Settings, own: PlacementSettings, clock: Clock, access: Access
    ) -> None:
        self.session, self.settings, self.clock, self.access = session, settings, clock, access
        self.own = own
        self.placements: dict[str, Placement] = {}
        # By (district, normalised number), as they were before the import: each district keeps
        # its own record of a child (services/placement/children.py).
        self.children: dict[tuple[str, str], Child] = {}
        self.numbers: dict[str, tuple[str, date, bool]] = {}
        self.seen: set[tuple[str, str]] = set()  # records this import has already used

    def _number(self, raw: str) -> tuple[str, date, bool]:
        if raw not in self.numbers:
            self.numbers[raw] = children.parse_personnummer(raw, today=self.clock.today())
        return self.numbers[raw]

    async def prepare(self, lines: list[PlacementImportLine]) -> None:
        ids = [line.external_id for line in lines]
        numbers: list[str] = []
        for line in lines:
            try:
                numbers.append(self._number(line.personnummer)[0])
            except Problem:
                continue  # refused when its turn comes
        for chunk in range(0, len(ids), 1000):
            rows = await self.session.scalars(
                select(Placement).where(Placement.external_id.in_(ids[chunk : chunk + 1000]))
            )
            self.placements.update({p.external_id: p for p in rows if p.external_id})
        for chunk in range(0, len(numbers), 1000):
            found = await self.session.scalars(
                select(Child).where(Child.personnummer.in_(numbers[chunk : chunk + 1000]))
            )
            self.children.update({(c.district, c.personnummer): c for c in found})

    async def apply(self, line: PlacementImportLine) -> Outcome:
        number, birth, coordination = self._number(line.personnummer)
        existing = self.placements.get(line.external_id)
        if existing is not None:
            return await self._unchanged(existing, line, number)
        if (line.end_date is None) != (line.end_reason is None):
            raise invalid("body.end_reason" if line.end_date else "body.end_date", "give both end_date and end_reason")
        if line.end_date is not None:
            if line.end_date < line.start_date:
                raise invalid("body.end_date", f"before the placement's start_date ({line.start_date})")
            if line.end_date > self.clock.today():
                raise invalid("body.end_date", "in the future; record the end when it has happened")
        check_district(self.settings.districts, line.district, "body.district")
        self.access.check_new(line.district, "body.district")
        child = await self._child(line, number, birth, coordination)
        fields = schemas.PlacementFields.model_validate(
            line.model_dump(include=set(schemas.PlacementFields.model_fields))
        )
        placement = await service.create_placement(
            self.session,
            child,
            fields,
            settings=self.settings,
            own=self.own,
            clock=self.clock,
            external_id=line.external_id,
            imported=True,
        )
        if line.end_date is not None and line.end_reason is not None:
            ended = schemas.PlacementEnd(end_date=line.end_date, end_reason=line.end_reason)
            await service.end_placement(self.session, placement, ended, clock=self.clock, imported=True)
        self.seen.add((line.district, number))
        return Outcome(status=LineStatus.created, id=str(placement.id))

    async def _unchanged(self, existing: Placement, line: PlacementImportLine, number: str) -> Outcome:
        self.access.check(existing.district, Problem(409, "import-conflict", "External id taken", field="external_id"))
        child = await service.get_child(self.session, existing.child_id)
        field = differs(_recorded(existing, child), _as_sent(line, number))
        if field is not None:
            raise already_imported(field)
        return Outcome(status=LineStatus.unchanged, id=str(existing.id))

    async def _child(self, line: PlacementImportLine, number: str, birth: date, coordination: bool) -> Child:
        """The child with this number, locked; registered in the line's district when new. Every
        check comes before the child is written, so a refused line leaves no child behind."""
        key = (line.district, number)
        child = self.children.get(key)
        if child is not None or key in self.seen:
            child = await self.session.scalar(
                select(Child).where(Child.district == line.district, Child.personnummer == number).with_for_update()
            )
        if child is not None:
            if line.protected_identity and not child.protected_identity:
                # Unsure of protection => protected: a line saying so is enough.
                child.protected_identity = True
            return child
        child = Child(
            id=uuid.uuid4(),
            personnummer=number,
            coordination_number=coordination,
            birth_date=birth,
            protected_identity=line.protected_identity,
            district=line.district,
        )
        check_dates(
            child,
            line.start_date,
            line.planned_end_date,
            settings=self.settings,
            own=self.own,
            clock=self.clock,
            prefix="body.",
            form=line.form.value,
        )
        # ON CONFLICT: a concurrent registration of the same record must not make the server log
        # a unique violation, which would quote the number (children.create_child does the same).
        created = await self.session.scalar(
            insert(Child)
            .values(
                id=child.id,
                personnummer=number,
                coordination_number=coordination,
                birth_date=birth,
                protected_identity=line.protected_identity,
                district=line.district,
            )
            .on_conflict_do_nothing(index_elements=[Child.district, Child.personnummer])
            .returning(Child.id)
        )
        if created is None:
            raise Problem(409, "child-exists", "Registered meanwhile", "Send the line again.", field="personnummer")
        return await service.get_child(self.session, child.id)
