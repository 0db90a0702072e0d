"""The evaluation loop sleeps until the earliest due time and is woken by a write of an earlier one
(services/notify/schedule.py): by a commit in its own process, and by NOTIFY from another
connection, also after its listening connection was lost. The interval (the cap) is an hour in
every test here, so an alert that opens within seconds was opened by a wake-up, not by the cap."""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta

import asyncpg
import pytest

from services.notify.runtime import notify_runtime
from services.notify.schedule import CHANNEL
from shared.kernel.clock import STOCKHOLM
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.notify import Bus, Case, alerts, consumed
from tests.fixtures.support import eventually

CAP = {"notify_tick_interval_seconds": 3600, "notify_rules": {"school_gap": {"prewarning_day": None}}}


class RunningClock:
    """A clock that runs at the real pace from a chosen moment (a FixedClock stands still)."""

    def __init__(self, start: datetime) -> None:
        self._start, self._t0 = start, time.monotonic()
        self.tz = STOCKHOLM

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)

    def today(self) -> date:
        return self.now().astimezone(self.tz).date()


# The placement's day 8 (the school_gap deadline) begins 3 s after the test starts.
DAY0 = date(2025, 9, 1)
DEADLINE = datetime(2025, 9, 9, tzinfo=STOCKHOLM)


@pytest.fixture
def clock() -> RunningClock:  # the service_client fixture starts notify on this clock
    return RunningClock(DEADLINE - timedelta(seconds=3))


async def test_a_consumer_batch_that_writes_an_earlier_due_time_wakes_the_loop(service_client, settings):
    case = Case(DAY0)
    async with Bus(settings) as bus, service_client("notify", settings_override=CAP) as notify:
        schedule = notify_runtime(notify.app).schedule
        # Nothing on file: the loop sleeps the whole hour.
        await eventually(lambda: _sleeping(schedule), timeout=10)
        await bus.placement(case)
        await consumed(1, notify)
        assert await alerts(notify) == []  # day 7 still, for a moment

        async def opened() -> bool:
            return bool(await alerts(notify, placement_id=case.placement_id, rule="school_gap", status="open"))

        await eventually(opened, timeout=20)
        assert notify_runtime(notify.app).context.clock.now() < DEADLINE + timedelta(seconds=25)


async def test_an_idle_loop_does_not_evaluate_again_before_a_due_time_or_the_cap(service_client, settings):
    case = Case(DEADLINE.date() - timedelta(days=1))  # its deadlines are days away
    async with Bus(settings) as bus, service_client("notify", settings_override=CAP) as notify:
        await bus.placement(case)
        await consumed(1, notify)
        metrics = notify_runtime(notify.app).metrics
        await eventually(lambda: _sleeping(notify_runtime(notify.app).schedule), timeout=10)
        before = metrics._last_success
        await asyncio.sleep(1.5)
        assert metrics._last_success == before


async def test_a_notify_from_another_connection_wakes_the_loop_also_after_a_lost_listener(
    service_client, settings, clock
):
    # On arrival the alert is held for the settle period (an hour); another writer then moves
    # the placement's arrival back and its due time to now, and says so with NOTIFY.
    case = Case(DAY0)
    override = {**CAP, "notify_settle_seconds": 3600}
    async with Bus(settings) as bus, service_client("notify", settings_override=override) as notify:
        schedule = notify_runtime(notify.app).schedule
        await asyncio.sleep(3.5)  # past the deadline: only the settle period holds the alert
        await bus.placement(case)
        await consumed(1, notify)
        await asyncio.sleep(0.5)
        assert await alerts(notify) == []
        conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("notify")))  # type: ignore[arg-type]
        try:
            first = await eventually(lambda: _listening(schedule), timeout=10)
            # A lost connection (a PostgreSQL restart ends every backend): the listener comes back.
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", first)

            async def again() -> bool:
                return await _listening(schedule) not in (None, first)

            await eventually(again, timeout=15)
            await eventually(lambda: _sleeping(schedule), timeout=10)
            due = clock.now()
            async with conn.transaction():
                await conn.execute(
                    "UPDATE placement_arrival SET first_seen_at = first_seen_at - interval '2 hours' "
                    "WHERE placement_id = $1",
                    case.placement_id,
                )
                await conn.execute(
                    "UPDATE alert_due SET due_at = $2 WHERE placement_id = $1 AND rule = 'school_gap'",
                    case.placement_id,
                    due,
                )
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, due.isoformat())
        finally:
            await conn.close()

        async def opened() -> bool:
            return bool(await alerts(notify, placement_id=case.placement_id, rule="school_gap", status="open"))

        await eventually(opened, timeout=20)


async def _sleeping(schedule) -> bool:  # type: ignore[no-untyped-def]
    """The loop is in its wait, with more than a minute to go."""
    return schedule.next_at is not None and (schedule.next_at - schedule.clock.now()).total_seconds() > 60


async def _listening(schedule) -> int | None:  # type: ignore[no-untyped-def]
    pid: int | None = schedule.listener_pid
    return pid
