"""The school service's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from services.school.corrections import after_placement_event
from services.school.endpoints import router
from services.school.models import audit, inbox, outbox, placement_view
from services.school.policy import ROUTES
from services.school.reports.endpoints import router as reports_router
from services.school.runtime import SchoolRuntime
from services.school.ss12000.push import router as ss12000_push_router
from services.school.ss12000.runner import run_intake
from services.school.ss12000.settings import IntakeSettings, parse_sources
from shared.bus.placement_copy import placement_consumer
from shared.contracts.topics import TOPIC_PLACEMENT
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings, get_settings
from shared.web.app import ConsumerSpec, ServiceSpec, create_service_app
from shared.web.placement_client import close_placement_client, open_placement_client
from shared.web.runtime import runtime

# What runs beside the relay and the consumer; the registered spec (spec.py) carries the same.
BACKGROUND = (run_intake,)

SPEC = ServiceSpec(
    name="school",
    title="Obruten school service",
    description="School plans, school starts and school ends of placed children. Emits events on `obruten.school`.",
    routers=[router, reports_router, ss12000_push_router],
    audit=audit,
    routes=ROUTES,
    outbox=outbox,
    inbox=inbox,
    consumers=[
        ConsumerSpec(
            group_id="school",
            topics=[TOPIC_PLACEMENT],
            handler=placement_consumer(placement_view, after_placement_event),
        )
    ],
    on_startup=[open_placement_client],
    on_shutdown=[close_placement_client],
    background=BACKGROUND,
)


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, service_settings: IntakeSettings | None = None
) -> FastAPI:
    settings = settings or get_settings()
    intake = service_settings or IntakeSettings()
    # A malformed OBRUTEN_SCHOOL_SS12000_SOURCES stops the service here, naming the entry at fault.
    parse_sources(intake.sources)
    app = create_service_app(SPEC, settings, clock)
    runtime(app).extra = SchoolRuntime(ss12000_settings=intake)
    return app
