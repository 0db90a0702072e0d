"""The daily digest: for those who chose it, one mail a day at OBRUTEN_NOTIFY_DIGEST_TIME (local
time, default 07:00 Europe/Stockholm) listing what reached them since the last one.

The mails a digest lists were queued `held` at their transitions. Once the day's digest time has
passed, the first notify instance to insert the day's `mail_digest_run` row gathers each
address's held mail into one queued digest mail, in one transaction; another instance, a
restart or a second call the same day finds the row and does nothing. Nothing held: no mail.
Time is an input: the clock is the service's (a FixedClock in tests).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.mail.compose import message_id
from services.notify.mail.models import MailDigestRun, MailMessage
from services.notify.settings import NotifySettings
from shared.kernel.clock import Clock

log = logging.getLogger("obruten.notify.mail")


async def run_digest(
    sessionmaker: async_sessionmaker[AsyncSession], ns: NotifySettings, timezone: str, clock: Clock
) -> int:
    """Make today's digests if their time has come and they were not made; returns how many."""
    now = clock.now()
    local = now.astimezone(ZoneInfo(timezone))
    if local.time() < ns.digest_time:
        return 0
    day = local.date()
    async with sessionmaker() as session, session.begin():
        claimed = await session.scalar(
            pg_insert(MailDigestRun).values(day=day).on_conflict_do_nothing().returning(MailDigestRun.day)
        )
        if claimed is None:
            return 0
        held = (
            await session.scalars(
                select(MailMessage)
                .where(MailMessage.status == "held", MailMessage.happened_at <= now)
                .order_by(MailMessage.recipient, MailMessage.happened_at, MailMessage.id)
                .with_for_update()
            )
        ).all()
        by_recipient: dict[str, list[MailMessage]] = defaultdict(list)
        for row in held:
            by_recipient[row.recipient].append(row)
        for recipient, rows in by_recipient.items():
            await _queue_digest(session, day.isoformat(), recipient, rows, now)
    if by_recipient:
        log.info("digests queued", extra={"day": day.isoformat(), "count": len(by_recipient)})
    return len(by_recipient)


async def _queue_digest(
    session: AsyncSession, day: str, recipient: str, rows: list[MailMessage], now: datetime
) -> None:
    key = f"digest:{day}:{recipient.lower()}"
    digest_id = uuid.uuid4()
    items: list[dict[str, Any]] = [{"kind": r.kind, "stage": r.stage, "facts": r.facts} for r in rows]
    await session.execute(
        pg_insert(MailMessage)
        .values(
            id=digest_id,
            dedupe_key=key,
            message_id=message_id(key),
            kind="digest",
            recipient=recipient,
            delivery="digest",
            status="pending",
            facts={"day": day, "items": items},
            happened_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    await session.execute(
        update(MailMessage)
        .where(MailMessage.id.in_([r.id for r in rows]))
        .values(status="digested", digest_id=digest_id)
    )


async def run_digest_loop(
    sessionmaker: async_sessionmaker[AsyncSession], ns: NotifySettings, timezone: str, clock: Clock, wake: asyncio.Event
) -> None:
    while True:
        try:
            if await run_digest(sessionmaker, ns, timezone, clock):
                wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("digest run failed; retrying", extra={"error": repr(exc)})
        await asyncio.sleep(30)
