"""What the suite's tooling knows of the web service (shared/web/registry.py): pages for people,
no database, no API of its own, no events."""

from __future__ import annotations

from services.web.app import create_app
from services.web.settings import WebSettings
from shared.web.registry import ServiceDefinition

SERVICE = ServiceDefinition(
    name="web",
    create_app=create_app,
    migrations=None,
    settings=WebSettings,
    order=9,
    front_end=True,
    plain_http_env="OBRUTEN_WEB_PLAIN_HTTP",
)
