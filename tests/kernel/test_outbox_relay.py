"""The relay's batch: what it sends (each row's stored payload as it is, its writer's traceparent
as a header), in how many statements, and under one producer span per batch. A relay of its own
on placement's outbox, rows written by a plain connection as another process would; and a
service's relay woken by such a commit (the outbox's trigger and the relay's LISTEN)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.placement.models import outbox
from shared.bus.kafka import ensure_topics
from shared.bus.outbox import OutboxRelay
from shared.contracts.envelope import make_event
from shared.contracts.placement import PLACEMENT_STARTED, Duration, PlacementSnapshot
from shared.contracts.topics import TOPIC_PLACEMENT, TOPICS
from shared.contracts.vocabulary import LegalBasis, PlacementForm
from shared.kernel.db import make_engine
from shared.kernel.settings import Settings
from shared.kernel.tracing import trace_id_of
from shared.local.migrate import _asyncpg_dsn
from shared.web.runtime import runtime
from tests.fixtures.support import TopicTail, eventually

INSERT = (
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent) "
    "VALUES ($1, 'obruten.placement', $2, $3, $4::jsonb, $5)"
)


def traceparent(n: int) -> str:
    return f"00-{n:032x}-{n:016x}-01"


def row(n: int) -> tuple[str, str, str, str, str]:
    child = uuid.uuid4()
    snap = PlacementSnapshot(
        placement_id=uuid.uuid4(), child_id=child, version=1, district="Farsta", form=PlacementForm.jourhem,
        variants=[], legal_basis=LegalBasis.SoL, duration=Duration.long_term, start_date=date(2025, 9, 1),
        planned_end_date=None, end_date=None, end_reason=None, school_change=True,
        child_birth_date=date(2013, 4, 2), protected_identity=False,
    )  # fmt: skip
    ev = make_event(
        PLACEMENT_STARTED,
        source="/obruten/placement",
        subject=str(child),
        data=snap,
        time=datetime.now(UTC),
        traceparent=traceparent(n),
    )
    return ev.id, str(child), PLACEMENT_STARTED.type, ev.model_dump_json(exclude_none=True), traceparent(n)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    await ensure_topics(settings, TOPICS)
    engine = make_engine(settings.service_database_url("placement"), pool_size=2)
    yield engine
    await engine.dispose()


async def write(settings: Settings, rows: list[tuple[str, str, str, str, str]]) -> dict[int, str]:
    """The rows in one transaction; returns each row's stored payload text by seq."""
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
    try:
        async with conn.transaction():
            await conn.executemany(INSERT, rows)
        stored = await conn.fetch("SELECT seq, payload::text AS payload FROM outbox ORDER BY seq")
        return {r["seq"]: r["payload"] for r in stored}
    finally:
        await conn.close()


def statements(engine: AsyncEngine) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return seen, record


async def test_a_batch_sends_the_stored_payloads_as_they_are_in_two_statements_under_one_span(
    settings: Settings, engine: AsyncEngine, spans: InMemorySpanExporter
) -> None:
    spans.clear()  # the exporter is the session's
    relay = OutboxRelay(outbox, engine, settings, lock_name="placement")
    stored = await write(settings, [row(n) for n in (1, 2, 3)])
    seen, record = statements(engine)
    try:
        async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_PLACEMENT)) as tail:
            await relay.publish_round()
            messages = await tail.collect(3)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        await relay.close()
    assert relay.published == 3
    # One statement takes the publishing lock and claims the batch, one marks it sent: no empty
    # batch after a short one (BEGIN and COMMIT are not cursor statements).
    assert len(seen) == 2, seen
    assert "pg_try_advisory_xact_lock" in seen[0] and "FOR UPDATE SKIP LOCKED" in seen[0]
    assert seen[1].startswith("UPDATE outbox SET sent_at")
    assert sorted(m.value for m in messages) == sorted(p.encode() for p in stored.values())
    for message in messages:
        envelope = json.loads(message.value)
        headers = dict(message.headers)
        assert headers["content-type"] == b"application/cloudevents+json"
        assert headers["traceparent"].decode() == envelope["traceparent"]
        assert message.key == envelope["subject"].encode()
    [publish] = [s for s in spans.get_finished_spans() if s.name.endswith("publish")]
    assert publish.name == f"{settings.topic(TOPIC_PLACEMENT)} publish"
    assert publish.kind == SpanKind.PRODUCER
    assert publish.attributes is not None and publish.attributes["messaging.batch.message_count"] == 3
    linked = {format(link.context.trace_id, "032x") for link in publish.links}
    assert linked == {trace_id_of(traceparent(n)) for n in (1, 2, 3)}


