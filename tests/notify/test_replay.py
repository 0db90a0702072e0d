"""`obruten replay notify` rebuilds notify's projection from the topics: same projection, alerts
and their history untouched, the consumer group's offsets moved on so live consumption resumes
after what was replayed."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg
import pytest

from services.notify.replay import REPLAY
from shared.kernel.db import make_engine, make_sessionmaker
from shared.local.migrate import _asyncpg_dsn
from shared.local.replay import replay
from tests.fixtures.notify import Bus, Case, alerts, consumed, processed

DAY0 = date(2025, 9, 1)  # the clock fixture's day
QUIET = {"notify_tick_interval_seconds": 3600, "notify_rules": {"school_gap": {"prewarning_day": None}}}
PROJECTION = ("placement_view", "school_attendance", "school_plan", "examination", "inbox")


async def snapshot(settings) -> dict[str, object]:  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("notify")))  # type: ignore[arg-type]
    try:
        counts = {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in PROJECTION}
        history = [tuple(r) for r in await conn.fetch("SELECT alert_id, transition, at FROM alert_history ORDER BY id")]
        facts = [tuple(r) for r in await conn.fetch("SELECT * FROM school_attendance ORDER BY school_start_id")]
        return {"counts": counts, "history": history, "facts": facts}
    finally:
        await conn.close()


async def test_replay_rebuilds_the_projection_keeps_alert_history_and_moves_the_group_on(
    service_client, settings, clock
):
    gap, fine = Case(DAY0 - timedelta(days=10)), Case(DAY0 - timedelta(days=3))
    async with Bus(settings) as bus:
        async with service_client("notify", settings_override=QUIET) as notify:
            await bus.placement(gap)
            await bus.placement(fine)
            await bus.school_started(fine, DAY0 - timedelta(days=2))
            await bus.plan(fine, DAY0 - timedelta(days=1))
            await consumed(4, notify)
            [alert] = await alerts(notify, rule="school_gap")
            assert alert["placement_id"] == str(gap.placement_id) and alert["status"] == "open"
        before = await snapshot(settings)
        assert before["counts"]["placement_view"] == 2 and before["counts"]["inbox"] == 4  # type: ignore[index]

        engine = make_engine(settings.service_database_url("notify"), pool_size=2)
        try:
            result = await replay(REPLAY, settings, make_sessionmaker(engine), clock=clock)
        finally:
            await engine.dispose()
        assert result.events == 4 and result.finished == 2
        assert await snapshot(settings) == before, "the same projection, and no alert transition added"

        # Live consumption resumes after what was replayed: only the new event is applied.
        async with service_client("notify", settings_override=QUIET) as notify:
            await bus.school_started(gap, DAY0)
            await consumed(1, notify)
            assert processed(notify) == 1
            [alert] = await alerts(notify, rule="school_gap")
            assert alert["status"] == "resolved"


async def test_replay_refuses_while_notify_consumes_and_touches_nothing(service_client, settings, clock):
    case = Case(DAY0 - timedelta(days=3))
    async with Bus(settings) as bus, service_client("notify", settings_override=QUIET) as notify:
        await bus.placement(case)
        await consumed(1, notify)
        before = await snapshot(settings)
        engine = make_engine(settings.service_database_url("notify"), pool_size=2)
        try:
            with pytest.raises(RuntimeError, match="scale them to zero"):
                await replay(REPLAY, settings, make_sessionmaker(engine), clock=clock)
        finally:
            await engine.dispose()
        assert await snapshot(settings) == before
