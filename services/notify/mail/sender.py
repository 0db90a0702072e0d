"""The mail sender: works through pending queue rows and hands each to the SMTP server.

Rows are claimed with FOR UPDATE SKIP LOCKED and leased (next_attempt_at pushed past the SMTP
timeout) in a short transaction, sent outside any transaction, then marked. Two notify
instances therefore never take the same row; a sender that dies between the server's accept
and the mark leaves the lease to expire and the mail is sent again with the same Message-ID,
which is what makes such a resend recognisable. An SMTP server that is down delays mail (each
row retried with backoff, dead-lettered after OBRUTEN_NOTIFY_MAIL_MAX_ATTEMPTS); it never
touches the alerts, which were committed before any of this.

Retry timing is operational: it runs on the database's wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.mail.compose import AlertFacts, Composed, build_message, compose, compose_digest
from services.notify.mail.models import MailMessage
from services.notify.settings import NotifySettings
from shared.kernel.wake import woken

log = logging.getLogger("obruten.notify.mail")


class MailMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter("obruten_mail_sent_total", "Mails accepted by the SMTP server", registry=registry)
        self.failed = Counter(
            "obruten_mail_failed_attempts_total", "Mail attempts that failed (retried later)", registry=registry
        )
        self.dead = Counter("obruten_mail_dead_total", "Mails dead-lettered after every attempt", registry=registry)
        self.pending = Gauge("obruten_mail_pending", "Mails waiting to be sent", registry=registry)
        self.held = Gauge("obruten_mail_held", "Mails waiting for a daily digest", registry=registry)


def _facts(raw: dict[str, Any]) -> AlertFacts:
    return AlertFacts(
        alert_id=uuid.UUID(raw["alert_id"]),
        rule=raw["rule"],
        district=raw["district"],
        counted_days=int(raw["counted_days"]),
        calendar_days=int(raw["calendar_days"]),
        deadline=date.fromisoformat(raw["deadline"]),
        level=raw.get("level"),
        reason=raw.get("reason"),
    )


def words(kind: str, stage: str | None, facts: dict[str, Any], web_url: str) -> Composed:
    """The subject and bodies of a queued mail, from what its row may say."""
    if kind == "digest":
        items = [words(i["kind"], i["stage"], i["facts"], web_url) for i in facts["items"]]
        return compose_digest(date.fromisoformat(facts["day"]), [(c.subject, c.text) for c in items], web_url)
    return compose(kind, stage or "", _facts(facts), web_url)


@dataclass
class _Claimed:
    id: uuid.UUID
    message_id: str
    kind: str
    stage: str | None
    recipient: str
    facts: dict[str, Any]
    happened_at: datetime
    attempts: int


def backoff_seconds(ns: NotifySettings, attempt: int) -> float:
    base = min(ns.mail_backoff_max_seconds, ns.mail_backoff_initial_seconds * 2 ** (attempt - 1))
    return float(base * random.uniform(0.5, 1.0))


def smtp_client(ns: NotifySettings) -> aiosmtplib.SMTP:
    security = ns.smtp_security
    password = ns.smtp_password.get_secret_value() if ns.smtp_password else None
    return aiosmtplib.SMTP(
        hostname=ns.smtp_host,
        port=ns.smtp_port,
        use_tls=security == "tls",
        start_tls=security == "starttls",
        tls_context=ssl.create_default_context(cafile=ns.smtp_ca_file) if security != "none" else None,
        username=ns.smtp_username,
        password=password,
        timeout=ns.smtp_timeout_seconds,
    )


async def _claim(sessionmaker: async_sessionmaker[AsyncSession], ns: NotifySettings) -> list[_Claimed]:
    lease = timedelta(seconds=ns.smtp_timeout_seconds * 2 + 30)
    async with sessionmaker() as session, session.begin():
        rows = (
            await session.scalars(
                select(MailMessage)
                .where(MailMessage.status == "pending", MailMessage.next_attempt_at <= func.now())
                .order_by(MailMessage.next_attempt_at)
                .limit(ns.mail_batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
        claimed = [
            _Claimed(r.id, r.message_id, r.kind, r.stage, r.recipient, r.facts, r.happened_at, r.attempts) for r in rows
        ]
        if claimed:
            await session.execute(
                update(MailMessage)
                .where(MailMessage.id.in_([c.id for c in claimed]))
                .values(next_attempt_at=func.now() + lease)
            )
    return claimed


def _message(ns: NotifySettings, web_url: str, c: _Claimed) -> EmailMessage:
    text = words(c.kind, c.stage, c.facts, web_url)
    return build_message(
        sender=ns.mail_from,
        recipient=c.recipient,
        subject=text.subject,
        text=text.text,
        body_html=text.html,
        message_id=c.message_id,
        date_=c.happened_at.astimezone(UTC),
    )


async def _send_all(ns: NotifySettings, web_url: str, claimed: list[_Claimed]) -> list[str | None]:
    """One SMTP session for the batch; per mail None when accepted, else the error's kind."""
    errors: list[str | None] = []
    try:
        smtp = smtp_client(ns)
        async with smtp:
            for c in claimed:
                try:
                    await smtp.send_message(_message(ns, web_url, c))
                    errors.append(None)
                except aiosmtplib.SMTPServerDisconnected:
                    raise
                except aiosmtplib.SMTPResponseException as exc:
                    errors.append(f"SMTP {exc.code}")
                except aiosmtplib.SMTPRecipientsRefused:
                    errors.append("recipient refused")
                except (KeyError, TypeError, ValueError) as exc:
                    # A row that cannot be put into words fails alone, not its whole batch.
                    errors.append(f"not composable: {type(exc).__name__}")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # The server could not be reached or dropped the session: this batch's remaining mail
        # failed this attempt. The class only: a message may echo an address.
        errors += [type(exc).__name__] * (len(claimed) - len(errors))
    return errors


