"""When the evaluation loop next runs: at the earliest due time in the index, at the latest after
`tick_interval_seconds`, and at once when a write makes an earlier due time.

Two ways to learn of an earlier due time. A transaction of this process that writes one
(`note_due`, called where evaluation writes due rows) marks its session, and the commit hook wakes
the loop. A transaction that writes one earlier than this process sleeps until also sends
`pg_notify(CHANNEL, due time)`, so that other replicas (and `obruten replay`, a bulk load) wake the
same way: each replica listens on its own connection (`listen`), which comes back after a
PostgreSQL restart.

Times are read on the app's clock, so a test with a FixedClock that calls `evaluate(app)` itself
sees the loop wake only for what is due on that clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.notify.models import AlertDue
from shared.kernel.clock import Clock
from shared.kernel.listen import Listener
from shared.kernel.wake import woken

log = logging.getLogger("obruten.notify.schedule")

CHANNEL = "obruten_notify_due"
# session.info: the earliest due time the transaction wrote, read by the commit hook.
DUE_KEY = "notify_due_written"
# When rows are still due right after an evaluation (held by another replica's evaluation, or
# come due while it ran), look again after this pause rather than at once: a row that stayed due
# must not turn the loop into a busy loop.
PAST_DUE_PAUSE = 0.1
# A due time is slept to a little past it, so the evaluation that follows finds the row due.
MARGIN = 0.002
# After failed evaluations: the first pause, doubling up to the cap.
RETRY_FIRST = 0.5


async def note_due(session: AsyncSession, schedule: Schedule | None, due_times: Iterable[datetime | None]) -> None:
    """Where due rows are written, in their transaction: remember the earliest for the commit hook,
    and NOTIFY the other replicas when it is earlier than this process's loop sleeps until (they
    sleep until about the same time: all read the same index). Without a loop in this process
    (`obruten replay`) every replica is told."""
    due = min((t for t in due_times if t is not None), default=None)
    if due is None:
        return
    previous: datetime | None = session.info.get(DUE_KEY)
    session.info[DUE_KEY] = due if previous is None else min(previous, due)
    if schedule is None or (schedule.next_at is not None and due < schedule.next_at):
        await session.execute(select(func.pg_notify(CHANNEL, due.isoformat())))


class Schedule:
    """The loop's wake-up: an event set by a commit of an earlier due time or a NOTIFY."""

    def __init__(self, clock: Clock, cap_seconds: float) -> None:
        self.clock = clock
        self.cap = cap_seconds
        self.wake = asyncio.Event()
        # What the loop sleeps until (on the clock); None while it evaluates or reads the index,
        # when any due time written might be earlier than what it will read.
        self.next_at: datetime | None = None
        self._listener: Listener | None = None

    def earlier(self, due_at: datetime) -> bool:
        return self.next_at is None or due_at < self.next_at

    def on_commit(self, session: AsyncSession) -> None:
        due: datetime | None = session.info.pop(DUE_KEY, None)
        if due is not None and self.earlier(due):
            self.wake.set()

    def on_notify(self, payload: str) -> None:
        try:
            due = datetime.fromisoformat(payload)
        except ValueError:
            due = None  # not ours to parse: look at the index anyway
        if due is None or due.tzinfo is None or self.earlier(due):
            self.wake.set()

    async def earliest(self, sessionmaker: async_sessionmaker[AsyncSession]) -> datetime | None:
        """min(due_at), from the first entry of the partial index on due_at."""
        async with sessionmaker() as session:
            due: datetime | None = await session.scalar(select(func.min(AlertDue.due_at)))
            return due

    async def wait(self, sessionmaker: async_sessionmaker[AsyncSession], *, failures: int = 0) -> None:
        """Return when the next evaluation should run: the earliest due time reached, the cap
        passed, or (after `failures` failed evaluations in a row) a backoff passed. A wake-up
        re-reads the index and returns only if something is due by then."""
        pause: float | None = min(RETRY_FIRST * 2 ** (failures - 1), self.cap) if failures else None
        after_evaluation = True
        while True:
            self.next_at = None
            self.wake.clear()  # before the read: a commit after it wakes the wait below
            delay = pause if pause is not None else await self._until_due(sessionmaker, after_evaluation)
            if delay is None:
                return
            now = self.clock.now()
            self.next_at = now + timedelta(seconds=delay)
            if not await woken(self.wake, delay):
                return
            pause, after_evaluation = None, False

    async def _until_due(self, sessionmaker: async_sessionmaker[AsyncSession], after_evaluation: bool) -> float | None:
        """Seconds to sleep, capped; None: evaluate now."""
        try:
            earliest = await self.earliest(sessionmaker)
        except Exception as exc:
            log.warning("could not read the earliest due time; sleeping the interval", extra={"error": repr(exc)})
            return self.cap
        if earliest is None:
            return self.cap
        delay = (earliest - self.clock.now()).total_seconds()
        if delay <= 0:
            return PAST_DUE_PAUSE if after_evaluation else None
        return min(delay + MARGIN, self.cap)

    async def listen(self, engine: AsyncEngine) -> None:
        """LISTEN on CHANNEL for as long as the app runs (shared/kernel/listen.py); after a lost
        connection comes back it wakes the loop, which may have missed notifications meanwhile."""
        self._listener = Listener(engine, CHANNEL, self.on_notify, on_connect=self.wake.set, keepalive_seconds=self.cap)
        await self._listener.run()

    @property
    def listener_pid(self) -> int | None:
        """The listening connection's server process, while there is one."""
        return self._listener.pid if self._listener is not None else None
