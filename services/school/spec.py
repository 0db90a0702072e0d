"""What the suite's tooling knows of the school service (shared/web/registry.py)."""

from __future__ import annotations

from pathlib import Path

from services.school.app import BACKGROUND, create_app
from services.school.policy import ROUTES
from services.school.ss12000.settings import IntakeSettings
from shared.contracts import school
from shared.contracts.envelope import EventType
from shared.web.registry import ServiceDefinition

SERVICE = ServiceDefinition(
    name="school",
    create_app=create_app,
    migrations=Path(__file__).resolve().parent / "migrations",
    settings=IntakeSettings,
    routes=ROUTES,
    emits=tuple(v for v in vars(school).values() if isinstance(v, EventType)),
    order=2,
    background=BACKGROUND,
)
