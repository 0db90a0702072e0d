"""What an operator's tools ask a service: alive, ready, details, metrics.

Readiness is whether this instance can serve its API, which needs its database and nothing
else: writes go through the outbox, so a broker outage delays events but fails no request, and
must not take every pod out of service. Broker reachability is reported in /healthz/details and
as the `obruten_broker_up` metric instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.kernel.settings import Settings
from shared.web.metrics import Metrics
from shared.web.runtime import runtime

# How often the broker is probed in the background (a scrape or a probe never waits on it).
BROKER_PROBE_SECONDS = 10.0


class BrokerProbe:
    """Remembers whether the broker accepted a TCP connection at the last probe."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.up: bool | None = None
        self.checked_at: float | None = None

    async def check(self) -> bool:
        self.up = await broker_reachable(self.settings)
        self.checked_at = time.time()
        self.metrics.broker_up.set(1 if self.up else 0)
        return self.up

    async def run(self, _app: FastAPI) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.check()
            await asyncio.sleep(BROKER_PROBE_SECONDS)


def install_operations(app: FastAPI, metrics: Metrics, probe: BrokerProbe) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers (the liveness probe)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        """Ready to serve the API: the database answers. The broker is not asked (see /healthz/details)."""
        ok = await database_ok(runtime(request.app).sessionmaker)
        metrics.database_up.set(1 if ok else 0)
        body = {"status": "ready" if ok else "unavailable", "checks": {"database": "ok" if ok else "down"}}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/healthz/details", tags=["operations"])
    async def details(request: Request) -> dict[str, Any]:
        """Every dependency and background worker, for an operator; never used to route traffic."""
        return await _details(request.app, metrics, probe)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        outbox = runtime(request.app).outbox
        if outbox is not None:
            with contextlib.suppress(Exception):
                async with runtime(request.app).sessionmaker() as session:
                    count, age = await outbox.backlog(session)
                metrics.outbox_backlog.set(count)
                metrics.outbox_oldest_age.set(age or 0)
        for hook in metrics.on_scrape:
            with contextlib.suppress(Exception):
                await hook()
        return metrics.render()


async def _details(app: FastAPI, metrics: Metrics, probe: BrokerProbe) -> dict[str, Any]:
    rt = runtime(app)
    database = await database_ok(rt.sessionmaker)
    broker = await probe.check()
    relay = rt.relay
    body: dict[str, Any] = {
        "service": rt.service,
        "status": "ok" if database and broker else "degraded",
        "database": "ok" if database else "down",
        "broker": "ok" if broker else "down",
        "consumers": [
            {"group": c.group_id, "processed": c.processed, "dead_lettered": c.dead_lettered} for c in rt.consumers
        ],
    }
    if relay is not None:
        body["relay"] = {"published": relay.published, "failures": relay.failures}
        with contextlib.suppress(Exception):
            async with rt.sessionmaker() as session:
                count, age = await relay.outbox.backlog(session)  # the same Outbox as rt.outbox
            body["relay"].update(backlog=count, oldest_unsent_age_seconds=age)
    return body


async def database_ok(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    try:
        async with sessionmaker() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), 3)
        return True
    except Exception:
        return False


async def broker_reachable(settings: Settings) -> bool:
    for server in settings.kafka_servers().split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), 2)
            writer.close()
            return True
        except (OSError, TimeoutError, ValueError):
            continue
    return False
