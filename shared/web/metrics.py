"""Prometheus metrics: requests by route, process and runtime, the outbox relay, the consumers
(events by type, lag per partition), broker reachability; services add their own (notify: alerts,
webhooks, the tick) through `on_scrape`. Names are the contract of deploy/monitoring/."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
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
        r = self.registry
        # process_* (memory, CPU, open files), python_info and python_gc_*, per service registry.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.outbox_published = Counter(
            "obruten_outbox_published_total", "Outbox rows the broker acknowledged", registry=r
        )
        self.outbox_publish_failures = Counter(
            "obruten_outbox_publish_failures_total", "Relay batches that failed to publish (retried)", registry=r
        )
        self.events_consumed = Counter(
            "obruten_events_consumed_total", "Events applied by a consumer", ["group", "type"], registry=r
        )
        self.events_rejected = Counter(
            "obruten_events_rejected_total",
            "Events a consumer refused (unparseable, unknown type, invalid data, not applicable)",
            ["group", "type"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "obruten_events_dead_lettered_total",
            "Events parked on the dead-letter topic",
            ["group", "type"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "obruten_consumer_lag",
            "Messages behind the partition's high watermark, as this consumer last saw it",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.broker_up = Gauge(
            "obruten_broker_up",
            "1 when the Kafka bootstrap servers accepted a connection at the last probe",
            registry=r,
        )
        self.database_up = Gauge("obruten_database_up", "1 when the database answered at the last probe", registry=r)
        # Work a service does at scrape time (cheap reads of its own state).
        self.on_scrape: list[Callable[[], Awaitable[None]]] = []

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
            self._observe(scope["method"], route_template(self.root, scope), status, time.perf_counter() - start)

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        latency = self._latency.get((method, route))
        if latency is None:
            latency = self._latency[(method, route)] = self.metrics.latency.labels(method, route)
        latency.observe(seconds)
        counter = self._requests.get((method, route, status))
        if counter is None:
            counter = self._requests[(method, route, status)] = self.metrics.requests.labels(method, route, str(status))
        counter.inc()


def route_template(app: FastAPI, scope: Scope) -> str:
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    for r in app.router.routes:
        match, _ = r.matches(scope)
        if match == Match.FULL:
            return str(getattr(r, "path", "unmatched"))
    return "unmatched"
