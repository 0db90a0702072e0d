"""Notify's mail: the right person is told of an alert (issue 16).

    models     the people directory, functional mailboxes, each placement's caseworker, the queue
    directory  reading and writing those
    queue      who is told of a transition; written in the transition's transaction
    compose    the words (Swedish, plain text and HTML, no personal data)
    sender     SMTP delivery (aiosmtplib), retries, dead letters, metrics
    digest     the daily digest
    endpoints  /v1/people, /v1/mail-recipients, /v1/mail-deliveries

The rest of notify calls in at three places only: the consumer's handler (`record_caseworkers`),
an alert transition (`queue.on_transition`) and the app's background tasks (`run_mail`).
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.mail.digest import run_digest, run_digest_loop
from services.notify.mail.sender import MailMetrics, run_sender, send_due
from services.notify.runtime import notify_runtime
from shared.web.runtime import runtime


def install(app: FastAPI) -> None:
    """Metrics on the app's registry; once per app, before it starts."""
    notify_runtime(app).mail_metrics = MailMetrics(runtime(app).metrics.registry)


async def run_mail(app: FastAPI) -> None:
    """The background task: the sender and the digest, woken by committed alert changes."""
    wake = asyncio.Event()

    def wake_sender(session: AsyncSession) -> None:
        # Any writer (a request, a consumer batch, a tick) that queued mail.
        if session.info.get("mail_written"):
            wake.set()

    runtime(app).commit_hooks.register(wake_sender)
    settings, ns, sessionmaker = runtime(app).settings, notify_runtime(app).settings, runtime(app).sessionmaker
    await asyncio.gather(
        run_sender(sessionmaker, ns, settings.web_url, notify_runtime(app).mail_metrics, wake),
        run_digest_loop(sessionmaker, ns, settings.timezone, runtime(app).clock, wake),
    )


async def send_mail(app: FastAPI) -> int:
    """One sender pass now (tests, after moving the clock)."""
    return await send_due(
        runtime(app).sessionmaker,
        notify_runtime(app).settings,
        runtime(app).settings.web_url,
        notify_runtime(app).mail_metrics,
    )


async def make_digests(app: FastAPI) -> int:
    """One digest check against the app's clock (tests call it after moving a FixedClock)."""
    return await run_digest(
        runtime(app).sessionmaker, notify_runtime(app).settings, runtime(app).settings.timezone, runtime(app).clock
    )
