"""Rendering pages: one Jinja2 environment, the texts, and the headers every page carries."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from services.web.access import nav_items
from services.web.sessions import WebSession
from services.web.settings import WebSettings
from services.web.texts import Texts
from shared.kernel.settings import Settings

HTMX = "vendor/htmx-2.0.8.min.js"


class Pages:
    def __init__(self, settings: Settings, config: WebSettings, texts: Texts) -> None:
        self.settings = settings
        self.config = config
        self.texts = texts
        self.zone = ZoneInfo(settings.timezone)
        self.env = Environment(
            loader=PackageLoader("services.web", "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(t=texts, htmx=HTMX, districts=settings.districts)
        self.env.filters.update(day=self._day, when=self._when, label=self._label, pnr=self._pnr)

    @property
    def development(self) -> bool:
        return self.config.oidc_issuer is None

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any] | None = None,
        *,
        session: WebSession | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        ctx = {
            "request": request,
            "session": session,
            "principal": session.principal if session else None,
            "csrf": session.csrf if session else "",
            "nav": nav_items(session.principal) if session else [],
            "path": request.url.path,
            "development": self.development,
            "refresh_seconds": self.config.refresh_seconds,
            "errors": {},
            "values": {},
            **(context or {}),
        }
        html = self.env.get_template(template).render(ctx)
        return HTMLResponse(html, status_code=status)

    def _day(self, value: str | date | None) -> str:
        if not value:
            return "–"
        d = date.fromisoformat(value) if isinstance(value, str) else value
        return d.isoformat()

    def _when(self, value: str | datetime | None) -> str:
        if not value:
            return "–"
        dt = datetime.fromisoformat(value) if isinstance(value, str) else value
        return dt.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    @staticmethod
    def _pnr(value: str | None) -> str:
        """A personnummer as people write it: YYYYMMDD-NNNN."""
        if not value:
            return "–"
        return f"{value[:8]}-{value[8:]}" if len(value) == 12 and value.isdigit() else value

    def _label(self, value: object, group: str) -> str:
        key = f"{group}.{value}"
        return self.texts(key) if self.texts.has(key) else str(value)
