"""Prometheus metrics: requests and latencies by route, and the outbox backlog."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.requests = Counter(
            "obruten_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "obruten_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.outbox_backlog = Gauge("obruten_outbox_backlog", "Unsent outbox rows", registry=self.registry)
        self.outbox_oldest_age = Gauge(
            "obruten_outbox_oldest_unsent_age_seconds", "Age of the oldest unsent outbox row", registry=self.registry
        )

    def install(self, app: FastAPI) -> None:
        app.add_middleware(MetricsMiddleware, metrics=self, root=app)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI, not BaseHTTPMiddleware: the latter runs the rest of the app in a separate task
    joined by memory streams, which cost more per request than the whole metric."""

    def __init__(self, app: ASGIApp, metrics: Metrics, root: FastAPI) -> None:
        self.app = app
        self.metrics = metrics
        self.root = root
        # Labelled children by key: `labels()` takes a lock and builds a tuple key on every call.
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._requests: dict[tuple[str, str, int], Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The route template, not the path: ids must not become label values. The router
            # leaves the matched route in the scope it was handed, which is this one.
            self._observe(scope["method"], _route_template(self.root, scope), status, time.perf_counter() - start)

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        latency = self._latency.get((method, route))
        if latency is None:
            latency = self._latency[(method, route)] = self.metrics.latency.labels(method, route)
        latency.observe(seconds)
        counter = self._requests.get((method, route, status))
        if counter is None:
            counter = self._requests[(method, route, status)] = self.metrics.requests.labels(method, route, str(status))
        counter.inc()


def _route_template(app: FastAPI, scope: Scope) -> str:
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    for r in app.router.routes:
        match, _ = r.matches(scope)
        if match == Match.FULL:
            return str(getattr(r, "path", "unmatched"))
    return "unmatched"