async def send_due(
    sessionmaker: async_sessionmaker[AsyncSession], ns: NotifySettings, web_url: str, metrics: MailMetrics | None = None
) -> int:
    """Send one batch of due mail; returns how many were attempted."""
    if not ns.smtp_host:
        return 0
    claimed = await _claim(sessionmaker, ns)
    if not claimed:
        return 0
    errors = await _send_all(ns, web_url, claimed)
    async with sessionmaker() as session, session.begin():
        for c, error in zip(claimed, errors, strict=True):
            number = c.attempts + 1
            values: dict[str, object] = {"attempts": number, "last_error": error}
            if error is None:
                values.update(status="sent", sent_at=func.now())
                if metrics:
                    metrics.sent.inc()
            elif number >= ns.mail_max_attempts:
                values.update(status="dead", dead_at=func.now())
                log.warning("mail dead-lettered", extra={"mail_id": str(c.id), "attempts": number})
                if metrics:
                    metrics.dead.inc()
            else:
                values.update(next_attempt_at=func.now() + timedelta(seconds=backoff_seconds(ns, number)))
                if metrics:
                    metrics.failed.inc()
            await session.execute(
                update(MailMessage).where(MailMessage.id == c.id, MailMessage.status == "pending").values(**values)
            )
    return len(claimed)


async def refresh_gauges(sessionmaker: async_sessionmaker[AsyncSession], metrics: MailMetrics) -> None:
    async with sessionmaker() as session:
        counts = dict(
            (
                await session.execute(
                    select(MailMessage.status, func.count())
                    .where(MailMessage.status.in_(["pending", "held"]))
                    .group_by(MailMessage.status)
                )
            ).all()
        )
    metrics.pending.set(counts.get("pending", 0))
    metrics.held.set(counts.get("held", 0))


async def run_sender(
    sessionmaker: async_sessionmaker[AsyncSession],
    ns: NotifySettings,
    web_url: str,
    metrics: MailMetrics,
    wake: asyncio.Event,
) -> None:
    while True:
        try:
            while await send_due(sessionmaker, ns, web_url, metrics) >= ns.mail_batch_size:
                pass
            await refresh_gauges(sessionmaker, metrics)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("mail sender failed; retrying", extra={"error": repr(exc)})
        await woken(wake, ns.mail_poll_interval_seconds)
        wake.clear()
