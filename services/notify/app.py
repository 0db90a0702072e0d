"""The notify service's FastAPI application: consumes the other services' events, keeps the
due-time index, raises alerts and delivers them (topic `obruten.alerts`, webhooks, HTTP)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify import mail
from services.notify.alerts.endpoints import router as alerts_router
from services.notify.context import Context
from services.notify.evaluation import evaluate_due
from services.notify.mail.endpoints import router as mail_router
from services.notify.metrics import NotifyMetrics
from services.notify.models import audit, inbox, outbox
from services.notify.policy import ROUTES
from services.notify.projection import make_after_batch, project
from services.notify.rules.calendar import outside_every_school_year
from services.notify.runtime import NotifyRuntime, notify_runtime
from services.notify.schedule import Schedule
from services.notify.settings import NotifySettings
from services.notify.webhooks import destinations, docs, secrets
from services.notify.webhooks.delivery import run_sender
from services.notify.webhooks.endpoints import router as webhooks_router
from shared.contracts.topics import TOPIC_HEALTH, TOPIC_PLACEMENT, TOPIC_SCHOOL
from shared.kernel.clock import Clock, SystemClock
from shared.kernel.settings import Settings, get_settings
from shared.kernel.tracing import tracer
from shared.web.app import ConsumerSpec, ServiceSpec, create_service_app
from shared.web.runtime import runtime

log = logging.getLogger("obruten.notify")


def check_school_year(app: FastAPI) -> bool:
    """Today outside every configured school year: a warning in the log (once a day) and the
    metric set, so that nobody counts on term breaks that are not configured. True when outside."""
    ctx: Context = notify_runtime(app).context
    today = ctx.today()
    outside = outside_every_school_year(notify_runtime(app).school_years, today)
    notify_runtime(app).metrics.outside_school_year.set(1 if outside else 0)
    if outside and notify_runtime(app).warned_on != today:
        notify_runtime(app).warned_on = today
        log.warning(
            "today lies outside every configured school year; add its calendar (OBRUTEN_NOTIFY_SCHOOL_YEARS_DIR)",
            extra={"today": today.isoformat(), "pauses_in_term_breaks": ctx.rules.school_gap.pause_in_term_breaks},
        )
    return outside


async def evaluate(app: FastAPI) -> int:
    """One evaluation tick against the app's clock; tests call it after moving a FixedClock."""
    ns: NotifySettings = notify_runtime(app).settings
    check_school_year(app)
    return await evaluate_due(
        runtime(app).sessionmaker,
        notify_runtime(app).context,
        batch_size=ns.tick_batch_size,
        after_commit=runtime(app).commit_hooks,
    )


async def _tick_loop(app: FastAPI) -> None:
    """Evaluates, then sleeps until the earliest due time (at most tick_interval_seconds), woken
    earlier by a write of an earlier one (services/notify/schedule.py)."""
    schedule = notify_runtime(app).schedule
    failures = 0
    while True:
        try:
            with tracer.start_as_current_span("notify tick"):
                await evaluate(app)
            notify_runtime(app).metrics.tick_succeeded()
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            log.warning("evaluation tick failed; retrying after a pause", extra={"error": repr(exc)})
        await schedule.wait(runtime(app).sessionmaker, failures=failures)


async def _listen(app: FastAPI) -> None:
    await notify_runtime(app).schedule.listen(runtime(app).engine)


async def _sender(app: FastAPI) -> None:
    wake = asyncio.Event()

    def wake_sender(session: AsyncSession) -> None:
        # Any writer (a request, a consumer batch, a tick) that queued a webhook delivery.
        if session.info.get("webhook_written"):
            wake.set()

    runtime(app).commit_hooks.register(wake_sender)

    async def resolve(host: str, port: int) -> list[str]:
        # Looked up at each call, so that a test can stand a resolver in for DNS.
        resolver: destinations.Resolver = notify_runtime(app).webhook_resolver
        return await resolver(host, port)

    await run_sender(
        runtime(app).sessionmaker, notify_runtime(app).settings, wake, resolve, notify_runtime(app).metrics
    )


# What runs beside the relay and the consumer; the registered spec (spec.py) carries the same.
BACKGROUND = (_tick_loop, _listen, _sender, mail.run_mail)


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, service_settings: NotifySettings | None = None
) -> FastAPI:
    settings = settings or get_settings()
    clock = clock or SystemClock()
    ns = service_settings or NotifySettings()
    # Refuses an inconsistent rules configuration here, at start-up, naming the setting.
    rules = ns.load_rules()
    schedule = Schedule(clock, ns.tick_interval_seconds)
    ctx = Context(
        rules=rules,
        clock=clock,
        tz=ZoneInfo(settings.timezone),
        settle=timedelta(seconds=ns.settle_seconds),
        schedule=schedule,
    )
    spec = ServiceSpec(
        name="notify",
        title="Obruten notify service",
        description=(
            "Deadlines and alerts: consumes `obruten.placement`, `obruten.school` and `obruten.health`, raises alerts "
            "(school_gap, school_plan_missing, health_exam_missing, dental_exam_missing) and announces every "
            "transition on `obruten.alerts`, to webhooks signed by the Standard Webhooks specification "
            "(see `webhooks` in this document) and by mail to the caseworker and each level's mailboxes."
        ),
        routers=[alerts_router, webhooks_router, secrets.router, mail_router],
        audit=audit,
        routes=ROUTES,
        outbox=outbox,
        inbox=inbox,
        consumers=[
            ConsumerSpec(
                group_id="notify",
                topics=[TOPIC_PLACEMENT, TOPIC_SCHOOL, TOPIC_HEALTH],
                handler=project,
                after_batch=make_after_batch(ctx),
            )
        ],
        background=BACKGROUND,
    )
    app = create_service_app(spec, settings, clock)
    kernel = runtime(app)
    kernel.commit_hooks.register(schedule.on_commit)
    nm = NotifyMetrics(kernel.metrics)
    kernel.metrics.on_scrape.append(lambda: nm.refresh(kernel.sessionmaker))
    kernel.extra = NotifyRuntime(
        settings=ns,
        context=ctx,
        schedule=schedule,
        metrics=nm,
        webhook_resolver=destinations.system_resolver,
        school_years=ns.load_school_years(),
        warned_on=None,
    )
    mail.install(app)
    docs.document(app)
    return app
