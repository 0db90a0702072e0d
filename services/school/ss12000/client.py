"""One SS 12000 source over HTTP: authentication, paging, and the few fields the intake reads.

What goes to a source never depends on which children social services cares for: the intake
asks for every person changed since its position, every organisation, and (when configured)
a subscription. No personnummer, no hash, no child's id, no school unit of interest is ever
sent. Whatever a source answers is read into memory, and a person who matches no placed child
is dropped with the page.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from services.school.ss12000.settings import SourceConfig

# Attempts per request, including the first: a blip is retried, an outage fails the sync.
ATTEMPTS = 3


class SourceError(Exception):
    """A source could not be read. `kind` is a category safe to log and to count (`http-503`,
    `timeout`, `paging`): never a body, a URL with its query, or an entity."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Reference(_Lenient):
    id: uuid.UUID


class Enrolment(_Lenient):
    enroledAt: Reference
    schoolType: str
    startDate: date
    endDate: date | None = None
    cancelled: bool = False


class CivicNo(_Lenient):
    value: str


class Meta(_Lenient):
    modified: datetime | None = None


class PersonFacts(_Lenient):
    """The parts of a Person the intake reads; the rest (names, addresses) is never parsed."""

    civicNo: CivicNo | None = None
    meta: Meta | None = None
    enrolments: list[Enrolment] = []


def parse_person(entity: Any) -> PersonFacts | None:
    """None for a malformed entity. The validation error is not kept: it quotes the input.

    One malformed enrolment makes the whole person malformed, on purpose: dropping just that
    enrolment would read as the school having removed it, and withdraw a start it made."""
    try:
        return PersonFacts.model_validate(entity)
    except ValidationError:
        return None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, SourceError) and (
        exc.kind.startswith("http-5") or exc.kind in ("http-429", "timeout", "connect")
    )


class SourceClient:
    def __init__(self, source: SourceConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.source = source
        self.http = httpx.AsyncClient(
            base_url=source.url.rstrip("/"), timeout=httpx.Timeout(source.timeout_seconds), transport=transport
        )
        self._token: str | None = source.token.get_secret_value() if source.token else None
        self._token_expires = float("inf") if source.token else 0.0

    async def close(self) -> None:
        await self.http.aclose()

    async def _bearer(self, *, renew: bool = False) -> str:
        if self._token is not None and not renew and time.monotonic() < self._token_expires:
            return self._token
        s = self.source
        if s.token is not None:
            return s.token.get_secret_value()
        assert s.token_url and s.client_id and s.client_secret
        form = {"grant_type": "client_credentials", "client_id": s.client_id}
        form["client_secret"] = s.client_secret.get_secret_value()
        if s.scope:
            form["scope"] = s.scope
        resp = await self._send("POST", s.token_url, data=form, authenticated=False)
        try:
            body = resp.json()
            token, lifetime = str(body["access_token"]), float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            raise SourceError("auth-malformed") from None
        # Renewed a little early, so that a token does not expire between two pages.
        self._token, self._token_expires = token, time.monotonic() + max(lifetime - 30, lifetime / 2)
        return token

    async def _send(self, method: str, url: str, *, authenticated: bool = True, **kwargs: Any) -> httpx.Response:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential_jitter(initial=0.2, max=2.0),
            reraise=True,
        ):
            with attempt:
                headers = {"Accept": "application/json"}
                if authenticated:
                    headers["Authorization"] = f"Bearer {await self._bearer()}"
                try:
                    resp = await self.http.request(method, url, headers=headers, **kwargs)
                    if resp.status_code == 401 and authenticated and self.source.token is None:
                        headers["Authorization"] = f"Bearer {await self._bearer(renew=True)}"
                        resp = await self.http.request(method, url, headers=headers, **kwargs)
                except httpx.TimeoutException:
                    raise SourceError("timeout") from None
                except httpx.TransportError:
                    raise SourceError("connect") from None
                if resp.status_code >= 400:
                    raise SourceError(f"http-{resp.status_code}")
        return resp

    async def _pages(self, path: str, params: dict[str, str]) -> AsyncIterator[list[Any]]:
        """Each page's `data`, following `pageToken` until the source answers null. The token
        carries the first request's filters, so later pages send only it and `limit`."""
        limit = str(self.source.page_size)
        query: dict[str, str] = {**params, "limit": limit}
        seen: set[str] = set()
        for _ in range(self.source.max_pages):
            resp = await self._send("GET", path, params=query)
            try:
                body = resp.json()
            except ValueError:
                raise SourceError("malformed-page") from None
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise SourceError("malformed-page")
            yield body["data"]
            token = body.get("pageToken")
            if token is None or token == "":
                return
            if not isinstance(token, str) or token in seen:
                raise SourceError("paging")
            seen.add(token)
            query = {"pageToken": token, "limit": limit}
        raise SourceError("too-many-pages")

    async def school_units(self) -> dict[uuid.UUID, str | None]:
        """Every organisation's id and skolenhetskod (None when it has none). All of them, never
        one by id: asking for the unit a matched child attends would point at the child."""
        units: dict[uuid.UUID, str | None] = {}
        async for page in self._pages("/organisations", {}):
            for entity in page:
                try:
                    org = uuid.UUID(str(entity["id"]))
                except (KeyError, TypeError, ValueError):
                    continue
                code = entity.get("schoolUnitCode")
                units[org] = code if isinstance(code, str) else None
        return units

    def changed_persons(self, after: datetime | None) -> AsyncIterator[list[Any]]:
        """Pages of persons changed after `after` (exclusive), or of all persons when None."""
        return self._pages("/persons", {"meta.modified.after": after.isoformat()} if after else {})

    async def subscribe(self, target: str) -> datetime | None:
        """Ask the source to notify `target` when persons change; its expiry, when told."""
        body = {"name": "obruten", "target": target, "resourceTypes": [{"resource": "Person"}]}
        resp = await self._send("POST", "/subscriptions", json=body)
        try:
            return datetime.fromisoformat(str(resp.json()["expires"]))
        except (ValueError, KeyError, TypeError):
            return None
