"""A service app's runtime: everything the kernel and the service keep for the app's lifetime,
typed, in the one attribute it keeps on `app.state` (`app.state.runtime`).

Built by create_service_app. A service's own state (its settings, its metrics, what its
background tasks share) is one object of its own type in `extra`, read through `extra(app, T)`:
the service sets it right after create_service_app, because it is built from the kernel's
fields (the metrics registry), and a checked accessor gives mypy the type without a cast."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, FastAPI, Request

from shared.kernel.runtime import KernelRuntime

if TYPE_CHECKING:
    from sqlalchemy import Table

    from shared.bus.inbox import EventConsumer
    from shared.bus.outbox import Outbox, OutboxRelay
    from shared.bus.placement_copy import PlacementClient
    from shared.kernel.settings import Settings
    from shared.web.auth import Authenticator
    from shared.web.metrics import Metrics
    from shared.web.operations import BrokerProbe
    from shared.web.policy import RouteRule

T = TypeVar("T")


@dataclass(kw_only=True)
class ServiceRuntime(KernelRuntime):
    settings: Settings
    authenticator: Authenticator
    service: str
    routes: dict[tuple[str, str], RouteRule]
    outbox: Outbox | None
    audit_table: Table
    metrics: Metrics
    broker_probe: BrokerProbe
    # Set when the app starts (its lifespan): the relay of a service with an outbox, the consumers.
    relay: OutboxRelay | None = None
    consumers: list[EventConsumer] = field(default_factory=list)
    # School's and health's client for placements not yet seen on the bus (shared/web/placement_client.py).
    placement_client: PlacementClient | None = None
    # The service's own state: one object of its own type (see extra()).
    extra: object = None


def runtime(app: FastAPI) -> ServiceRuntime:
    found = getattr(app.state, "runtime", None)
    if not isinstance(found, ServiceRuntime):
        raise RuntimeError("this app has no service runtime (a service app is built by create_service_app)")
    return found


def extra(app: FastAPI, kind: type[T]) -> T:
    """The service's own state, checked to be of the type its code expects."""
    found = runtime(app).extra
    if not isinstance(found, kind):
        raise RuntimeError(f"this app's runtime holds no {kind.__name__} (set after create_service_app)")
    return found


async def _runtime(request: Request) -> ServiceRuntime:
    return runtime(request.app)


RuntimeDep = Annotated[ServiceRuntime, Depends(_runtime)]
