"""The health service's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from services.health.endpoints import router
from services.health.models import audit, inbox, outbox
from services.health.reports.endpoints import router as reports_router
from services.health.service import apply_placement_event
from shared.bus.placement_copy import PlacementClient
from shared.contracts.topics import TOPIC_PLACEMENT
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings, get_settings
from shared.web.app import ConsumerSpec, ServiceSpec, create_service_app


async def _open_placement_client(app: FastAPI) -> None:
    # One pooled client for the app's lifetime, for placements not yet seen on the bus.
    app.state.placement_client = PlacementClient(app.state.settings)


async def _close_placement_client(app: FastAPI) -> None:
    client: PlacementClient | None = getattr(app.state, "placement_client", None)
    if client is not None:
        await client.close()


SPEC = ServiceSpec(
    name="health",
    title="Obruten health service",
    description=(
        "Health and dental examinations of placed children: that they were booked, completed, declined or missed, "
        "and when; never their medical content. Emits events on `obruten.health`."
    ),
    routers=[router, reports_router],
    audit=audit,
    outbox=outbox,
    inbox=inbox,
    consumers=[ConsumerSpec(group_id="health", topics=[TOPIC_PLACEMENT], handler=apply_placement_event)],
    on_startup=[_open_placement_client],
    on_shutdown=[_close_placement_client],
)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or get_settings(), clock)
