"""What the suite's tooling knows of the placement service (shared/web/registry.py)."""

from __future__ import annotations

from pathlib import Path

from services.placement.app import create_app
from services.placement.policy import ROUTES
from services.placement.settings import PlacementSettings
from shared.contracts import placement
from shared.contracts.envelope import EventType
from shared.web.registry import ServiceDefinition

SERVICE = ServiceDefinition(
    name="placement",
    create_app=create_app,
    migrations=Path(__file__).resolve().parent / "migrations",
    settings=PlacementSettings,
    routes=ROUTES,
    emits=tuple(v for v in vars(placement).values() if isinstance(v, EventType)),
    order=1,
)
