"""Request ids and structured access lines.

Each request gets an id (the caller's `X-Request-ID` when it is a plain token, else a new one),
answered in the `X-Request-ID` header and in problem+json bodies, and put on every log line
written while the request runs. The access line names the route template (`/v1/children/{child_id}`),
never the raw path or query string, so no personal data can reach the log through a URL.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kernel.logging import request_id
from shared.web.metrics import route_template

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# A caller's id is kept only when it cannot carry anything but an id.
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
access = logging.getLogger("obruten.access")


class RequestIdMiddleware:
    """Pure ASGI (see shared/metrics.py for why not BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, root: ASGIApp) -> None:
        self.app = app
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == _HEADER_KEY), "")
        rid = given if _SAFE.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), (_HEADER_KEY, rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = route_template(self.root, scope)  # type: ignore[arg-type]
            if route not in ("/healthz", "/readyz", "/metrics"):
                access.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - start) * 1000, 1),
                    },
                )
            request_id.reset(token)
