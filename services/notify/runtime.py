"""The notify service's own state in its runtime (shared/web/runtime.py: ServiceRuntime.extra)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from fastapi import FastAPI

from shared.web.runtime import extra

if TYPE_CHECKING:
    from services.notify.context import Context
    from services.notify.mail.sender import MailMetrics
    from services.notify.metrics import NotifyMetrics
    from services.notify.rules.calendar import SchoolYear
    from services.notify.schedule import Schedule
    from services.notify.settings import NotifySettings
    from services.notify.webhooks.destinations import Resolver


@dataclass(kw_only=True)
class NotifyRuntime:
    settings: NotifySettings
    context: Context
    # The evaluation loop's wake-up (services/notify/schedule.py).
    schedule: Schedule
    metrics: NotifyMetrics
    # Looked up at each webhook delivery, so that a test can stand a resolver in for DNS.
    webhook_resolver: Resolver
    school_years: list[SchoolYear]
    # The day the outside-every-school-year warning was last logged (once a day, not once a tick).
    warned_on: date | None = None
    # Set by mail.install, the mail package keeping its metrics to itself.
    mail_metrics: MailMetrics = field(init=False, repr=False)


def notify_runtime(app: FastAPI) -> NotifyRuntime:
    return extra(app, NotifyRuntime)
