"""What the suite's tooling knows of the notify service (shared/web/registry.py)."""

from __future__ import annotations

from pathlib import Path

from services.notify.app import BACKGROUND, create_app
from services.notify.policy import ROUTES
from services.notify.replay import REPLAY
from services.notify.settings import NotifySettings
from shared.contracts import alerts
from shared.contracts.envelope import EventType
from shared.web.registry import ServiceDefinition

SERVICE = ServiceDefinition(
    name="notify",
    create_app=create_app,
    migrations=Path(__file__).resolve().parent / "migrations",
    settings=NotifySettings,
    routes=ROUTES,
    emits=tuple(v for v in vars(alerts).values() if isinstance(v, EventType)),
    order=4,
    background=BACKGROUND,
    replay=REPLAY,
    smtp_env="OBRUTEN_NOTIFY_SMTP",
)
