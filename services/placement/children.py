"""A district's records of children: registration and lookup by personnummer.

Each district (an authority of its own, with secrecy between districts) keeps its own record of
a child (models.Child). Registering a child another district holds answers exactly as for a
child nobody holds, from the same statements; a lookup reads only the caller's district's rows.
The personnummer appears only in request and response bodies, never in a URL, log or event.
"""

from __future__ import annotations

import uuid
from datetime import date

from personnummer.personnummer import Personnummer, PersonnummerException
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.placement import schemas
from services.placement.models import Child
from shared.kernel.clock import Clock
from shared.kernel.errors import Problem, check_district, invalid, not_found
from shared.kernel.settings import Settings
from shared.web.policy import Access
from shared.web.schemas import IDENTITY_NUMBER, ascii_digits


def parse_personnummer(raw: str, *, today: date, field: str = "body.personnummer") -> tuple[str, date, bool]:
    """Normalised 12-digit number, birth date, and whether it is a samordningsnummer. Only ASCII
    digits (after NFKC, which folds fullwidth digits) reach the check: the library would read
    other scripts' digits too, and store a second spelling of one number."""
    cleaned = ascii_digits(raw)
    if not IDENTITY_NUMBER.fullmatch(cleaned):
        raise invalid(field, "not a valid personnummer or samordningsnummer (format, date or check digit)")
    try:
        pnr = Personnummer(cleaned)
    except PersonnummerException:
        # Never echo the number back: the reason is enough to correct it.
        raise invalid(field, "not a valid personnummer or samordningsnummer (format, date or check digit)") from None
    birth = pnr.get_date()
    if birth > today:
        raise invalid(field, "the birth date in the number lies in the future")
    return pnr.format(long_format=True), birth, pnr.is_coordination_number()


def child_exists(existing: uuid.UUID) -> Problem:
    # Only ever about a record in the caller's own rows: the district the caller registers in.
    return Problem(
        409,
        "child-exists",
        "Child already registered",
        "This district has already registered a child with this personnummer; use its id.",
        field="body.personnummer",
        existing_id=str(existing),
    )


async def create_child(session: AsyncSession, body: schemas.ChildCreate, *, settings: Settings, clock: Clock) -> Child:
    """The district's own record of the child. Whether another district holds one changes
    nothing here, neither the answer nor the statements run: both touch only the key
    (district, personnummer). ON CONFLICT, so two concurrent registrations never make the
    server log a unique violation (which would quote the number)."""
    number, birth, coordination = parse_personnummer(body.personnummer, today=clock.today())
    check_district(settings.districts, body.district, "body.district")
    new_id = await session.scalar(
        insert(Child)
        .values(
            id=uuid.uuid4(),
            personnummer=number,
            coordination_number=coordination,
            birth_date=birth,
            protected_identity=body.protected_identity,
            district=body.district,
        )
        .on_conflict_do_nothing(index_elements=[Child.district, Child.personnummer])
        .returning(Child.id)
    )
    if new_id is None:
        existing = await session.scalar(
            select(Child.id).where(Child.district == body.district, Child.personnummer == number)
        )
        assert existing is not None  # ON CONFLICT did nothing: the row is there, committed
        raise child_exists(existing)
    child = await session.get(Child, new_id)
    assert child is not None
    return child


async def find_child(session: AsyncSession, body: schemas.ChildLookup, *, access: Access, clock: Clock) -> Child:
    """The record of the caller's district (a district-scoped caller cannot name another: 403,
    as for any district filter), or of the district named; the same 404 whether or not another
    district holds the number, and the query never reads another district's rows."""
    number, _, _ = parse_personnummer(body.personnummer, today=clock.today())
    stmt = select(Child).where(
        Child.personnummer == number, access.list_filter(body.district, Child.district, field_name="body.district")
    )
    if body.district is not None:
        stmt = stmt.where(Child.district == body.district)
    found = list((await session.scalars(stmt.order_by(Child.district).limit(50))).all())
    if not found:
        raise not_found("child")
    if len(found) > 1:
        # Only a caller who sees every district gets here; it may know where the records are.
        raise invalid(
            "body.district",
            "registered in several districts; name one of: " + ", ".join(c.district for c in found),
        )
    return found[0]
