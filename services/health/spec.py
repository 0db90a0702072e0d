"""What the suite's tooling knows of the health service (shared/web/registry.py)."""

from __future__ import annotations

from pathlib import Path

from services.health.app import create_app
from services.health.policy import ROUTES
from services.health.settings import HealthSettings
from shared.contracts import health
from shared.contracts.envelope import EventType
from shared.web.registry import ServiceDefinition

SERVICE = ServiceDefinition(
    name="health",
    create_app=create_app,
    migrations=Path(__file__).resolve().parent / "migrations",
    settings=HealthSettings,
    routes=ROUTES,
    emits=tuple(v for v in vars(health).values() if isinstance(v, EventType)),
    order=3,
)
