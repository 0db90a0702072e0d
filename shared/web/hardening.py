"""HTTP hardening every service gets from the skeleton: security headers, a request size
limit, closed CORS unless configured, and a rate limit per client on write endpoints."""

from __future__ import annotations

import math
import time
from hashlib import sha256

import jwt
from fastapi import FastAPI
from limits import RateLimitItem, parse
from limits.aio.storage import MovingWindowSupport
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kernel.errors import problem_response
from shared.kernel.settings import Settings
from shared.web.auth import Authenticator
from shared.web.runtime import runtime

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The API serves JSON; only the interactive docs need scripts and styles from the page itself
    # and the CDN that FastAPI's docs page loads them from.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
}
DOCS_PATHS = ("/docs", "/redoc")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Bulk imports: one request carries a whole file, so it has its own body size and rate limit.
IMPORT_PATH = "/v1/imports"


class BodySizeLimit:
    """Refuses request bodies over the limit with 413. The body is read (at most the limit)
    before the app sees it, so a client cannot stream an unbounded body past a Content-Length
    it did not send; the limit is small, so holding it in memory is cheap."""

    def __init__(self, app: ASGIApp, max_bytes: int, import_max_bytes: int | None = None) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.import_max_bytes = import_max_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        limit = self.import_max_bytes if scope["path"] == IMPORT_PATH else self.default_max_bytes
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(scope, receive, send, max_bytes)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; let the app see the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await self._refuse(scope, receive, send, max_bytes)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem_response(
            413, "request-too-large", "Request too large", f"Request bodies are limited to {max_bytes} bytes."
        )
        await response(scope, receive, send)


class Hardening:
    """The write rate limit and the security headers, as pure ASGI middleware: Starlette's
    BaseHTTPMiddleware (`@app.middleware("http")`) runs the rest of the app in a task joined by
    memory streams, which costs more per request than everything this layer does."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # The async flavour of each storage is named with an `async+` prefix in `limits`.
        storage = storage_from_string(f"async+{settings.rate_limit_storage}")
        assert isinstance(storage, MovingWindowSupport)
        # A moving window, although it costs about 60 us a write in memory against 9 for a sliding
        # window counter: the counter's Retry-After can only be estimated (limits answers the end of
        # the current fixed window, when the weighted count may still refuse), and a client told
        # to come back must be let in when it does.
        self.limiter = MovingWindowRateLimiter(storage)
        self.limit = parse(settings.rate_limit_writes)
        self.import_limit = parse(settings.rate_limit_imports)
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]
        self.docs_headers = [h for h in self.headers if h[0] != b"content-security-policy"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = self.docs_headers if path.startswith(DOCS_PATHS) else self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                # setdefault: a route that sets its own (e.g. Cache-Control) keeps it.
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        if scope["method"] in WRITE_METHODS and path.startswith("/v1/"):
            key = self._client_key(scope)
            service: str = runtime(scope["app"]).service
            # Imports have their own budget: one request carries a whole file.
            imports = path == IMPORT_PATH
            limit, namespace = (self.import_limit, f"{service}:imports") if imports else (self.limit, service)
            if not await self.limiter.hit(limit, namespace, key):
                response = problem_response(
                    429,
                    "rate-limited",
                    "Too many requests",
                    f"Imports are limited to {self.settings.rate_limit_imports}."
                    if imports
                    else f"Write requests are limited to {self.settings.rate_limit_writes}.",
                    path,
                )
                response.headers["Retry-After"] = str(await self._retry_after(limit, namespace, key))
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)

    def _client_key(self, scope: Scope) -> str:
        """Whose budget a write spends: the verified token's subject (however the header is
        spelt, and whichever of their tokens), else the client's address. One runaway
        integration cannot starve the others, nor buy a fresh quota by re-spelling its header."""
        token = _bearer(scope)
        if token is not None:
            authenticator: Authenticator = runtime(scope["app"]).authenticator
            try:
                principal = authenticator.verify(token)
            except (jwt.PyJWTError, ValueError):
                principal = None
            if principal is not None:
                # A fresh dict: a server may share one state dict between requests. The route's
                # authentication reuses the verification (shared/web/auth.py).
                scope["state"] = {**(scope.get("state") or {}), "verified_token": (token, principal)}
                return "sub:" + sha256(principal.subject.encode()).hexdigest()[:32]
        client = scope.get("client")
        return "addr:" + (client[0] if client else "unknown")

    async def _retry_after(self, limit: RateLimitItem, namespace: str, key: str) -> int:
        """Whole seconds until the moving window admits this client's next write."""
        stats = await self.limiter.get_window_stats(limit, namespace, key)
        return max(1, math.ceil(stats.reset_time - time.time()))


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
            return credentials.strip() or None if scheme.lower() == "bearer" else None
    return None


def install_hardening(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(Hardening, settings=settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes, import_max_bytes=settings.import_max_bytes)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