async def test_a_full_batch_is_followed_by_another_and_a_short_one_ends_the_round(
    settings: Settings, engine: AsyncEngine
) -> None:
    relay = OutboxRelay(outbox, engine, settings.model_copy(update={"outbox_batch_size": 2}), lock_name="placement")
    stored = await write(settings, [row(n) for n in range(1, 6)])
    seen, record = statements(engine)
    try:
        async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_PLACEMENT)) as tail:
            await relay.publish_round()
            messages = await tail.collect(5)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        await relay.close()
    assert relay.published == 5
    assert len(seen) == 6, seen  # three batches (2, 2, 1) of two statements each
    # One child each, so order shows per partition; all rows left in the order they were written.
    by_partition: dict[int, list[bytes]] = {}
    for m in messages:
        by_partition.setdefault(m.partition, []).append(m.value)
    order = {payload.encode(): seq for seq, payload in stored.items()}
    for values in by_partition.values():
        assert [order[v] for v in values] == sorted(order[v] for v in values)


async def test_a_row_committed_by_another_process_is_published_without_waiting_for_the_poll_interval(
    service_client: Any, settings: Settings
) -> None:
    # The poll interval is an hour: a row that leaves within seconds left on the NOTIFY of the
    # outbox's trigger, also after the relay's listening connection was lost and came back.
    async with service_client("placement", settings_override={"outbox_poll_interval_seconds": 3600}) as client:
        relay = runtime(client.app).relay
        assert relay is not None
        conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
        try:
            first = await eventually(lambda: _listening(relay), timeout=10)
            await conn.execute(INSERT, *row(1))
            await eventually(lambda: _published(relay, 1), timeout=20)

            # A PostgreSQL restart ends every backend: the listener connects again.
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", first)

            async def again() -> bool:
                return await _listening(relay) not in (None, first)

            await eventually(again, timeout=15)
            await conn.execute(INSERT, *row(2))
            await eventually(lambda: _published(relay, 2), timeout=20)
        finally:
            await conn.close()


async def _listening(relay: OutboxRelay) -> int | None:
    return relay.listener.pid


async def _published(relay: OutboxRelay, count: int) -> bool:
    return relay.published == count


async def _async(value: bool) -> bool:
    return value


async def test_the_relays_own_statements_start_no_traces_and_its_publish_continues_the_writers(
    service_client: Any, settings: Settings, spans: InMemorySpanExporter
) -> None:
    spans.clear()  # the exporter is the session's
    async with service_client("placement") as client:
        relay = runtime(client.app).relay
        assert relay is not None
        conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
        try:
            await conn.execute(INSERT, *row(7))
        finally:
            await conn.close()
        await eventually(lambda: _published(relay, 1), timeout=20)
        # And a few idle polls after it (0.2 s apart in tests), each a claim that finds nothing.
        rounds = relay.rounds
        await eventually(lambda: _async(relay.rounds >= rounds + 3), timeout=20)
    finished = spans.get_finished_spans()
    statements = [str((s.attributes or {}).get("db.statement", "")) for s in finished]
    assert not [s for s in statements if "outbox" in s], statements
    [publish] = [s for s in finished if s.name.endswith("publish")]
    assert format(publish.context.trace_id, "032x") == trace_id_of(traceparent(7))
