"""The service skeleton every Obruten service is built from."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.inbox import BatchHook, EventConsumer, Handler
from shared.bus.outbox import RELAY_IN_PROCESS, Outbox, OutboxRelay
from shared.kernel.clock import Clock, SystemClock
from shared.kernel.db import CommitHooks, make_engine, make_sessionmaker
from shared.kernel.errors import document_problems, install_error_handlers
from shared.kernel.settings import Settings
from shared.kernel.tracing import instrument_engine, telemetry_config
from shared.web.audit import AuditMiddleware, audit_router, record_in_transaction
from shared.web.auth import Authenticator
from shared.web.contention import RetryOnContention
from shared.web.docs import install_docs
from shared.web.hardening import install_hardening
from shared.web.metrics import Metrics
from shared.web.operations import BrokerProbe, install_operations
from shared.web.policy import RouteRule
from shared.web.requestlog import RequestIdMiddleware
from shared.web.runtime import ServiceRuntime, runtime

log = logging.getLogger("obruten.app")
# How long shutdown waits for the relay, the consumers and background loops to stop.
SHUTDOWN_WAIT_SECONDS = 10.0


async def _settings(request: Request) -> Settings:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
    return runtime(request.app).settings


SettingsDep = Annotated[Settings, Depends(_settings)]


def _awaiting(task: asyncio.Task[Any]) -> list[str]:
    """Where a task is suspended, outermost first (the await chain of its coroutine)."""
    where: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


@dataclass
class ConsumerSpec:
    group_id: str
    topics: Sequence[str]
    handler: Handler
    after_batch: BatchHook | None = None


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    routers: Sequence[APIRouter]
    # The service's append-only audit trail (shared.web.audit.audit_table); every service has one.
    audit: Table
    outbox: Outbox | None = None
    inbox: Table | None = None
    consumers: Sequence[ConsumerSpec] = ()
    # Extra long-running tasks (a scheduler, a webhook sender), given the app.
    background: Sequence[Callable[[FastAPI], Any]] = field(default_factory=tuple)
    # Resources a service keeps for its lifetime (an HTTP client to another service): run
    # once the database is set up and before consumers start, and after they stop.
    on_startup: Sequence[Callable[[FastAPI], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[FastAPI], Awaitable[None]]] = ()
    # Which resource and action each of its routes is about (services/<service>/policy.py).
    routes: Mapping[tuple[str, str], RouteRule] = field(default_factory=dict)


def _start_workers(
    app: FastAPI, spec: ServiceSpec, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[list[asyncio.Task[Any]], list[Any]]:
    """The relay, the consumers and the background loops, started; with what closes each."""
    rt = runtime(app)
    tasks: list[asyncio.Task[Any]] = []
    closers: list[Any] = []
    if spec.outbox is not None and settings.outbox_relay_in_process:
        relay = OutboxRelay(spec.outbox, rt.engine, settings, lock_name=spec.name, metrics=rt.metrics)
        rt.relay = relay

        def wake_relay(session: AsyncSession) -> None:
            if session.info.get("outbox_written"):
                relay.wake.set()

        rt.commit_hooks.register(wake_relay)
        tasks.append(asyncio.create_task(relay.run(), name=f"{spec.name}-outbox-relay"))
        closers.append(relay.close)
    rt.consumers = []
    for cs in spec.consumers:
        consumer = EventConsumer(
            settings=settings,
            group_id=cs.group_id,
            topics=cs.topics,
            sessionmaker=sessionmaker,
            inbox=_require(spec.inbox, "a service with consumers needs an inbox table"),
            handler=cs.handler,
            after_batch=cs.after_batch,
            after_commit=rt.commit_hooks,
            metrics=rt.metrics,
        )
        rt.consumers.append(consumer)
        tasks.append(asyncio.create_task(consumer.run(), name=f"{spec.name}-consumer-{cs.group_id}"))
        closers.append(consumer.close)
    for start in (rt.broker_probe.run, *spec.background):
        tasks.append(asyncio.create_task(start(app)))
    return tasks, closers


async def _stop_workers(tasks: list[asyncio.Task[Any]], closers: list[Any]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        # Bounded: a task stuck in a client library's cleanup must not hold up the
        # shutdown (an orchestrator would kill the process with everything in it).
        _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_SECONDS)
        for task in pending:
            awaiting = _awaiting(task)
            log.warning(
                "background task %s did not stop in time; suspended in %s",
                task.get_name(),
                " > ".join(awaiting),
                extra={"task": task.get_name(), "awaiting": awaiting},
            )
    for close in closers:
        with contextlib.suppress(Exception):
            await close()


def _lifespan(
    spec: ServiceSpec, settings: Settings
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        relayed_here = spec.outbox is not None and settings.outbox_relay_in_process
        engine = make_engine(
            settings.service_database_url(spec.name),
            pool_size=settings.database_pool_size,
            server_settings={RELAY_IN_PROCESS: "on"} if relayed_here else None,
        )
        sessionmaker = make_sessionmaker(engine)
        runtime(app).engine = engine
        runtime(app).sessionmaker = sessionmaker
        instrument_engine(engine)
        for startup in spec.on_startup:
            await startup(app)
        tasks, closers = _start_workers(app, spec, settings, sessionmaker)
        try:
            yield
        finally:
            await _stop_workers(tasks, closers)
            for shutdown in spec.on_shutdown:
                with contextlib.suppress(Exception):
                    await shutdown(app)
            await engine.dispose()

    return lifespan


def create_service_app(spec: ServiceSpec, settings: Settings, clock: Clock | None = None) -> FastAPI:
    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="1.0.0",
        lifespan=_lifespan(spec, settings),
        # Served by shared/web/docs.py from pinned local assets, not from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        telemetry=telemetry_config(),
    )
    metrics = Metrics(spec.name)
    probe = BrokerProbe(settings, metrics)
    app.state.runtime = ServiceRuntime(
        settings=settings,
        clock=clock or SystemClock(),
        authenticator=Authenticator(settings),
        service=spec.name,
        routes=dict(spec.routes),
        outbox=spec.outbox,
        commit_hooks=CommitHooks(),
        audit_table=spec.audit,
        before_commit=record_in_transaction,
        metrics=metrics,
        broker_probe=probe,
    )
    install_error_handlers(app)
    # Innermost: a request that lost a deadlock is run again before the audit sees its answer.
    app.add_middleware(RetryOnContention)
    # Inside the hardening and metrics layers, so it sees the status the route produced.
    app.add_middleware(AuditMiddleware, table=spec.audit)
    metrics.install(app)
    install_hardening(app, settings)

    # Outermost: every answer, a refusal by the hardening layer too, carries the request id.
    app.add_middleware(RequestIdMiddleware, root=app)
    install_operations(app, metrics, probe)
    install_docs(app)

    for router in (*spec.routers, audit_router(spec.audit)):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    # Requests a service sends (OpenAPI 3.1 `webhooks`), e.g. notify's alert deliveries.
                    webhooks=app.webhooks.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _require(value: Table | None, message: str) -> Table:
    if value is None:
        raise RuntimeError(message)
    return value
