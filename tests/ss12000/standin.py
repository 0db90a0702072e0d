"""A stand-in SS 12000 server for the tests: real HTTP on a free port, and every request it takes
and every answer it gives validated against the vendored standard (tests/ss12000/spec), so it
cannot drift from SS 12000 v2.0.0 without the tests failing. It keeps a log of every request.

It serves what the intake reads: /organisations, /persons (`meta.modified.after`, exclusive;
`limit`; an opaque `pageToken` that carries the first request's filters and a snapshot of the
result), /subscriptions (push notices to the target on every publish), and an OAuth2 token
endpoint (not part of SS 12000, so not validated against it). Faults are injected per page.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.embedded import free_port

SPEC = Path(__file__).parent / "spec" / "openapi.yaml"
# The spec's own server: requests are validated as if sent to it.
SPEC_HOST, PREFIX = "http://some.server.se", "/v2.0"
TOKEN = "standin-token"


@lru_cache
def standard() -> OpenAPI:
    # The published document has one schema error outside the paths used here (spec/ORIGIN.md).
    return OpenAPI.from_file_path(str(SPEC), config=Config(spec_validator_cls=None))


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str


@dataclass
class Faults:
    # Page numbers (1-based, per /persons change set) answered 500.
    pages: set[int] = field(default_factory=set)
    # Every /persons and /organisations request answered 500.
    everything: bool = False
    # Every n-th /persons request answered 500 (a flaky source); 0: off.
    every_nth: int = 0
    # Seconds every /persons answer is held back (a slow source).
    delay: float = 0.0
    # Page 2 hands out the token of page 1 again (paging that never ends).
    repeat_token: bool = False


class StandIn:
    def __init__(self) -> None:
        self.organisations: list[dict[str, Any]] = []
        self.persons: dict[str, dict[str, Any]] = {}
        self.log: list[LoggedRequest] = []
        self.violations: list[str] = []
        self.faults = Faults()
        self.subscriptions: list[dict[str, Any]] = []
        self._cursors: dict[str, tuple[list[str], int]] = {}
        self._tick = datetime(2025, 8, 1, tzinfo=UTC)
        self._persons_requests = 0
        self.oauth_tokens: set[str] = set()
        self.url = ""

    # --- data -------------------------------------------------------------------------------

    def now(self) -> datetime:
        # Strictly increasing modification times, a millisecond apart, as a real source's clock.
        self._tick += timedelta(milliseconds=1)
        return self._tick

    def add_school_unit(self, code: str, name: str) -> str:
        org_id = str(uuid.uuid4())
        self.organisations.append(
            {
                "id": org_id,
                "meta": {"created": self.now().isoformat(), "modified": self.now().isoformat()},
                "displayName": name,
                "organisationType": "Skolenhet",
                "schoolUnitCode": code,
                "schoolTypes": ["GR"],
                "municipalityCode": "0180",
            }
        )
        return org_id

    def put_person(self, person_id: str, civic_no: str, enrolments: list[dict[str, Any]], **extra: Any) -> None:
        """Create or change a person; its meta.modified moves to now."""
        stamp = self.now().isoformat()
        created = self.persons.get(person_id, {}).get("meta", {}).get("created", stamp)
        self.persons[person_id] = {
            "id": person_id,
            "meta": {"created": created, "modified": stamp},
            "givenName": extra.pop("givenName", "Elev"),
            "familyName": extra.pop("familyName", "Elevsson"),
            "civicNo": {"value": civic_no, "nationality": "SE"},
            "enrolments": enrolments,
            **extra,
        }

    async def publish(self) -> None:
        """Tell every subscriber that persons changed (SS 12000's push notice)."""
        async with httpx.AsyncClient(timeout=5) as client:
            for sub in self.subscriptions:
                with contextlib.suppress(httpx.HTTPError):
                    await client.post(sub["target"], json={"modifiedEntites": ["Person"]})

    # --- HTTP -------------------------------------------------------------------------------

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.append(
            LoggedRequest(
                request.method,
                request.url.path,
                request.url.query,
                dict(request.headers),
                body.decode("utf-8", "replace"),
            )
        )
        return body

    @staticmethod
    def _mock(request: Request, body: bytes) -> MockRequest:
        return MockRequest(
            SPEC_HOST,
            request.method.lower(),
            request.url.path,
            args=dict(request.query_params),
            headers=dict(request.headers),
            data=body or None,
            content_type=request.headers.get("content-type", "application/json"),
        )

    def _refused(self, request: Request, body: bytes) -> Response | None:
        """A request the standard does not allow: kept for the test to fail on, answered 403
        (no token) or 400 (anything else), as the standard's responses say."""
        try:
            standard().validate_request(self._mock(request, body))
        except Exception as exc:
            self.violations.append(f"request {request.method} {request.url.path}: {exc}")
            if not self._authorised(request):
                return self._answer(request, body, 403, {"code": "forbidden", "message": "No valid token."})
            return self._answer(request, body, 400, {"code": "invalid", "message": "Invalid request."})
        if not self._authorised(request):
            return self._answer(request, body, 403, {"code": "forbidden", "message": "Token not accepted."})
        return None

    def _answer(self, request: Request, body: bytes, status: int, payload: Any) -> Response:
        """Validate the answer against the standard; a violation is kept for the test to fail on,
        and the answer is still sent (the client must not be the judge)."""
        content = b"" if payload is None else json.dumps(payload).encode()
        if status != 204:
            try:
                standard().validate_response(
                    self._mock(request, body),
                    MockResponse(content, status_code=status, content_type="application/json"),
                )
            except Exception as exc:
                self.violations.append(f"response {status} {request.method} {request.url.path}: {exc}")
        if payload is None:
            return Response(status_code=status)
        return JSONResponse(payload, status_code=status)

    def _authorised(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth in (f"Bearer {TOKEN}", *(f"Bearer {t}" for t in self.oauth_tokens))

    def _page(self, ids: list[str], offset: int, limit: int, source: dict[str, dict[str, Any]]) -> dict[str, Any]:
        chunk = ids[offset : offset + limit]
        token = None
        if offset + limit < len(ids):
            token = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode()
            self._cursors[token] = (ids, offset + limit)
        return {"data": [source[i] for i in chunk], "pageToken": token}

    async def persons_route(self, request: Request) -> Response:
        body = await self._record(request)
        refused = self._refused(request, body)
        if refused is not None:
            return refused
        self._persons_requests += 1
        q = request.query_params
        limit = int(q.get("limit", "100"))
        if "pageToken" in q:
            if q["pageToken"] not in self._cursors:
                return self._answer(request, body, 400, {"code": "invalid-token", "message": "Unknown page token."})
            ids, offset = self._cursors[q["pageToken"]]
        else:
            after = datetime.fromisoformat(q["meta.modified.after"]) if "meta.modified.after" in q else None
            rows = sorted(self.persons.values(), key=lambda p: (p["meta"]["modified"], p["id"]))
            ids = [p["id"] for p in rows if after is None or datetime.fromisoformat(p["meta"]["modified"]) > after]
            offset = 0
        page_no = offset // limit + 1
        flaky = self.faults.every_nth and self._persons_requests % self.faults.every_nth == 0
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        if self.faults.everything or page_no in self.faults.pages or flaky:
            return self._answer(request, body, 500, {"code": "internal", "message": "Temporarily unavailable."})
        # Snapshot at the first page: later pages are those the first request selected.
        snapshot = {i: self.persons[i] for i in ids if i in self.persons}
        page = self._page(ids, offset, limit, snapshot)
        if self.faults.repeat_token and page_no == 2 and "pageToken" in q:
            page["pageToken"] = q["pageToken"]
        return self._answer(request, body, 200, page)

    async def organisations_route(self, request: Request) -> Response:
        body = await self._record(request)
        refused = self._refused(request, body)
        if refused is not None:
            return refused
        if self.faults.everything:
            return self._answer(request, body, 500, {"code": "internal", "message": "Temporarily unavailable."})
        q = request.query_params
        limit = int(q.get("limit", "100"))
        ids, offset = self._cursors[q["pageToken"]] if "pageToken" in q else ([o["id"] for o in self.organisations], 0)
        by_id = {o["id"]: o for o in self.organisations}
        return self._answer(request, body, 200, self._page(ids, offset, limit, by_id))

    async def subscriptions_route(self, request: Request) -> Response:
        body = await self._record(request)
        refused = self._refused(request, body)
        if refused is not None:
            return refused
        wanted = json.loads(body)
        sub = {**wanted, "id": str(uuid.uuid4()), "expires": (datetime.now(UTC) + timedelta(days=30)).isoformat()}
        self.subscriptions.append(sub)
        return self._answer(request, body, 201, sub)

    async def token_route(self, request: Request) -> Response:
        # OAuth2 client credentials (RFC 6749 4.4); not part of SS 12000.
        body = await self._record(request)
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "client_credentials" or form.get("client_secret") != "standin-secret":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = secrets.token_urlsafe(16)
        self.oauth_tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{PREFIX}/persons", self.persons_route, methods=["GET"]),
                Route(f"{PREFIX}/organisations", self.organisations_route, methods=["GET"]),
                Route(f"{PREFIX}/subscriptions", self.subscriptions_route, methods=["POST"]),
                Route("/oauth/token", self.token_route, methods=["POST"]),
            ]
        )

    def logged_text(self) -> str:
        """Everything any client sent, as one string to search."""
        return "\n".join(f"{r.method} {r.path}?{r.query} {json.dumps(r.headers)} {r.body}" for r in self.log)


@contextlib.asynccontextmanager
async def serve(standin: StandIn) -> AsyncIterator[StandIn]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(standin.app(), host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    standin.url = f"http://127.0.0.1:{port}{PREFIX}"
    try:
        yield standin
    finally:
        server.should_exit = True
        await task
