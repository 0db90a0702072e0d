"""The `/subscriptions` callback: a source tells the intake that entities changed.

A notice carries no data (only which kinds of entity changed), so it is trusted for nothing but
waking the source's loop early: a forged one costs one extra sync. Not under /v1, since the
source holds no Obruten token; nothing it could send is stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from services.school.runtime import school_runtime
from shared.kernel.errors import Problem
from shared.web.schemas import NameText

router = APIRouter()
_PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


@router.post(
    "/ss12000/push/{source}",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["ss12000"],
    responses={
        404: {"description": "No source of that name is configured.", **_PROBLEM},
        422: {"description": "Invalid request.", **_PROBLEM},
    },
)
async def push(source: NameText, request: Request) -> dict[str, Any]:
    """Wake the intake for this source (an SS 12000 subscription's target)."""
    runners = school_runtime(request.app).ss12000_runners
    runner = runners.get(source)
    if runner is None:
        raise Problem(404, "not-found", "Unknown source", "No SS 12000 source of that name is configured.")
    runner.wake.set()
    return {"status": "accepted"}
