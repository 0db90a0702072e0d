"""The placement service's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from services.placement.endpoints import router
from services.placement.models import audit, inbox, outbox
from services.placement.policy import ROUTES
from services.placement.pupil_keys_api import router as pupil_keys_router
from services.placement.reports.endpoints import router as reports_router
from services.placement.school_copy import apply_school_event
from services.placement.settings import PlacementSettings
from shared.contracts.topics import TOPIC_SCHOOL
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings, get_settings
from shared.web.app import ConsumerSpec, ServiceSpec, create_service_app
from shared.web.runtime import runtime

SPEC = ServiceSpec(
    name="placement",
    title="Obruten placement service",
    description=(
        "Children placed outside the home and their placements. Emits events on `obruten.placement`; "
        "reads `obruten.school` for the days school starts came."
    ),
    routers=[router, reports_router, pupil_keys_router],
    audit=audit,
    routes=ROUTES,
    outbox=outbox,
    inbox=inbox,
    consumers=[ConsumerSpec(group_id="placement", topics=[TOPIC_SCHOOL], handler=apply_school_event)],
)


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, service_settings: PlacementSettings | None = None
) -> FastAPI:
    app = create_service_app(SPEC, settings or get_settings(), clock)
    runtime(app).extra = service_settings or PlacementSettings()
    return app
