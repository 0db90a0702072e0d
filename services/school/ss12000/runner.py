"""The intake's loops: one per source, each on its own, so that a source that is down, slow or
broken never holds up another source or the school API (they share nothing but the database
pool). A loop syncs, then waits for the poll interval or a push, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from services.school.runtime import school_runtime
from services.school.ss12000.client import SourceClient, SourceError
from services.school.ss12000.matching import load_matcher, placement_http
from services.school.ss12000.metrics import IntakeMetrics
from services.school.ss12000.settings import IntakeSettings, SourceConfig, parse_sources
from services.school.ss12000.sync import (
    ChangeSet,
    SyncResult,
    position_of,
    read_change_set,
    record_failure,
    record_success,
    settle_source,
)
from shared.kernel.wake import woken
from shared.web.placement_client import placement_client
from shared.web.runtime import runtime

log = logging.getLogger("obruten.school.ss12000")
# Pushes closer together than this are folded into one sync.
MIN_SECONDS_BETWEEN_SYNCS = 1.0
# A subscription is renewed this long before it expires.
RESUBSCRIBE_BEFORE = timedelta(hours=12)


class SourceRunner:
    def __init__(
        self,
        app: FastAPI,
        source: SourceConfig,
        metrics: IntakeMetrics,
        placement: httpx.AsyncClient,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app = app
        self.source = source
        self.metrics = metrics
        self.placement = placement
        self.client = SourceClient(source, transport=transport)
        self.wake = asyncio.Event()
        self.syncs = 0
        self.subscribed_until: datetime | None = None

    async def sync_once(self) -> SyncResult:
        app, source = self.app, self.source
        sessionmaker = runtime(app).sessionmaker
        started = datetime.now(UTC)
        before = await position_of(sessionmaker, source.name)
        cs = ChangeSet()
        try:
            matcher = await load_matcher(runtime(app).settings, self.placement)
            units = await self.client.school_units()
            since = before - timedelta(seconds=source.overlap_seconds) if before else None
            cs = await read_change_set(self.client, matcher, since)
            del matcher  # the hash list lives for one sync
        except SourceError as exc:
            await record_failure(sessionmaker, source, started, cs, exc.kind)
            self.metrics.errors.labels(source.name, exc.kind).inc()
            log.warning("sync failed; the position stays", extra={"source": source.name, "kind": exc.kind})
            return SyncResult("failed", cs, error=exc.kind)
        position = await record_success(sessionmaker, source, started, cs, units, before)
        self.metrics.entities.labels(source.name).inc(cs.entities)
        self.metrics.matches.labels(source.name).inc(len(cs.matched))
        self.metrics.malformed.labels(source.name).inc(cs.malformed)
        self.metrics.succeeded(source.name, position.timestamp() if position else None)
        written = await settle_source(
            sessionmaker,
            source,
            client=placement_client(app),
            clock=runtime(app).clock,
            after_commit=runtime(app).commit_hooks,
        )
        log.info(
            "sync done",
            extra={"source": source.name, "entities": cs.entities, "matches": len(cs.matched), "written": written},
        )
        return SyncResult("ok", cs, written=written, position=position)

    async def _subscribe(self) -> None:
        """Register (again, when it is about to expire or failed before) the push target."""
        if self.source.push_target is None:
            return
        now = datetime.now(UTC)
        if self.subscribed_until is not None and self.subscribed_until - now > RESUBSCRIBE_BEFORE:
            return
        try:
            expires = await self.client.subscribe(self.source.push_target)
        except SourceError as exc:
            # Polling carries on; the push only makes the intake quicker. Tried again next sync.
            self.metrics.errors.labels(self.source.name, f"subscribe-{exc.kind}").inc()
            return
        # A source that names no expiry is asked again a day later.
        self.subscribed_until = expires if expires and expires.tzinfo else now + RESUBSCRIBE_BEFORE * 2

    async def run(self, poll_seconds: float) -> None:
        self.metrics.register(self.source.name)
        while True:
            began = asyncio.get_running_loop().time()
            try:
                await self._subscribe()
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A bug or the database gone: counted and retried at the next interval.
                self.metrics.errors.labels(self.source.name, "internal").inc()
                log.error("sync crashed", extra={"source": self.source.name, "error": type(exc).__name__})
            self.syncs += 1
            self.wake.clear()
            if await woken(self.wake, poll_seconds):
                # Pushes in quick succession: folded into one sync.
                elapsed = asyncio.get_running_loop().time() - began
                await asyncio.sleep(max(0.0, MIN_SECONDS_BETWEEN_SYNCS - elapsed))


async def run_intake(app: FastAPI) -> None:
    """Background task of the school service: the sources' loops, until the service stops."""
    settings = runtime(app).settings
    intake: IntakeSettings = school_runtime(app).ss12000_settings
    sources = parse_sources(intake.sources)
    school_runtime(app).ss12000_runners = {}
    if not sources:
        return
    if settings.ss12000_match_key is None:
        log.error("SS 12000 sources are configured but OBRUTEN_SS12000_MATCH_KEY is not; the intake does not run")
        return
    metrics = IntakeMetrics(runtime(app).metrics.registry)
    transport: Any = school_runtime(app).ss12000_transport
    async with placement_http(settings) as placement:
        runners = {s.name: SourceRunner(app, s, metrics, placement, transport=transport) for s in sources}
        school_runtime(app).ss12000_runners = runners
        try:
            await asyncio.gather(*(r.run(intake.poll_seconds) for r in runners.values()))
        finally:
            for r in runners.values():
                with contextlib.suppress(Exception):
                    await r.client.close()
