"""A consumer batch applied set-based (one statement per table for the whole batch) leaves notify's
projection exactly as applying its events one by one in the same order would: out of order,
duplicated, several versions or facts of one key in the same batch."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import asyncpg

from services.notify.projection import project
from shared.contracts.envelope import CloudEvent
from shared.contracts.health import EXAM_BOOKED, EXAM_COMPLETED, EXAM_MISSED, ExamStatus
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_STARTED
from shared.contracts.school import SCHOOL_ENDED, SCHOOL_PLAN_REGISTERED, SCHOOL_START_CHANGED, SCHOOL_STARTED
from shared.kernel.db import make_engine, make_sessionmaker
from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.notify import Bus, Case

DAY0 = date(2025, 9, 1)
TABLES = {
    "placement_view": "placement_id",
    "mail_placement_caseworker": "placement_id",
    "school_attendance": "school_start_id",
    "school_plan": "plan_id",
    "examination": "examination_id",
}


def history(bus: Bus) -> list[CloudEvent]:
    """Two children's events as the services emit them, with every kind notify projects."""
    a, b = Case(DAY0, caseworker="cw-1"), Case(DAY0 - timedelta(days=5), form="hvb")
    events = [bus.event(PLACEMENT_STARTED, a.snapshot())]
    a.caseworker = "cw-2"
    events.append(bus.event(PLACEMENT_CHANGED, a.snapshot()))  # version 2
    a.caseworker = "cw-3"
    events.append(bus.event(PLACEMENT_CHANGED, a.snapshot()))  # version 3: the newest
    events.append(bus.event(PLACEMENT_STARTED, b.snapshot()))
    events.append(bus.event(SCHOOL_STARTED, a.school_started(DAY0 + timedelta(days=4))))
    events.append(bus.event(SCHOOL_START_CHANGED, a.school_started(DAY0 + timedelta(days=3))))
    events.append(bus.event(SCHOOL_ENDED, a.school_ended(DAY0 + timedelta(days=9))))
    events.append(bus.event(SCHOOL_PLAN_REGISTERED, b.plan(DAY0 - timedelta(days=1))))
    exam = b.exam("health", DAY0 + timedelta(days=2))
    events.append(bus.event(EXAM_BOOKED, exam.model_copy(update={"status": ExamStatus.booked})))
    events.append(bus.event(EXAM_COMPLETED, exam))
    # A later status does not undo the day it took place.
    events.append(bus.event(EXAM_MISSED, exam.model_copy(update={"status": ExamStatus.missed})))
    return events


async def projection(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("notify")))  # type: ignore[arg-type]
    try:
        out = {}
        for table, key in TABLES.items():
            rows = await conn.fetch(f'SELECT * FROM "{table}" ORDER BY {key}')
            # When a row was written or claimed is not what the events say.
            out[table] = [tuple(v for k, v in r.items() if k not in ("updated_at", "processed_at")) for r in rows]
        return out
    finally:
        await conn.close()


async def clear(settings: Settings) -> None:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("notify")))  # type: ignore[arg-type]
    try:
        await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES))
    finally:
        await conn.close()


async def test_one_batch_leaves_the_projection_as_its_events_one_by_one(settings: Settings) -> None:
    engine = make_engine(settings.service_database_url("notify"), pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    async with Bus(settings) as bus:
        events = history(bus)
    results = []
    try:
        for order in (events, list(reversed(events)), random.Random(18).sample(events, len(events))):
            # Some events twice: redelivered within the same batch.
            batch = order + order[:4]
            async with sessionmaker() as session, session.begin():
                for event in batch:
                    await project(session, event)  # one by one: the handler's per-event (savepoint) path
            one_by_one = await projection(settings)
            await clear(settings)
            async with sessionmaker() as session, session.begin():
                await project.apply(session, batch)  # the whole batch, one statement per table
            assert await projection(settings) == one_by_one
            await clear(settings)
            results.append(one_by_one)
    finally:
        await engine.dispose()
    in_order = results[0]
    for result in results:
        assert sorted(row[2] for row in result["placement_view"]) == [1, 3], "the newest version, whatever the order"
        assert sorted(str(row[1:]) for row in result["mail_placement_caseworker"]) == ["('cw-3', 3)", "(None, 1)"]
    [attendance] = in_order["school_attendance"]
    assert attendance[2:] == (DAY0 + timedelta(days=3), DAY0 + timedelta(days=9)), "the corrected start, then its end"
    [exam] = in_order["examination"]
    assert exam[3] == "missed" and exam[5] == DAY0 + timedelta(days=2), "the day it took place kept once known"
    assert len(in_order["school_plan"]) == 1
