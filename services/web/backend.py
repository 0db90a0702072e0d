"""The services' public HTTP APIs, called with the signed-in person's own token.

The web service sees exactly what any other front end with that token would: the policy, the row
scoping, the redaction of a protected child's whereabouts and the audit trail all apply in the
services. Nothing here reads a service's tables or imports a service's code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from shared.kernel.settings import Settings

log = logging.getLogger("obruten.web.backend")

# The services whose public APIs the pages call.
SERVICES = ("placement", "school", "health", "notify")

Params = Mapping[str, str | int | bool | None]


class ApiError(Exception):
    """A service refused: its problem+json (RFC 9457) as sent."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("title") or str(status))
        self.status = status
        self.problem = problem

    def field_errors(self) -> dict[str, str]:
        """Reasons by the request field they name, `body.` dropped: the form's own input names."""
        out: dict[str, str] = {}
        items = self.problem.get("errors") or []
        if not items and self.problem.get("field"):
            items = [{"field": self.problem["field"], "reason": self.problem.get("detail") or ""}]
        for item in items:
            name = str(item.get("field") or "")
            if name.startswith("body."):
                name = name[len("body.") :]
            out.setdefault(name or "_", str(item.get("reason") or self.problem.get("detail") or ""))
        if not out:
            out["_"] = str(self.problem.get("detail") or self.problem.get("title") or self.status)
        return out


class Unavailable(Exception):
    """A service did not answer."""


class Backend:
    """One connection pool to the four services, shared by every person's calls."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = {name: settings.service_base_url(name) for name in SERVICES}
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=3.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=40),
            transport=transport,
        )

    def person(self, token: str) -> PersonApi:
        return PersonApi(self, token)

    async def close(self) -> None:
        await self.client.aclose()


class PersonApi:
    def __init__(self, backend: Backend, token: str) -> None:
        self.backend = backend
        self.headers = {"Authorization": f"Bearer {token}"}

    async def request(
        self,
        method: str,
        service: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        accept: str = "application/json",
    ) -> httpx.Response:
        url = f"{self.backend.urls[service]}{path}"
        query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in (params or {}).items() if v is not None}
        try:
            resp = await self.backend.client.request(
                method, url, params=query, json=json, headers={**self.headers, "Accept": accept}
            )
        except httpx.TransportError as exc:
            # The path holds pseudonymous ids only; no query string, no body is logged.
            log.warning("service unreachable", extra={"service": service, "error": type(exc).__name__})
            raise Unavailable(service) from exc
        if resp.status_code >= 400:
            try:
                problem = resp.json()
            except ValueError:
                problem = {"title": resp.reason_phrase, "status": resp.status_code}
            if resp.status_code >= 500:
                log.warning("service failed", extra={"service": service, "status": resp.status_code})
            raise ApiError(resp.status_code, problem if isinstance(problem, dict) else {"title": str(problem)})
        return resp

    async def get(self, service: str, path: str, params: Params | None = None) -> Any:
        return (await self.request("GET", service, path, params=params)).json()

    async def post(self, service: str, path: str, body: Any) -> Any:
        return (await self.request("POST", service, path, json=body)).json()

    async def put(self, service: str, path: str, body: Any) -> Any:
        resp = await self.request("PUT", service, path, json=body)
        return resp.json() if resp.content else None

    async def get_all(self, service: str, path: str, params: Params | None = None, page: int = 500) -> list[Any]:
        """Every item of a paged list: the first page tells the total, the rest come at once."""
        first = await self.get(service, path, {**(params or {}), "limit": page, "offset": 0})
        items: list[Any] = list(first["items"])
        offsets = range(page, int(first["total"]), page)
        pages = await asyncio.gather(
            *(self.get(service, path, {**(params or {}), "limit": page, "offset": o}) for o in offsets)
        )
        for p in pages:
            items.extend(p["items"])
        return items
