"""Set-based consumers (issue 18): a batch handler (shared/bus/batch.py) applies a consumer batch
with one statement per table. Several versions of one placement in a batch, out of order and
duplicated, leave the newest; a batch holding an event the database refuses is applied again
event by event, so that one is parked with its reason and the rest applied once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import asyncpg

from services.health.models import placement_view as health_copy
from services.notify.models import inbox
from services.notify.projection import project_batch
from shared.bus.batch import BatchHandler
from shared.bus.inbox import EventConsumer
from shared.bus.placement_copy import placement_consumer
from shared.contracts.envelope import CloudEvent
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_STARTED, PlacementSnapshot
from shared.contracts.topics import TOPIC_DEADLETTER, TOPIC_PLACEMENT
from shared.kernel.db import make_engine, make_sessionmaker
from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.notify import Bus, Case
from tests.fixtures.support import TopicTail, eventually

DAY0 = date(2025, 9, 1)


async def versions(settings: Settings, service: str) -> dict[uuid.UUID, int]:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url(service)))  # type: ignore[arg-type]
    try:
        return {r["placement_id"]: r["version"] for r in await conn.fetch("SELECT * FROM placement_view")}
    finally:
        await conn.close()


def versions_of(bus: Bus, case: Case, count: int) -> list[CloudEvent]:
    events = [bus.event(PLACEMENT_STARTED, case.snapshot())]
    events += [bus.event(PLACEMENT_CHANGED, case.snapshot()) for _ in range(count - 1)]
    return events


async def test_the_placement_copy_keeps_the_newest_version_of_a_batch_out_of_order(settings: Settings) -> None:
    stored: list[tuple[uuid.UUID, int]] = []

    async def after_upsert(session: Any, event: CloudEvent, snapshot: PlacementSnapshot) -> None:
        stored.append((snapshot.placement_id, snapshot.version))

    handler = placement_consumer(health_copy, after_upsert)
    a, b = Case(DAY0), Case(DAY0 - timedelta(days=3))
    async with Bus(settings) as bus:
        v1, v2, v3 = versions_of(bus, a, 3)
        [b1] = versions_of(bus, b, 1)
    engine = make_engine(settings.service_database_url("health"), pool_size=2)
    try:
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            await handler.apply(session, [v2, b1, v3, v1, v3])
        assert await versions(settings, "health") == {a.placement_id: 3, b.placement_id: 1}
        assert sorted(stored) == sorted([(a.placement_id, 3), (b.placement_id, 1)]), "once, with the newest"
        async with sessionmaker() as session, session.begin():
            await handler.apply(session, [v2, v1])  # late versions in a later batch
        assert await versions(settings, "health") == {a.placement_id: 3, b.placement_id: 1}
        assert len(stored) == 2, "nothing newer was stored, so nothing follows"
    finally:
        await engine.dispose()


async def test_a_batch_with_an_event_the_database_refuses_parks_it_and_applies_the_rest_once(
    settings: Settings,
) -> None:
    sizes: list[int] = []

    async def recording(session: Any, events: Sequence[CloudEvent]) -> None:
        sizes.append(len(events))
        await project_batch(session, events)

    a, bad, c = Case(DAY0), Case(DAY0), Case(DAY0)
    bad.district = "Far\x00sta"  # valid JSON and a valid string, but PostgreSQL text holds no NUL (22021)
    engine = make_engine(settings.service_database_url("notify"), pool_size=2)
    consumer = EventConsumer(
        settings=settings,
        group_id="notify",
        topics=[TOPIC_PLACEMENT],
        sessionmaker=make_sessionmaker(engine),
        inbox=inbox,
        handler=BatchHandler(recording),
    )
    async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_DEADLETTER)) as dead, Bus(settings) as bus:
        v1, v2, v3 = versions_of(bus, a, 3)
        [refused] = versions_of(bus, bad, 1)
        [c1] = versions_of(bus, c, 1)
        # One key, so one partition, all there before the consumer starts: they come as one batch.
        for event in (v1, refused, v3, v2, c1, v3):
            await bus.send(PLACEMENT_STARTED, event.model_copy(update={"subject": str(a.child_id)}))
        task = asyncio.create_task(consumer.run())
        try:
            await dead.collect(1)
            await eventually(lambda: _async(consumer.processed >= 5), timeout=30)
            await dead.settle(1.0)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await consumer.close()
            await engine.dispose()
    assert max(sizes) > 1 and 1 in sizes, f"applied as a batch first, then event by event: {sizes}"
    [reason] = [dict(m.headers)["obruten-reason"].decode() for m in dead.messages]
    assert reason.startswith("not applicable: SQLSTATE 22021"), reason
    assert await versions(settings, "notify") == {a.placement_id: 3, c.placement_id: 1}
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("notify")))  # type: ignore[arg-type]
    try:
        claimed = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox")}
    finally:
        await conn.close()
    assert claimed == {v1.id, v2.id, v3.id, c1.id}, "each applied event claimed once, the refused one not at all"


async def _async(value: Any) -> Any:
    return value
