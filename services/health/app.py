"""The health service's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from services.health.endpoints import router
from services.health.models import audit, inbox, outbox, placement_view
from services.health.policy import ROUTES
from services.health.reports.endpoints import router as reports_router
from services.health.settings import HealthSettings
from shared.bus.placement_copy import placement_consumer
from shared.contracts.topics import TOPIC_PLACEMENT
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings, get_settings
from shared.web.app import ConsumerSpec, ServiceSpec, create_service_app
from shared.web.placement_client import close_placement_client, open_placement_client
from shared.web.runtime import runtime

SPEC = ServiceSpec(
    name="health",
    title="Obruten health service",
    description=(
        "Health and dental examinations of placed children: that they were booked, completed, declined or missed, "
        "and when; never their medical content. Emits events on `obruten.health`."
    ),
    routers=[router, reports_router],
    audit=audit,
    routes=ROUTES,
    outbox=outbox,
    inbox=inbox,
    consumers=[ConsumerSpec(group_id="health", topics=[TOPIC_PLACEMENT], handler=placement_consumer(placement_view))],
    on_startup=[open_placement_client],
    on_shutdown=[close_placement_client],
)


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, service_settings: HealthSettings | None = None
) -> FastAPI:
    app = create_service_app(SPEC, settings or get_settings(), clock)
    runtime(app).extra = service_settings or HealthSettings()
    return app
