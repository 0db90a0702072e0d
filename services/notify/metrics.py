"""Notify's own metrics: alerts not yet resolved by rule, status and level, the webhook queue,
attempts and dead letters, the age of the last successful evaluation tick, and whether today lies
outside every configured school year (services/notify/rules/calendar.py).

The alert and queue gauges are read at scrape time from partial indexes over unresolved alerts
and pending deliveries (so they cost what is open, not every alert ever raised), and at most once
per REFRESH_SECONDS however often Prometheus scrapes.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.models import Alert, WebhookDelivery
from shared.web.metrics import Metrics

REFRESH_SECONDS = 30.0


class NotifyMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.alerts = Gauge(
            "obruten_alerts", "Alerts not resolved, by rule, status and level", ["rule", "status", "level"], registry=r
        )
        self.webhook_queue = Gauge("obruten_webhook_queue_depth", "Webhook deliveries pending", registry=r)
        self.webhook_attempts = Counter(
            "obruten_webhook_attempts_total", "Webhook POSTs made, by outcome", ["outcome"], registry=r
        )
        self.webhook_dead = Counter(
            "obruten_webhook_dead_letters_total", "Webhook deliveries given up after the last attempt", registry=r
        )
        self.tick_last_success = Gauge(
            "obruten_tick_last_success_timestamp_seconds", "When the evaluation tick last completed", registry=r
        )
        self.tick_age = Gauge(
            "obruten_tick_age_seconds", "Seconds since the evaluation tick last completed", registry=r
        )
        self.outside_school_year = Gauge(
            "obruten_notify_outside_school_year",
            "1 when today lies outside every configured school-year calendar",
            registry=r,
        )
        self._started = time.time()
        self._last_success: float | None = None
        self._refreshed = 0.0
        self._seen: set[tuple[str, str, str]] = set()

    def tick_succeeded(self) -> None:
        self._last_success = time.time()
        self.tick_last_success.set(self._last_success)

    def attempt(self, ok: bool, dead: bool) -> None:
        self.webhook_attempts.labels("delivered" if ok else "failed").inc()
        if dead:
            self.webhook_dead.inc()

    async def refresh(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        # Since start when no tick has completed yet: a tick that never succeeds shows as aging.
        self.tick_age.set(time.time() - (self._last_success or self._started))
        if time.monotonic() - self._refreshed < REFRESH_SECONDS and self._refreshed:
            return
        async with sessionmaker() as session:
            rows = (
                await session.execute(
                    select(Alert.rule, Alert.status, Alert.level_name, func.count())
                    .where(Alert.status != "resolved")
                    .group_by(Alert.rule, Alert.status, Alert.level_name)
                )
            ).all()
            pending = await session.scalar(
                select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "pending")
            )
        current = {(row.rule, row.status, row.level_name or "none"): int(row[3]) for row in rows}
        # Series that went to zero are set to 0, not left at their last value.
        for key in self._seen - set(current):
            self.alerts.labels(*key).set(0)
        for key, count in current.items():
            self.alerts.labels(*key).set(count)
        self._seen |= set(current)
        self.webhook_queue.set(int(pending or 0))
        self._refreshed = time.monotonic()
