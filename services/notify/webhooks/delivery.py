"""The webhook sender: works through pending delivery rows, signing and POSTing each body.

Deliveries are claimed with FOR UPDATE SKIP LOCKED and leased (next_attempt_at pushed past the
request timeout) in a short transaction, then sent outside any transaction, so a slow receiver
never holds a database lock; a sender that dies mid-request leaves the lease to expire and
another sends again. Delivery is therefore at least once: receivers de-duplicate on the
`webhook-id` header (the delivery's id, the same on every retry) or the CloudEvent id in the body.

Each request is signed by the Standard Webhooks specification (signing.py) and goes to the
address checked just before it (destinations.py: resolved again at every attempt, refused unless
globally routable, connected to by address). Anything that goes wrong with one destination, of
whatever kind, is that delivery's failed attempt alone: the others of the batch are marked as
they went, and the failing one is retried with backoff and dead-lettered after the last attempt.

Retry timing is operational, not a deadline rule: it runs on the database's wall clock, not on
the injected domain clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.metrics import NotifyMetrics
from services.notify.models import Webhook, WebhookAttempt, WebhookDelivery
from services.notify.settings import NotifySettings
from services.notify.webhooks import destinations, signing
from shared.kernel.tracing import SpanKind, continuing, current_traceparent, instrument_httpx

log = logging.getLogger("obruten.notify.webhooks")


def backoff_seconds(ns: NotifySettings, attempt: int) -> float:
    """Wait after failed attempt number `attempt` (1-based): exponential, capped, with jitter."""
    base = min(ns.webhook_backoff_max_seconds, ns.webhook_backoff_initial_seconds * 2 ** (attempt - 1))
    return float(base * random.uniform(0.5, 1.0))


@dataclass
class _Claimed:
    id: uuid.UUID
    url: str
    keys: list[str]
    body: str
    event_type: str
    attempts: int


@dataclass
class _Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def _post(http: httpx.AsyncClient, d: _Claimed, ns: NotifySettings, resolve: destinations.Resolver) -> _Outcome:
    # The delivery continues the alert's trace, which its CloudEvent body carries, and tells
    # the receiver with a W3C traceparent header.
    with continuing(
        "webhook deliver", _traceparent(d.body), kind=SpanKind.CLIENT, **{"obruten.delivery_id": str(d.id)}
    ):
        return await _post_in_span(http, d, ns, resolve)


def _traceparent(body: str) -> str | None:
    try:
        value = json.loads(body).get("traceparent")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


async def _post_in_span(
    http: httpx.AsyncClient, d: _Claimed, ns: NotifySettings, resolve: destinations.Resolver
) -> _Outcome:
    started = time.monotonic()
    try:
        checked = await destinations.check(d.url, ns, resolve)
        headers = {
            "Content-Type": "application/cloudevents+json",
            **signing.headers(str(d.id), d.body, d.keys),
            "X-Obruten-Event-Type": d.event_type,
            "User-Agent": "obruten-notify",
        }
        traceparent = current_traceparent()
        if traceparent:
            headers["traceparent"] = traceparent
        resp = await destinations.pinned_request(http, checked, content=d.body.encode(), headers=headers)
        return _Outcome(resp.status_code, None if resp.is_success else f"HTTP {resp.status_code}", _ms(started))
    except asyncio.CancelledError:
        raise
    except destinations.DestinationRefused as exc:
        return _Outcome(None, f"destination refused: {exc}", _ms(started))
    except Exception as exc:
        # The exception class only: a message can echo the URL, which may hold a token.
        return _Outcome(None, type(exc).__name__, _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _record_outcomes(
    sessionmaker: async_sessionmaker[AsyncSession],
    ns: NotifySettings,
    claimed: list[_Claimed],
    outcomes: Sequence[_Outcome],
    metrics: NotifyMetrics | None = None,
) -> None:
    """One attempt row per POST; the delivery delivered, dead-lettered or due again later."""
    async with sessionmaker() as session, session.begin():
        for d, outcome in zip(claimed, outcomes, strict=True):
            await _mark(session, ns, d, outcome)
            if metrics is not None:
                metrics.attempt(outcome.ok, dead=not outcome.ok and d.attempts + 1 >= ns.webhook_max_attempts)


def _keys(secret: str, previous: str | None, previous_expires_at: datetime | None) -> list[str]:
    if previous and previous_expires_at is not None and previous_expires_at > datetime.now(UTC):
        return [secret, previous]
    return [secret]


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    ns: NotifySettings,
    http: httpx.AsyncClient,
    resolve: destinations.Resolver = destinations.system_resolver,
    metrics: NotifyMetrics | None = None,
) -> int:
    """Send one batch of due deliveries; returns how many were attempted."""
    lease = timedelta(seconds=ns.webhook_timeout_seconds + 30)
    async with sessionmaker() as session, session.begin():
        rows = (
            await session.execute(
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.body,
                    WebhookDelivery.event_type,
                    WebhookDelivery.attempts,
                    Webhook.url,
                    Webhook.secret,
                    Webhook.previous_secret,
                    Webhook.previous_secret_expires_at,
                )
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= func.now(),
                    Webhook.deleted_at.is_(None),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(ns.webhook_batch_size)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([row.id for row in rows]))
            .values(next_attempt_at=func.now() + lease)
        )
    claimed = [
        _Claimed(
            row.id,
            row.url,
            _keys(row.secret, row.previous_secret, row.previous_secret_expires_at),
            row.body,
            row.event_type,
            row.attempts,
        )
        for row in rows
    ]
    outcomes = await asyncio.gather(*(_post(http, d, ns, resolve) for d in claimed))
    await _record_outcomes(sessionmaker, ns, claimed, outcomes, metrics)
    return len(claimed)


async def _mark(session: AsyncSession, ns: NotifySettings, d: _Claimed, outcome: _Outcome) -> None:
    """Record one attempt: delivered, retried after a backoff, or dead-lettered after the last."""
    number = d.attempts + 1
    session.add(
        WebhookAttempt(
            delivery_id=d.id,
            number=number,
            at=func.now(),
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
    values: dict[str, object] = {"attempts": number, "last_error": outcome.error}
    if outcome.ok:
        values.update(status="delivered", delivered_at=func.now())
    elif number >= ns.webhook_max_attempts:
        values.update(status="dead", dead_at=func.now())
        log.warning("webhook delivery dead-lettered", extra={"delivery_id": str(d.id), "attempts": number})
    else:
        values.update(next_attempt_at=func.now() + timedelta(seconds=backoff_seconds(ns, number)))
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == d.id, WebhookDelivery.status == "pending").values(**values)
    )


async def run_sender(
    sessionmaker: async_sessionmaker[AsyncSession],
    ns: NotifySettings,
    wake: asyncio.Event,
    resolve: destinations.Resolver,
    metrics: NotifyMetrics | None = None,
) -> None:
    # trust_env off: a proxy from the environment would connect to the name, not the checked address.
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(ns.webhook_timeout_seconds), follow_redirects=False, trust_env=False
    ) as http:
        instrument_httpx(http)
        while True:
            try:
                while await deliver_due(sessionmaker, ns, http, resolve, metrics) >= ns.webhook_batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook sender failed; retrying", extra={"error": repr(exc)})
            try:
                await asyncio.wait_for(wake.wait(), ns.webhook_poll_interval_seconds)
            except TimeoutError:
                pass
            wake.clear()
