"""`obruten replay notify`: notify's projection rebuilt from the topics (shared/replay.py).

Emptied and rebuilt: the projection (placement_view, school_attendance, school_plan,
examination) and the inbox. Kept: alerts, their history, the due-time index and webhooks, so no
alert loses its past. Events are applied without evaluating each batch (a half-rebuilt projection
must not open or resolve anything); once all are back, every placement is evaluated once, which
changes an alert only where the rebuilt facts say something other than what the alert records.
"""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.context import Context
from services.notify.evaluation import evaluate_placements
from services.notify.models import Examination, SchoolAttendance, SchoolPlan, inbox, placement_view
from services.notify.projection import project
from services.notify.settings import NotifySettings
from shared.bus.replay import ReplaySpec
from shared.contracts.topics import TOPIC_HEALTH, TOPIC_PLACEMENT, TOPIC_SCHOOL
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings

EVALUATE_BATCH = 1000
# Batches evaluated at once, each in its own transaction: one computes while another waits for
# the database. Safe together: each locks its due rows in (placement, rule) order, the order every
# evaluation uses, so two batches sharing a child wait for each other rather than deadlock.
EVALUATORS = 2


async def reset(session: AsyncSession) -> None:
    tables = [placement_view.name, SchoolAttendance.__tablename__, SchoolPlan.__tablename__]
    tables += [Examination.__tablename__, inbox.name]
    await session.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)))


async def finish(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock) -> int:
    ns = NotifySettings()
    ctx = Context(rules=ns.load_rules(), clock=clock, tz=ZoneInfo(settings.timezone))
    async with sessionmaker() as session:
        ids = list(
            (await session.scalars(select(placement_view.c.placement_id).order_by(placement_view.c.placement_id))).all()
        )
    batches = iter(range(0, len(ids), EVALUATE_BATCH))

    async def evaluator() -> None:
        for start in batches:  # shared: each batch is taken by one evaluator
            async with sessionmaker() as session, session.begin():
                await evaluate_placements(session, ctx, ids[start : start + EVALUATE_BATCH])

    await asyncio.gather(*(evaluator() for _ in range(EVALUATORS)))
    return len(ids)


REPLAY = ReplaySpec(
    group_id="notify",
    topics=[TOPIC_PLACEMENT, TOPIC_SCHOOL, TOPIC_HEALTH],
    inbox=inbox,
    handler=project,
    reset=reset,
    finish=finish,
)
