"""The keyed hashes of the children with an open placement, for the school service's SS 12000
intake (shared/kernel/pupil_key.py): the one thing that lets it recognise a placed child among a
school organiser's pupils without asking the organiser about anyone.

Open to the `service` role only (not even admin: a hash is as sensitive as the number). A GET:
the request carries nothing, so nothing can stand in its URL, and `Cache-Control: no-store`
keeps the answer out of every cache between the two services.
"""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import Response
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from services.placement.models import Child, Placement
from shared.kernel.clock import ClockDep
from shared.kernel.db import SessionDep
from shared.kernel.errors import Problem
from shared.kernel.pupil_key import pupil_key
from shared.web.app import SettingsDep
from shared.web.policy import AccessDep, v1_router

router = v1_router()


class AwaitingPlacement(BaseModel):
    placement_id: uuid.UUID
    child_id: uuid.UUID
    start_date: date
    end_date: date | None
    key: str = Field(description="HMAC-SHA256 of the child's personnummer under the shared match key (hex).")


class PupilKeys(BaseModel):
    items: list[AwaitingPlacement]


@router.get("/pupil-keys", response_model=PupilKeys, tags=["placements"], include_in_schema=True)
async def pupil_keys(
    session: SessionDep, settings: SettingsDep, clock: ClockDep, access: AccessDep, response: Response
) -> PupilKeys:
    """The placements under way today (and those starting later), each with its child's keyed hash."""
    access.scoped = True
    if settings.ss12000_match_key is None:
        raise Problem(
            503, "match-key-unset", "Match key not configured", "OBRUTEN_SS12000_MATCH_KEY is not set on this service."
        )
    secret = settings.ss12000_match_key.get_secret_value().encode()
    rows = await session.execute(
        select(Placement.id, Placement.child_id, Placement.start_date, Placement.end_date, Child.personnummer)
        .join(Child, Child.id == Placement.child_id)
        .where(or_(Placement.end_date.is_(None), Placement.end_date > clock.today()))
        .order_by(Placement.id)
    )
    response.headers["Cache-Control"] = "no-store"
    return PupilKeys(
        items=[
            AwaitingPlacement(
                placement_id=r.id,
                child_id=r.child_id,
                start_date=r.start_date,
                end_date=r.end_date,
                key=pupil_key(secret, r.personnummer),
            )
            for r in rows
        ]
    )
